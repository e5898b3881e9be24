import fc from 'fast-check';
import { isCanonicalCompactJws } from '../../src/tokens/compact-jws';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** What canonical means, the slow way: decoding and encoding again gives the same text. */
const roundTrips = (part: string) => /^[A-Za-z0-9_-]*$/.test(part) && Buffer.from(part, 'base64url').toString('base64url') === part;

describe('isCanonicalCompactJws', () => {
  it('when a segment is any base64url text, then it is canonical exactly when it survives a decode and encode', () => {
    const segment = fc.string({ unit: fc.constantFrom(...ALPHABET), maxLength: 12 });
    fc.assert(
      fc.property(segment, segment, segment, (a, b, c) => {
        expect(isCanonicalCompactJws(`${a}.${b}.${c}`)).toBe(roundTrips(a) && roundTrips(b) && roundTrips(c));
      }),
      { numRuns: 2000 },
    );
  });

  it.each(ALPHABET.split(''))('when the last character is %s, then it is accepted exactly as the decoder writes it back', (last) => {
    for (const prefix of ['', 'A', 'AA', 'AAA']) {
      const part = prefix + last;
      expect(isCanonicalCompactJws(`${part}.e30.${part}`)).toBe(roundTrips(part));
    }
  });

  it.each(['a.b', 'a.b.c.d', 'a=.b.c', 'a.b.c ', 'a+.b.c', ''])('when the token is %j, then it is refused', (token) => {
    expect(isCanonicalCompactJws(token)).toBe(false);
  });
});
