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

function isCanonicalBase64url(part: string): boolean {
  return /^[A-Za-z0-9_-]*$/.test(part) && Buffer.from(part, 'base64url').toString('base64url') === part;
}
