import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { bodyHash, canonicalString, computeSignature } from '../../src/signature/signer';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem } from '../helpers/factories';

interface SignatureVector {
  name: string;
  clientId: string;
  secret: string;
  method: string;
  path: string;
  timestamp: string;
  nonce: string;
  body: string;
  bodySha256: string;
  canonical: string;
  signature: string;
}

// Computed with Python's hashlib/hmac, not with our signer, so they check it.
const vectors = JSON.parse(readFileSync(join(__dirname, '../vectors/signature.json'), 'utf8')) as {
  description: string;
  cases: SignatureVector[];
};
const cases = vectors.cases.map((vector) => [vector.name, vector] as const);

const SIGNATURE_CODES = ['SIGNATURE_MISSING', 'SIGNATURE_INVALID', 'SIGNATURE_EXPIRED', 'SIGNATURE_REPLAYED'];

describe('signature test vectors', () => {
  it('when the vectors file is read, then it has a description and the cases the mobile clients rely on', () => {
    expect(vectors.description).toEqual(expect.any(String));
    expect(vectors.cases.length).toBeGreaterThanOrEqual(6);
    // Guards the table: the lower-case and the non-ASCII cases must stay in it.
    expect(vectors.cases.some((vector) => vector.method !== vector.method.toUpperCase())).toBe(true);
    expect(vectors.cases.some((vector) => Buffer.byteLength(vector.body) !== vector.body.length)).toBe(true);
    expect(vectors.cases.some((vector) => vector.body === '')).toBe(true);
  });

  describe('signer', () => {
    it.each(cases)('when "%s" is hashed, then the body hash is the vector\'s', (_name, vector) => {
      expect(bodyHash(vector.body)).toBe(vector.bodySha256);
      expect(bodyHash(Buffer.from(vector.body, 'utf8'))).toBe(vector.bodySha256);
    });

    it.each(cases)('when "%s" is made canonical, then the string is the vector\'s', (_name, vector) => {
      expect(
        canonicalString({ method: vector.method, path: vector.path, timestamp: vector.timestamp, nonce: vector.nonce, body: vector.body }),
      ).toBe(vector.canonical);
    });

    it.each(cases)('when "%s" is signed, then the signature is the vector\'s', (_name, vector) => {
      const parts = { method: vector.method, path: vector.path, timestamp: vector.timestamp, nonce: vector.nonce };
      expect(computeSignature(vector.secret, { ...parts, body: vector.body })).toBe(vector.signature);
      // Raw bytes and their UTF-8 string are the same body.
      expect(computeSignature(vector.secret, { ...parts, body: Buffer.from(vector.body, 'utf8') })).toBe(vector.signature);
    });
  });

  describe('middleware', () => {
    let h: Harness;
    beforeAll(async () => {
      const clients = new Map(vectors.cases.map((vector) => [vector.clientId, vector.secret]));
      const hmacClients = [...clients].map(([id, secret]) => `${id}:${secret}`).join(',');
      h = await createHarness({ env: { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients } });
    });
    afterAll(async () => {
      await h.close();
    });

    /** The vector's request, as a client sends it, with a signature of our choosing. */
    const send = (vector: SignatureVector, signature: string) => {
      let req = request(h.app)
        [vector.method.toLowerCase() as 'get' | 'post' | 'delete'](vector.path)
        .set({ 'X-Client-Id': vector.clientId, 'X-Timestamp': vector.timestamp, 'X-Nonce': vector.nonce, 'X-Signature': signature });
      if (vector.body !== '') req = req.set('Content-Type', 'application/json').send(vector.body);
      return req;
    };

    it.each(cases)('when "%s" is sent at its timestamp, then the signature is accepted', async (_name, vector) => {
      h.clock.set(new Date(Number(vector.timestamp) * 1000));
      const res = await send(vector, vector.signature);
      expect(res.status).toBeLessThan(500);
      expect(SIGNATURE_CODES).not.toContain(res.body?.code);
    });

    it.each(cases)('when "%s" is sent with its signature altered, then it answers 401 SIGNATURE_INVALID', async (_name, vector) => {
      // Shows the route is really checked, so the acceptance above means something.
      h.clock.set(new Date(Number(vector.timestamp) * 1000));
      const last = vector.signature.at(-1) === '0' ? '1' : '0';
      const res = await send(vector, vector.signature.slice(0, -1) + last);
      expectProblem(res, 401, 'SIGNATURE_INVALID');
    });
  });
});
