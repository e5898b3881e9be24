import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { Piscina } from 'piscina';
import { fitsBcrypt, MAX_PASSWORD_BYTES, normalizePassword } from './password-normalization';

/**
 * Hashes and verifies passwords as CONTRACT.md section 3 says: NFKC-normalised first, never
 * more than bcrypt's 72 bytes. Callers pass the password as typed.
 */
export interface PasswordHasher {
  /** bcrypt of the NFKC form; a TypeError if that is over 72 bytes (the policy refuses those first). */
  hash(password: string): Promise<string>;
  /** Whether the password matches; over 72 bytes never does, and costs the same bcrypt work. */
  verify(password: string, hash: string): Promise<boolean>;
  /**
   * Spends the bcrypt work `verify` would for an account that does not exist, so that
   * "unknown email" and "wrong password" take the same time (user enumeration).
   */
  verifyNobody(password: string): Promise<false>;
  /** Stops the worker threads, if any. */
  close(): Promise<void>;
}

/** bcrypt itself, on this thread or in workers: it hashes and compares exactly the text it is given. */
export interface BcryptEngine {
  hash(password: string, cost: number): Promise<string>;
  compare(password: string, hash: string): Promise<boolean>;
}

/** A text no password matches: it stands in for a candidate so the comparison still runs. */
function unmatchable(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The texts a typed password may have been hashed from, one slot per bcrypt comparison.
 * First the NFKC form, which every hash made since normalisation is of. Then, when the
 * typed text is not NFKC, the text as typed: hashes made before normalisation are of that.
 * A slot whose text is over 72 bytes holds no candidate (undefined) — bcrypt would compare
 * only its first 72 bytes — but still costs its comparison. The number of slots depends on
 * the typed text alone, never on the account or the outcome, so neither does the time.
 */
function candidateSlots(password: string): (string | undefined)[] {
  const normalized = normalizePassword(password);
  const slots = [fitsBcrypt(normalized) ? normalized : undefined];
  if (password !== normalized) slots.push(fitsBcrypt(password) ? password : undefined);
  return slots;
}

/**
 * A PasswordHasher on a bcrypt engine: where normalisation and the 72-byte rule live, for
 * every engine alike.
 */
export function createPasswordHasherOn(
  engine: BcryptEngine,
  cost: number,
  close: () => Promise<void> = async () => undefined,
): PasswordHasher {
  let dummyHash: Promise<string> | undefined;

  /** Runs every slot's comparison, even after a match: a short cut would time the outcome. */
  async function compareSlots(password: string, hash: string): Promise<boolean> {
    let matched = false;
    for (const candidate of candidateSlots(password)) {
      const same = await engine.compare(candidate ?? unmatchable(), hash);
      matched ||= candidate !== undefined && same;
    }
    return matched;
  }

  return {
    async hash(password) {
      const normalized = normalizePassword(password);
      if (!fitsBcrypt(normalized)) {
        throw new TypeError(`a password over ${MAX_PASSWORD_BYTES} bytes reached the hasher: check the password policy first`);
      }
      return engine.hash(normalized, cost);
    },
    verify: compareSlots,
    async verifyNobody(password) {
      dummyHash ??= engine.hash(unmatchable(), cost);
      await compareSlots(password, await dummyHash);
      return false;
    },
    close,
  };
}

/** bcrypt at the configured cost on the calling thread (bcryptjs yields between rounds). Tests and scripts use it. */
export function createPasswordHasher(cost: number): PasswordHasher {
  return createPasswordHasherOn(bcrypt, cost);
}

/**
 * bcrypt in a pool of worker threads (piscina), one per core by default: logins no longer
 * compete with every other request for the event loop, and use every core.
 */
export function createPooledPasswordHasher(cost: number, threads: number = os.availableParallelism()): PasswordHasher {
  const pool = new Piscina({
    filename: path.join(__dirname, 'bcrypt.worker.js'),
    minThreads: 1,
    maxThreads: Math.max(1, threads),
    idleTimeout: 30_000,
  });
  const engine: BcryptEngine = {
    hash: (password, rounds) => pool.run({ op: 'hash', password, cost: rounds }) as Promise<string>,
    compare: (password, hash) => pool.run({ op: 'compare', password, hash }) as Promise<boolean>,
  };
  return createPasswordHasherOn(engine, cost, () => pool.destroy());
}
