import { createHash, createPrivateKey, randomBytes, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
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
  /**
   * From when a private key may sign: the `.from-<stamp>` of its file name, else its creation
   * stamp (files written before activation times existed). Undefined for a public key alone and
   * for `JWT_PRIVATE_KEY` (which always signs).
   */
  activatesAt: Date | undefined;
  /** Where it came from: a file name, or `JWT_PRIVATE_KEY`. */
  source: string;
}

export interface SigningKey extends PublishedKey {
  privateKey: KeyObject;
}

/** What a published key does at a given moment (keys:list). */
export type KeyState = 'signing' | 'pending' | 'published';

/**
 * One reading of the keys: every key is published; which one signs depends on the time. The
 * newest private key (by creation stamp, i.e. name order) whose activation time has passed
 * signs; `JWT_PRIVATE_KEY`, when set, always signs. Immutable: a reload builds a new one.
 */
export interface KeyStore {
  /** The key that signed when this store was built (see {@link KeyStore.signingAt}). */
  readonly signing: SigningKey;
  readonly published: ReadonlyMap<string, PublishedKey>;
  readonly jwks: { keys: PublicJwk[] };
  /** The private keys of the files, oldest first. */
  readonly privateKeys: readonly SigningKey[];
  /** `JWT_PRIVATE_KEY`, which signs whatever the files say. */
  readonly override: SigningKey | undefined;
  /** The key that signs at `now`. */
  signingAt(now: Date): SigningKey;
  /** The half-open span around `now` in which {@link KeyStore.signingAt} gives the same key (for caching). */
  signingSpan(now: Date): { from: number; until: number };
  /** Signing, pending (a private key whose activation is still ahead) or published only. */
  stateAt(kid: string, now: Date): KeyState | undefined;
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

function signingKeyFromPem(pem: string, source: string, createdAt: Date | undefined, activatesAt: Date | undefined): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new KeyError(`${source}: not a readable PEM private key`);
  }
  assertRsa(privateKey, source);
  const publicKey = createPublicKey(privateKey);
  return { kid: thumbprint(publicKey), privateKey, publicKey, createdAt, activatesAt, source };
}

