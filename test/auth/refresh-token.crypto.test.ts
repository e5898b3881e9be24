import { createHash, randomUUID } from 'node:crypto';
import {
  hashRefreshToken,
  isWellFormedRefreshToken,
  newRefreshToken,
  openSuccessor,
  sealSuccessor,
} from '../../src/auth/refresh-token.crypto';

/** Flips one bit of a base64url box at a byte offset (negative: from the end). */
function flipBit(box: string, offset: number): string {
  const raw = Buffer.from(box, 'base64url');
  const index = offset < 0 ? raw.length + offset : offset;
  raw[index] = raw[index]! ^ 0x01;
  return raw.toString('base64url');
}

describe('refresh-token crypto', () => {
  describe('newRefreshToken', () => {
    it('when a token is made, then it is 43 characters of base64url (256 bits)', () => {
      const token = newRefreshToken();

      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    });

    it('when many tokens are made, then no two are equal', () => {
      const tokens = new Set(Array.from({ length: 1000 }, () => newRefreshToken()));

      expect(tokens.size).toBe(1000);
    });
  });

  describe('isWellFormedRefreshToken', () => {
    it('when the token is one the service made, then it is well-formed', () => {
      expect(isWellFormedRefreshToken(newRefreshToken())).toBe(true);
    });

    it.each([
      ['empty', ''],
      ['one character short', 'A'.repeat(42)],
      ['one character long', 'A'.repeat(44)],
      ['standard base64 with "+"', `${'A'.repeat(42)}+`],
      ['standard base64 with "/"', `${'A'.repeat(42)}/`],
      ['padded', `${'A'.repeat(42)}=`],
      ['with a space', `${'A'.repeat(21)} ${'A'.repeat(21)}`],
      ['with a trailing newline', `${'A'.repeat(43)}\n`],
      ['a JWT', 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'],
    ])('when the token is %s, then it is not well-formed', (_what, token) => {
      expect(isWellFormedRefreshToken(token)).toBe(false);
    });
  });

  describe('hashRefreshToken', () => {
    it('when a token is hashed, then the result is its lowercase hex SHA-256', () => {
      const token = newRefreshToken();

      expect(hashRefreshToken(token)).toBe(createHash('sha256').update(token).digest('hex'));
      expect(hashRefreshToken(token)).toMatch(/^[0-9a-f]{64}$/);
    });
  });

  describe('sealSuccessor / openSuccessor', () => {
    const parent = newRefreshToken();
    const parentId = randomUUID();
    const successor = newRefreshToken();

    it('when a box is opened with the token and id it was sealed for, then it gives the successor back', () => {
      const box = sealSuccessor(parent, parentId, successor);

      expect(openSuccessor(parent, parentId, box)).toBe(successor);
    });

    it('when a box is sealed, then it does not contain the successor or the parent token', () => {
      const box = sealSuccessor(parent, parentId, successor);

      expect(box).not.toContain(successor);
      expect(box).not.toContain(parent);
      expect(Buffer.from(box, 'base64url').toString('latin1')).not.toContain(successor);
    });

    it('when the same successor is sealed twice, then the boxes differ (a fresh IV each time)', () => {
      expect(sealSuccessor(parent, parentId, successor)).not.toBe(sealSuccessor(parent, parentId, successor));
    });

    it.each([
      ['another token', () => newRefreshToken(), () => parentId],
      ['another parent id', () => parent, () => randomUUID()],
    ])('when a box is opened with %s, then it does not open', (_what, token, id) => {
      const box = sealSuccessor(parent, parentId, successor);

      expect(openSuccessor(token(), id(), box)).toBeUndefined();
    });

    it.each([
      ['the IV', 0],
      ['the ciphertext', 12],
      ['the authentication tag', -1],
    ])('when a bit of %s is flipped, then the box does not open', (_where, offset) => {
      const box = sealSuccessor(parent, parentId, successor);

      expect(openSuccessor(parent, parentId, flipBit(box, offset))).toBeUndefined();
    });

    it.each([
      ['empty', ''],
      ['too short to hold an IV and a tag', Buffer.alloc(20).toString('base64url')],
      ['not base64url', '%%%%'],
    ])('when the box is %s, then it does not open', (_what, box) => {
      expect(openSuccessor(parent, parentId, box)).toBeUndefined();
    });
  });
});
