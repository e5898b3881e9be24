/**
 * The one place that says what text a password is (CONTRACT.md section 3). The hasher and
 * the policy apply it themselves, so no caller can hash or check a password un-normalised.
 */

/** bcrypt reads at most 72 bytes; a longer password would be silently truncated, so it is refused. */
export const MAX_PASSWORD_BYTES = 72;

/**
 * NFKC: the same password typed on another keyboard or platform is the same password
 * (composed "é" U+00E9 or "e" + U+0301, fullwidth "ａ" or "a", the ligature "ﬁ" or "fi").
 * What is hashed, verified, counted and measured is this form.
 */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** Whether bcrypt reads every byte of this text (UTF-8, as bcryptjs encodes it). */
export function fitsBcrypt(text: string): boolean {
  return Buffer.byteLength(text, 'utf8') <= MAX_PASSWORD_BYTES;
}

/**
 * The form in which a password is compared with the common-password list, the email and
 * the username: NFKC, lower-cased, trimmed, every run of whitespace one space. Only for
 * those comparisons: what is hashed keeps its case and spaces.
 */
export function foldPassword(text: string): string {
  return normalizePassword(text).toLowerCase().trim().replace(/\s+/gu, ' ');
}