/** `20261123T132155Z` ↔ Date; file names start with it so that name order is age order. */
export function stampOf(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}
const STAMP = /(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/;
function dateOf(match: RegExpExecArray | null): Date | undefined {
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s] = match;
  const date = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
function dateOfStamp(fileName: string): Date | undefined {
  return dateOf(new RegExp(`^${STAMP.source}`).exec(fileName));
}
/** `….from-20261123T140000Z.key.pem`: the activation time `keys:generate --activate-in` writes. */
function activationOf(fileName: string): Date | undefined {
  return dateOf(new RegExp(`\\.from-${STAMP.source}\\${PRIVATE_SUFFIX}$`).exec(fileName));
}

export const PRIVATE_SUFFIX = '.key.pem';
export const PUBLIC_SUFFIX = '.pub.pem';

/** The `max-age` of GET /.well-known/jwks.json: how long a consumer may use the key set it fetched. */
export const JWKS_MAX_AGE_SECONDS = 300;
/** Added to the default activation delay for clock differences and slow reloads. */
export const ACTIVATION_MARGIN_SECONDS = 60;

/**
 * The default delay between writing a key and its first signature: by then every instance
 * has re-read KEYS_DIR (`reloadIntervalSeconds`) and every cached JWKS fetched before the
 * key was published has expired (`max-age`), so no verifier meets a kid it does not know.
 */
export function defaultActivationDelaySeconds(reloadIntervalSeconds: number): number {
  return JWKS_MAX_AGE_SECONDS + reloadIntervalSeconds + ACTIVATION_MARGIN_SECONDS;
}

const NEVER = Number.POSITIVE_INFINITY;

/**
 * Builds a key store from PEM texts: every key is published; the newest private key whose
 * activation time has passed signs (see {@link KeyStore}). `signingPem` (JWT_PRIVATE_KEY)
 * signs instead when given. `now` only sets {@link KeyStore.signing}.
 */
export function buildKeyStore(files: ReadonlyArray<{ name: string; pem: string }>, signingPem?: string, now: Date = new Date()): KeyStore {
  const privates = files.filter((f) => f.name.endsWith(PRIVATE_SUFFIX)).sort((a, b) => a.name.localeCompare(b.name));
  const publics = files.filter((f) => f.name.endsWith(PUBLIC_SUFFIX));
  const published = new Map<string, PublishedKey>();

  const privateKeys = privates.map((f) => {
    const createdAt = dateOfStamp(f.name);
    // A file without an activation time (written before they existed) is active since its creation.
    return signingKeyFromPem(f.pem, f.name, createdAt, activationOf(f.name) ?? createdAt ?? new Date(0));
  });
  for (const key of privateKeys) published.set(key.kid, key);

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
    if (!published.has(kid)) published.set(kid, { kid, publicKey, createdAt: dateOfStamp(f.name), activatesAt: undefined, source: f.name });
  }

  let override: SigningKey | undefined;
  if (signingPem !== undefined) {
    // Environments often flatten newlines; accept "\n" escapes.
    override = signingKeyFromPem(signingPem.replace(/\\n/g, '\n'), 'JWT_PRIVATE_KEY', undefined, undefined);
    published.set(override.kid, override);
  }
  if (!override && privateKeys.length === 0) throw new KeyError('no signing key: run `npm run keys:generate` or set JWT_PRIVATE_KEY');

  const activations = [...new Set(privateKeys.map((key) => key.activatesAt!.getTime()))].sort((a, b) => a - b);
  // Before any key is active (a first key generated with a delay), the first to activate signs: nothing else can.
  const firstToActivate = [...privateKeys].sort((a, b) => a.activatesAt!.getTime() - b.activatesAt!.getTime())[0];

  function signingAt(when: Date): SigningKey {
    if (override) return override;
    const t = when.getTime();
    for (let i = privateKeys.length - 1; i >= 0; i--) {
      if (privateKeys[i]!.activatesAt!.getTime() <= t) return privateKeys[i]!;
    }
    return firstToActivate!;
  }

  const store: KeyStore = {
    signing: signingAt(now),
    published,
    jwks: { keys: [...published.values()].map(toJwk) },
    privateKeys,
    override,
    signingAt,
    signingSpan(when) {
      if (override) return { from: -NEVER, until: NEVER };
      const t = when.getTime();
      // The signing key changes only at an activation instant.
      const from = activations.filter((a) => a <= t).at(-1) ?? -NEVER;
      const until = activations.find((a) => a > t) ?? NEVER;
      return { from, until };
    },
    stateAt(kid, when) {
      const key = published.get(kid);
      if (!key) return undefined;
      if (signingAt(when).kid === kid) return 'signing';
      if (!override && key.activatesAt !== undefined && key.activatesAt > when) return 'pending';
      return 'published';
    },
  };
  return Object.freeze(store);
}

/**
 * Reads every `*.key.pem` and `*.pub.pem` in a folder (a missing folder holds none). A file
 * that disappears between the listing and its reading (keys:retire moving it) is skipped.
 */
