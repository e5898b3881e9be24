import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { buildKeyStore, type KeyStore } from '../../src/tokens/keys';

/** A fresh RSA key pair as PEM texts; generated in the test run, never committed. */
export function generateRsaPem(bits = 2048): { privatePem: string; publicPem: string; privateKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    privateKey,
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

let shared: { store: KeyStore; privatePem: string } | undefined;

/** One key store per test file (RSA generation is slow enough to share). */
export function testKeyStore(): { store: KeyStore; privatePem: string } {
  if (!shared) {
    const { privatePem } = generateRsaPem();
    shared = { store: buildKeyStore([{ name: '20260101T000000Z-test.key.pem', pem: privatePem }]), privatePem };
  }
  return shared;
}
