import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FieldError } from '../http/problem';
import { fitsBcrypt, foldPassword, MAX_PASSWORD_BYTES, normalizePassword } from './password-normalization';

export { MAX_PASSWORD_BYTES } from './password-normalization';

/** A set of passwords in the folded form `isCommonPassword` compares (see `foldPassword`). */
export function foldedPasswordSet(entries: Iterable<string>): ReadonlySet<string> {
  const folded = new Set<string>();
  for (const entry of entries) {
    const text = foldPassword(entry);
    if (text !== '') folded.add(text);
  }
  return folded;
}

let commonPasswords: ReadonlySet<string> | undefined;

/**
 * The 30,000 most common passwords from zxcvbn's list (Mark Burnett's 10-million corpus;
 * MIT licence, see common-passwords.LICENSE.txt), folded like the passwords they are
 * compared with, read once.
 */
export function commonPasswordList(): ReadonlySet<string> {
  commonPasswords ??= foldedPasswordSet(readFileSync(path.join(__dirname, 'common-passwords.txt'), 'utf8').split('\n'));
  return commonPasswords;
}

/**
 * Whether a password is on the list, whatever its case, surrounding spaces or runs of
 * spaces: " Password1 " is as easy to guess as "password1".
 */
export function isCommonPassword(password: string, list: ReadonlySet<string> = commonPasswordList()): boolean {
  return list.has(foldPassword(password));
}

export interface PasswordContext {
  email?: string | undefined;
  username?: string | null | undefined;
}

/**
 * Checks a password against the policy of CONTRACT.md section 3 and returns what is wrong
 * (empty when it is acceptable). Every rule applies to the NFKC form, which is what gets
 * hashed. Messages never repeat the password.
 */
export function checkPasswordPolicy(password: string, minLength: number, context: PasswordContext, field = 'password'): FieldError[] {
  const problems: string[] = [];
  const normalized = normalizePassword(password);
  // Code points, not UTF-16 units: "🔑" is one character to the person typing it.
  const length = [...normalized].length;
  if (length < minLength) problems.push(`must be at least ${minLength} characters`);
  if (!fitsBcrypt(normalized)) problems.push(`must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8`);
  if (isCommonPassword(normalized)) problems.push('is too common');
  const folded = foldPassword(normalized);
  if (context.email && folded === foldPassword(context.email)) problems.push('must not be the email address');
  if (context.username && folded === foldPassword(context.username)) problems.push('must not be the username');
  return problems.map((message) => ({ path: field, message }));
}