export async function readKeyFiles(dir: string): Promise<Array<{ name: string; pem: string }>> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const pemNames = names.filter((n) => n.endsWith(PRIVATE_SUFFIX) || n.endsWith(PUBLIC_SUFFIX));
  const read = await Promise.all(
    pemNames.map(async (name) => {
      try {
        return { name, pem: await fs.readFile(path.join(dir, name), 'utf8') };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new KeyError(`${name}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }),
  );
  return read.filter((file) => file !== undefined);
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
 * Writes `content` to `file` as one step for a reader: into a temporary name (which no
 * reader picks up: it does not end in .pem), then linked to its name. link(), unlike
 * rename(), fails with EEXIST instead of replacing a key that is already there.
 */
async function writeAtomically(file: string, content: string | Buffer, mode: number): Promise<void> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  await fs.writeFile(temporary, content, { mode, flag: 'wx' });
  try {
    await fs.link(temporary, file);
  } finally {
    await fs.unlink(temporary);
  }
}

/**
 * Generates an RSA key pair and writes it into `dir` as `<UTC stamp>-<kid prefix>.key.pem`
 * (mode 0600) and `.pub.pem`. With `activatesAt` later than `now`, the private key's name
 * carries it (`….from-<stamp>.key.pem`): the key is published at once and signs from then.
 * The public half is written first and each file appears whole, so an instance re-reading the
 * folder meanwhile sees the new key published, or published and ready to sign, never half of it.
 */
export async function writeNewKeyPair(
  dir: string,
  now: Date = new Date(),
  activatesAt: Date = now,
): Promise<{ kid: string; privateFile: string; publicFile: string; activatesAt: Date }> {
  const { privateKey, publicKey } = await generateRsaKeyPair('rsa', { modulusLength: GENERATED_RSA_BITS });
  const kid = thumbprint(publicKey);
  const base = `${stampOf(now)}-${kid.slice(0, 8)}`;
  // Stamps are whole seconds: an activation within the creation second is "now".
  const delayed = stampOf(activatesAt) > stampOf(now);
  await fs.mkdir(dir, { recursive: true });
  const privateFile = path.join(dir, base + (delayed ? `.from-${stampOf(activatesAt)}` : '') + PRIVATE_SUFFIX);
  const publicFile = path.join(dir, base + PUBLIC_SUFFIX);
  await writeAtomically(publicFile, publicKey.export({ type: 'spki', format: 'pem' }), 0o644);
  try {
    await writeAtomically(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), 0o600);
  } catch (error) {
    // Only when the public half is the one just written (not one that was already there).
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') await fs.unlink(publicFile).catch(() => undefined);
    throw error;
  }
  return { kid, privateFile, publicFile, activatesAt: dateOfStamp(stampOf(delayed ? activatesAt : now))! };
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
  /** Sets {@link KeyStore.signing}; default the system time. */
  now?: Date;
  /**
   * Refuses (KeyError naming the file) a key file that someone other than this process's user
   * could have put there or replaced: writable by group or others, or owned by another user
   * than this process's, root or the folder's owner. What a reload does ({@link keyFolderReloader}).
   */
  refuseReplaceable?: boolean;
}

/** Permission bits for group and others: a private key is for its owner alone (as OpenSSH holds too). */
const GROUP_OR_OTHER = 0o077;

async function reportInsecureKeyFiles(dir: string, names: readonly string[], report: (file: string, mode: number) => void): Promise<void> {
  for (const name of names.filter((n) => n.endsWith(PRIVATE_SUFFIX))) {
    const file = path.join(dir, name);
    // stat, not lstat: a mounted secret is often a link, and its target's mode is what counts.
    let mode: number;
    try {
      mode = (await fs.stat(file)).mode & 0o777;
    } catch {
      continue; // Moved away meanwhile (keys:retire).
    }
    if (mode & GROUP_OR_OTHER) report(file, mode);
  }
}

/** Write permission for group and others: whoever has it can replace a key file. */
const GROUP_OR_OTHER_WRITE = 0o022;

/**
 * Throws a KeyError for the first key file (private or public: either is published, and
 * verifies tokens) that is writable by group or others, or owned by a user who is neither this
 * process's, root, nor the owner of the folder (who provisions it). A key planted by another
 * user, through a folder they may write to, is theirs. It names the file, its mode or owner;
 * never its content.
 */
async function refuseReplaceableKeyFiles(dir: string, names: readonly string[]): Promise<void> {
  const uid = process.getuid?.();
  // No files (JWT_PRIVATE_KEY alone, without a folder): nothing to trust. No owners on this platform.
  if (uid === undefined || names.length === 0) return;
  const trusted = new Set([uid, 0, (await fs.stat(dir)).uid]);
  for (const name of [...names].sort()) {
    let stats;
    try {
      stats = await fs.stat(path.join(dir, name));
    } catch {
      continue; // Moved away meanwhile (keys:retire).
    }
    const mode = stats.mode & 0o777;
    if (mode & GROUP_OR_OTHER_WRITE) {
      throw new KeyError(`${name}: writable by group or others (mode 0${mode.toString(8)}); not trusted until it is chmod go-w`);
    }
    if (!trusted.has(stats.uid)) {
      throw new KeyError(`${name}: owned by uid ${stats.uid}, neither this process's user, root, nor the owner of KEYS_DIR; not trusted`);
    }
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
  if (options.refuseReplaceable) {
    await refuseReplaceableKeyFiles(
      options.keysDir,
      files.map((f) => f.name),
    );
  }
  if (options.onInsecureFile) {
    await reportInsecureKeyFiles(
      options.keysDir,
      files.map((f) => f.name),
      options.onInsecureFile,
    );
  }
  return buildKeyStore(files, options.jwtPrivateKey, options.now);
}

export interface KeyFolderReloaderOptions {
  keysDir: string;
  jwtPrivateKey?: string | undefined;
  /** As {@link LoadKeysOptions.onInsecureFile}; told once per file and mode, not at every reload. */
  onInsecureFile?: (file: string, mode: number) => void;
}

/**
 * How a running instance re-reads KEYS_DIR (the `load` of {@link createKeyRing}). Any key it
 * finds is published at once, verifies tokens, and may sign: unattended, every
 * KEYS_RELOAD_INTERVAL, a key planted in the folder would be trusted within a minute, where it
 * used to need a restart someone watches. So a reading is refused (the ring keeps its keys and
 * says why) while a key file could have been put there or replaced by another user: writable
 * by group or others, or owned by neither this process's user, root, nor the folder's owner. A private key file that
 * group or others may read is reported, as at start-up, once per file and mode.
 */
export function keyFolderReloader(options: KeyFolderReloaderOptions): () => Promise<KeyStore> {
  const reported = new Set<string>();
  return () =>
    loadKeyStore({
      keysDir: options.keysDir,
      jwtPrivateKey: options.jwtPrivateKey,
      generateIfMissing: false,
      refuseReplaceable: true,
      onInsecureFile: (file, mode) => {
        const seen = `${file}\0${mode}`;
        if (reported.has(seen)) return;
        reported.add(seen);
        options.onInsecureFile?.(file, mode);
      },
    });
}

/** What changed between two readings of the keys; only kids and file names, never key material. */
export interface KeyRingChange {
  added: string[];
  removed: string[];
  /** The key that signs now, and the keys waiting for their activation time. */
  signing: string;
  pending: Array<{ kid: string; activatesAt: string }>;
}

export interface KeyRingOptions {
  /** The keys read at start-up. */
  initial: KeyStore;
  /** Reads the keys again (KEYS_DIR and JWT_PRIVATE_KEY); throws KeyError (or an I/O error) when they cannot be used. */
  load?: () => Promise<KeyStore>;
  /** Told when a reload changed the set of keys. */
  onChange?: (change: KeyRingChange) => void;
  /** Told when a reload failed: the ring keeps the keys it has. The message names a file, never key content. */
  onReloadFailed?: (reason: string) => void;
  /** The time the change report is computed at (which key signs now); default the system clock. */
  clock?: () => Date;
}

/**
 * The keys a running instance holds, re-read while it runs: per request it answers which key
 * signs now (cached until the next activation instant) and which keys are published.
 */
export interface KeyRing {
  /** The key set read last. */
  current(): KeyStore;
  /** The key that signs at `now`. */
  signingKey(now: Date): SigningKey;
  /**
   * Reads the keys again and swaps them in when they are usable; otherwise keeps the current
   * ones (and says why through `onReloadFailed`). Concurrent calls share one reading.
   */
  reload(): Promise<{ ok: boolean; changed: boolean }>;
  /** Reloads every `intervalSeconds` (an unref'd timer) until the returned function is called. */
  reloadEvery(intervalSeconds: number): () => void;
}

function describeFailure(error: unknown): string {
  if (error instanceof KeyError) return error.message;
  const code = (error as NodeJS.ErrnoException).code;
  // An I/O error names the path (a folder or file), not what is in it.
  return error instanceof Error ? `${code ? `${code}: ` : ''}${error.message.split('\n')[0]}` : String(error);
}

function changeBetween(before: KeyStore, after: KeyStore, now: Date): KeyRingChange | undefined {
  const added = [...after.published.keys()].filter((kid) => !before.published.has(kid));
  const removed = [...before.published.keys()].filter((kid) => !after.published.has(kid));
  const sameActivations = [...after.published.values()].every(
    (key) => before.published.get(key.kid)?.activatesAt?.getTime() === key.activatesAt?.getTime(),
  );
  const sameSigner = before.override?.kid === after.override?.kid;
  if (added.length === 0 && removed.length === 0 && sameActivations && sameSigner) return undefined;
  return {
    added,
    removed,
    signing: after.signingAt(now).kid,
    pending: after.privateKeys
      .filter((key) => after.stateAt(key.kid, now) === 'pending')
      .map((key) => ({ kid: key.kid, activatesAt: key.activatesAt!.toISOString() })),
  };
}

/** Accepts either a ring or a fixed key set (tests, tools that never reload): the set as a ring that never reloads. */
export function asKeyRing(keys: KeyStore | KeyRing): KeyRing {
  return 'signingKey' in keys ? keys : createKeyRing({ initial: keys });
}

export function createKeyRing(options: KeyRingOptions): KeyRing {
  let store = options.initial;
  // The signing key and the span of time it stays the signing key: most requests compare two numbers.
  let cached: { store: KeyStore; key: SigningKey; from: number; until: number } | undefined;
  let reading: Promise<{ ok: boolean; changed: boolean }> | undefined;

  function signingKey(now: Date): SigningKey {
    const t = now.getTime();
    if (cached && cached.store === store && t >= cached.from && t < cached.until) return cached.key;
    const span = store.signingSpan(now);
    cached = { store, key: store.signingAt(now), ...span };
    return cached.key;
  }

  async function readAgain(): Promise<{ ok: boolean; changed: boolean }> {
    if (!options.load) return { ok: true, changed: false };
    let next: KeyStore;
    try {
      next = await options.load();
    } catch (error) {
      options.onReloadFailed?.(describeFailure(error));
      return { ok: false, changed: false };
    }
    const change = changeBetween(store, next, (options.clock ?? (() => new Date()))());
    store = next;
    if (change) options.onChange?.(change);
    return { ok: true, changed: change !== undefined };
  }

  function reload(): Promise<{ ok: boolean; changed: boolean }> {
    reading ??= readAgain().finally(() => {
      reading = undefined;
    });
    return reading;
  }

  return {
    current: () => store,
    signingKey,
    reload,
    reloadEvery(intervalSeconds) {
      const timer = setInterval(() => void reload(), intervalSeconds * 1000);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}

/** What keys:retire needs to know to tell whether a token may still carry a key. */
export interface RetirementRules {
  /** ACCESS_TOKEN_TTL. */
  accessTokenTtl: number;
  /** KEYS_RELOAD_INTERVAL: an instance may sign with the old key until it has read the new one. */
  reloadInterval: number;
  /** Seconds past `exp` a verifier still accepts a token (Gatehouse's and gatehouse/verify's default: 30). */
  clockTolerance: number;
}

export type Retirement =
  | { ok: true; why: 'pending' | 'superseded'; safeSince?: Date }
  | { ok: false; why: 'signing' | 'unknown-kid' | 'unknown-history' }
  | { ok: false; why: 'too-soon'; safeAt: Date }
  | { ok: false; why: 'activating'; activatesAt: Date };

/**
 * Whether retiring `kid` at `now` may refuse a token still in use. A key stops signing once a
 * newer key is active on every instance: its activation time, or (when it was activated at
 * once) the moment the last instance re-read KEYS_DIR after it was written. A token it signed
 * then lives ACCESS_TOKEN_TTL more, plus the verifiers' clock tolerance.
 */
export function retirementOf(store: KeyStore, kid: string, now: Date, rules: RetirementRules): Retirement {
  const key = store.published.get(kid);
  if (!key) return { ok: false, why: 'unknown-kid' };
  if (store.signingAt(now).kid === kid) return { ok: false, why: 'signing' };
  // A key that has never been active never signed (unless it was the first and only one: then it signs now).
  if (key.activatesAt !== undefined && key.activatesAt > now) {
    // But an instance reads the retirement up to KEYS_RELOAD_INTERVAL later (and its clock may
    // be ahead): a key that will sign within that time may sign there first, and its tokens are
    // then refused everywhere once the instances have dropped it.
    const unseenFor = (rules.reloadInterval + ACTIVATION_MARGIN_SECONDS) * 1000;
    const willSign = store.signingAt(key.activatesAt).kid === kid;
    if (willSign && key.activatesAt.getTime() - now.getTime() <= unseenFor)
      return { ok: false, why: 'activating', activatesAt: key.activatesAt };
    return { ok: true, why: 'pending' };
  }
  if (key.createdAt === undefined || key.source === 'JWT_PRIVATE_KEY') return { ok: false, why: 'unknown-history' };
  // The files' keys after it in name order (creation order) supersede it from their activation on.
  const newer = store.privateKeys.filter((other) => other.source.localeCompare(key.source) > 0 && other.kid !== kid);
  const stops = newer.map((other) =>
    Math.max(other.activatesAt!.getTime(), (other.createdAt?.getTime() ?? 0) + rules.reloadInterval * 1000),
  );
  if (stops.length === 0) {
    // Nothing newer in the folder: JWT_PRIVATE_KEY signs instead, since a moment no file tells.
    return { ok: false, why: 'unknown-history' };
  }
  const safeAt = new Date(Math.min(...stops) + (rules.accessTokenTtl + rules.clockTolerance) * 1000);
  return safeAt <= now ? { ok: true, why: 'superseded', safeSince: safeAt } : { ok: false, why: 'too-soon', safeAt };
}
