import { createHash, createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const generateRsaKeyPair = promisify(generateKeyPair);

/** The smallest RSA modulus we sign with or publish (RFC 7518 section 3.3). */
export const MIN_RSA_BITS = 2048;
/**
 * 2048 bits, as the large identity providers use for RS256: every login and refresh signs a
 * token on the request path, and a 3072-bit signature costs about seven times as much here
 * (measured: 0.35 ms against 2.5 ms) for strength RS256 verifiers do not ask for.
 */
const GENERATED_RSA_BITS = 2048;

/** An RSA public key as a JWKS entry. */
export interface PublicJwk {
  kty: 'RSA';
  n: string;
  e: string;
  kid: string;
  alg: 'RS256';
  use: 'sig';
}

export interface PublishedKey {
  kid: string;
  publicKey: KeyObject;
  /** From the file name that `keys:generate` writes; undefined for keys given otherwise. */
  createdAt: Date | undefined;
  /** Where it came from: a file name, or `JWT_PRIVATE_KEY`. */
  source: string;
}

export interface SigningKey extends PublishedKey {
  privateKey: KeyObject;
}

/** The keys a running service holds: one signs, all are published. */
export interface KeyStore {
  readonly signing: SigningKey;
  readonly published: ReadonlyMap<string, PublishedKey>;
  readonly jwks: { keys: PublicJwk[] };
}

/** A key that cannot be used; the message names the file, never its content. */
export class KeyError extends Error {
  override readonly name = 'KeyError';
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA public key: the members e, kty, n in that order. */
export function thumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  const canonical = JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  return createHash('sha256').update(canonical).digest('base64url');
}

function assertRsa(key: KeyObject, source: string): void {
  if (key.asymmetricKeyType !== 'rsa') throw new KeyError(`${source}: not an RSA key`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw new KeyError(`${source}: RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required`);
}

function toJwk(key: PublishedKey): PublicJwk {
  const jwk = key.publicKey.export({ format: 'jwk' });
  return { kty: 'RSA', n: String(jwk.n), e: String(jwk.e), kid: key.kid, alg: 'RS256', use: 'sig' };
}

function signingKeyFromPem(pem: string, source: string, createdAt: Date | undefined): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new KeyError(`${source}: not a readable PEM private key`);
  }
  assertRsa(privateKey, source);
  const publicKey = createPublicKey(privateKey);
  return { kid: thumbprint(publicKey), privateKey, publicKey, createdAt, source };
}

/** `20261123T132155Z` ↔ Date; file names start with it so that name order is age order. */
function stampOf(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}
function dateOfStamp(fileName: string): Date | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(fileName);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s] = match;
  return new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
}

export const PRIVATE_SUFFIX = '.key.pem';
export const PUBLIC_SUFFIX = '.pub.pem';

/**
 * Builds a key store from PEM texts: the newest private key signs; every key is published.
 * `signingPem` (JWT_PRIVATE_KEY) signs instead of the newest file when given.
 */
export function buildKeyStore(files: ReadonlyArray<{ name: string; pem: string }>, signingPem?: string): KeyStore {
  const privates = files.filter((f) => f.name.endsWith(PRIVATE_SUFFIX)).sort((a, b) => a.name.localeCompare(b.name));
  const publics = files.filter((f) => f.name.endsWith(PUBLIC_SUFFIX));
  const published = new Map<string, PublishedKey>();

  const signingKeys = privates.map((f) => signingKeyFromPem(f.pem, f.name, dateOfStamp(f.name)));
  for (const key of signingKeys) published.set(key.kid, key);

  // A public key alone (say, another deployment's, or one whose private half was removed) is published only.
  for (const f of publics) {
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey(f.pem);
    } catch {
      throw new KeyError(`${f.name}: not a readable PEM public key`);
    }
    assertRsa(publicKey, f.name);
    const kid = thumbprint(publicKey);
    if (!published.has(kid)) published.set(kid, { kid, publicKey, createdAt: dateOfStamp(f.name), source: f.name });
  }

  let signing = signingKeys.at(-1);
  if (signingPem !== undefined) {
    // Environments often flatten newlines; accept "\n" escapes.
    signing = signingKeyFromPem(signingPem.replace(/\\n/g, '\n'), 'JWT_PRIVATE_KEY', undefined);
    published.set(signing.kid, signing);
  }
  if (!signing) throw new KeyError('no signing key: run `npm run keys:generate` or set JWT_PRIVATE_KEY');

  return Object.freeze({
    signing,
    published,
    jwks: { keys: [...published.values()].map(toJwk) },
  });
}

