import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

/** 32 random bytes, base64url: 256 bits, 43 characters. */
const TOKEN_BYTES = 32;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const BOX_INFO = 'gatehouse/refresh-successor/v1';

export function newRefreshToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

/** Cheap shape check, so garbage never reaches the database. */
export function isWellFormedRefreshToken(token: string): boolean {
  return TOKEN_PATTERN.test(token);
}

/**
 * What the database stores instead of the token. A fast hash is enough: the token has
 * 256 bits of entropy, so there is nothing to brute-force (unlike a password).
 */
export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function boxKey(parentToken: string, parentId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(parentToken), Buffer.from(parentId), BOX_INFO, 32));
}

/**
 * Encrypts a rotated token's successor under a key derived from the rotated token itself
 * (HKDF, then AES-256-GCM), so an idempotent retry can get the same successor back while
 * the stored row stays useless to anyone who has only the database.
 */
export function sealSuccessor(parentToken: string, parentId: string, successor: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', boxKey(parentToken, parentId), iv);
  cipher.setAAD(Buffer.from(parentId));
  const sealed = Buffer.concat([cipher.update(successor, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, sealed, cipher.getAuthTag()]).toString('base64url');
}

/** Opens what {@link sealSuccessor} made; undefined when the box does not open with this token. */
export function openSuccessor(parentToken: string, parentId: string, box: string): string | undefined {
  try {
    const raw = Buffer.from(box, 'base64url');
    // IV and a full 16-byte tag at least: a short tag would weaken GCM's authentication.
    if (raw.length < 12 + 16) return undefined;
    const iv = raw.subarray(0, 12);
    const tag = raw.subarray(raw.length - 16);
    const decipher = createDecipheriv('aes-256-gcm', boxKey(parentToken, parentId), iv);
    decipher.setAAD(Buffer.from(parentId));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
