import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FieldError } from '../http/problem';

/** bcrypt reads at most 72 bytes; a longer password would be silently truncated, so it is refused. */
export const MAX_PASSWORD_BYTES = 72;

let commonPasswords: ReadonlySet<string> | undefined;

/**
 * The 30,000 most common passwords from zxcvbn's list (Mark Burnett's 10-million corpus;
 * MIT licence, see common-passwords.LICENSE.txt), lower-cased, read once.
 */
export function commonPasswordList(): ReadonlySet<string> {
  commonPasswords ??= new Set(
    readFileSync(path.join(__dirname, 'common-passwords.txt'), 'utf8')
      .split('\n')
      .filter((line) => line !== ''),
  );
  return commonPasswords;
}

export interface PasswordContext {
  email?: string | undefined;
  username?: string | null | undefined;
}

/**
 * Checks a password against the policy of CONTRACT.md section 3 and returns what is wrong
 * (empty when it is acceptable). Messages never repeat the password.
 */
export function checkPasswordPolicy(password: string, minLength: number, context: PasswordContext, field = 'password'): FieldError[] {
  const problems: string[] = [];
  // Code points, not UTF-16 units: "🔑" is one character to the person typing it.
  const length = [...password].length;
  if (length < minLength) problems.push(`must be at least ${minLength} characters`);
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) problems.push(`must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8`);
  const lower = password.toLowerCase();
  if (commonPasswordList().has(lower)) problems.push('is too common');
  if (context.email && lower === context.email.toLowerCase()) problems.push('must not be the email address');
  if (context.username && lower === context.username.toLowerCase()) problems.push('must not be the username');
  return problems.map((message) => ({ path: field, message }));
}
