import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { Piscina } from 'piscina';

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
  /**
   * Spends one bcrypt comparison for an account that does not exist, so that
   * "unknown email" and "wrong password" take the same time (user enumeration).
   */
  verifyNobody(password: string): Promise<false>;
  /** Stops the worker threads, if any. */
  close(): Promise<void>;
}

interface Bcrypt {
  hash(password: string, cost: number): Promise<string>;
  compare(password: string, hash: string): Promise<boolean>;
}

function withBcrypt(engine: Bcrypt, cost: number, close: () => Promise<void>): PasswordHasher {
  let dummyHash: Promise<string> | undefined;
  return {
    hash: (password) => engine.hash(password, cost),
    verify: (password, hash) => engine.compare(password, hash),
    async verifyNobody(password) {
      dummyHash ??= engine.hash(randomBytes(32).toString('base64url'), cost);
      await engine.compare(password, await dummyHash);
      return false;
    },
    close,
  };
}

/** bcrypt at the configured cost on the calling thread (bcryptjs yields between rounds). Tests and scripts use it. */
export function createPasswordHasher(cost: number): PasswordHasher {
  return withBcrypt(bcrypt, cost, async () => undefined);
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
  const engine: Bcrypt = {
    hash: (password, rounds) => pool.run({ op: 'hash', password, cost: rounds }) as Promise<string>,
    compare: (password, hash) => pool.run({ op: 'compare', password, hash }) as Promise<boolean>,
  };
  return withBcrypt(engine, cost, () => pool.destroy());
}