/** Reads every `*.key.pem` and `*.pub.pem` in a folder (a missing folder holds none). */
export async function readKeyFiles(dir: string): Promise<Array<{ name: string; pem: string }>> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const pemNames = names.filter((n) => n.endsWith(PRIVATE_SUFFIX) || n.endsWith(PUBLIC_SUFFIX));
  return Promise.all(pemNames.map(async (name) => ({ name, pem: await fs.readFile(path.join(dir, name), 'utf8') })));
}

/**
 * The names of the files that hold the key `kid`: its private half, its public half, or
 * both. A file that does not parse is skipped here; {@link buildKeyStore} reports it.
 */
export function filesOfKid(files: ReadonlyArray<{ name: string; pem: string }>, kid: string): string[] {
  return files
    .filter((file) => {
      try {
        const publicKey = file.name.endsWith(PRIVATE_SUFFIX) ? createPublicKey(createPrivateKey(file.pem)) : createPublicKey(file.pem);
        return thumbprint(publicKey) === kid;
      } catch {
        return false;
      }
    })
    .map((file) => file.name)
    .sort();
}

/**
 * Generates an RSA key pair and writes it into `dir` as `<UTC stamp>-<kid prefix>.key.pem`
 * (mode 0600) and `.pub.pem`. Returns the new key's kid and file names.
 */
export async function writeNewKeyPair(
  dir: string,
  now: Date = new Date(),
): Promise<{ kid: string; privateFile: string; publicFile: string }> {
  const { privateKey, publicKey } = await generateRsaKeyPair('rsa', { modulusLength: GENERATED_RSA_BITS });
  const kid = thumbprint(publicKey);
  const base = `${stampOf(now)}-${kid.slice(0, 8)}`;
  await fs.mkdir(dir, { recursive: true });
  const privateFile = path.join(dir, base + PRIVATE_SUFFIX);
  const publicFile = path.join(dir, base + PUBLIC_SUFFIX);
  // wx: never overwrite a key that is already there.
  await fs.writeFile(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  await fs.writeFile(publicFile, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, flag: 'wx' });
  return { kid, privateFile, publicFile };
}

export interface LoadKeysOptions {
  keysDir: string;
  jwtPrivateKey?: string | undefined;
  /** Development only: generate a key into an empty KEYS_DIR instead of failing. */
  generateIfMissing: boolean;
  onGenerated?: (kid: string, file: string) => void;
  /**
   * Told of each private key file in `keysDir` that group or others may read or replace (mode
   * given, e.g. 0o644): whoever reads it can mint tokens. It names the file; never its content.
   */
  onInsecureFile?: (file: string, mode: number) => void;
}

/** Permission bits for group and others: a private key is for its owner alone (as OpenSSH holds too). */
const GROUP_OR_OTHER = 0o077;

async function reportInsecureKeyFiles(dir: string, names: readonly string[], report: (file: string, mode: number) => void): Promise<void> {
  for (const name of names.filter((n) => n.endsWith(PRIVATE_SUFFIX))) {
    const file = path.join(dir, name);
    // stat, not lstat: a mounted secret is often a link, and its target's mode is what counts.
    const mode = (await fs.stat(file)).mode & 0o777;
    if (mode & GROUP_OR_OTHER) report(file, mode);
  }
}

/** Loads the key store for the service, generating a development key when allowed and needed. */
export async function loadKeyStore(options: LoadKeysOptions): Promise<KeyStore> {
  let files = await readKeyFiles(options.keysDir);
  const hasSigningKey = options.jwtPrivateKey !== undefined || files.some((f) => f.name.endsWith(PRIVATE_SUFFIX));
  if (!hasSigningKey && options.generateIfMissing) {
    const { kid, privateFile } = await writeNewKeyPair(options.keysDir);
    options.onGenerated?.(kid, privateFile);
    files = await readKeyFiles(options.keysDir);
  }
  if (options.onInsecureFile) {
    await reportInsecureKeyFiles(
      options.keysDir,
      files.map((f) => f.name),
      options.onInsecureFile,
    );
  }
  return buildKeyStore(files, options.jwtPrivateKey);
}
