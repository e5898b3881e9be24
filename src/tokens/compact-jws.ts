/**
 * True when `token` has three segments, each in the one spelling base64url allows.
 *
 * Node decodes base64url leniently: the unused low bits of the last character and stray
 * padding are ignored, so without this check one signed token has many spellings that all
 * verify. A denylist, a cache or a log search keyed by the token string would then miss
 * its twins. Used by Gatehouse's own verifier and by `gatehouse/verify`; no dependencies.
 */
export function isCanonicalCompactJws(token: string): boolean {
  const parts = token.split('.');
  return parts.length === 3 && parts.every(isCanonicalBase64url);
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Unpadded base64url is canonical when its length leaves no lone character (length mod 4 is
 * not 1) and the bits the last character carries beyond the final byte are zero: 4 of its 6
 * bits when length mod 4 is 2, 2 when it is 3. Checked without decoding: this runs on
 * every request.
 */
function isCanonicalBase64url(part: string): boolean {
  if (!BASE64URL.test(part)) return false;
  const tail = part.length % 4;
  if (tail === 0) return true;
  if (tail === 1) return false;
  const unusedBits = ALPHABET.indexOf(part[part.length - 1]!) & (tail === 2 ? 0b1111 : 0b11);
  return unusedBits === 0;
}
