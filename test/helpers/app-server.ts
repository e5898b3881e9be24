import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createApp } from '../../src/app';
import type { DatabaseHandle } from '../../src/db/database';
import { createLogger } from '../../src/logger';
import { createRecoveryQueue } from '../../src/recovery/recovery.queue';
import { loadKeyStore } from '../../src/tokens/keys';
import { createRunningClock, type RunningClock } from './clock';
import { openTestDatabase } from './databases';
import { testConfig } from './harness';
import { writeTestKey } from './server-process';

/** Gatehouse listening on a port of this process: what another service or a client app talks to. */
export interface AppServer {
  /** `http://127.0.0.1:<port>`, the same across restarts. */
  baseUrl: string;
  /** Where its keys are read from at (re)start, as KEYS_DIR. */
  keysDir: string;
  /** Its clock: real time, which a test may move ahead. */
  clock: RunningClock;
  /** Resolves once the recovery requests answered so far have done their work. */
  settled(): Promise<void>;
  /** Stops listening and starts again on the same port and database, its keys read anew: a restart. */
  restart(): Promise<void>;
  /** Stops listening, closes the database and removes the keys folder; safe to call twice. */
  dispose(): Promise<void>;
}

/**
 * Starts Gatehouse in this process on a free port of 127.0.0.1: the app over an embedded
 * database of its own, with a key made here in a temporary KEYS_DIR loaded as the server
 * loads it. For suites that need a real HTTP server but no process of its own (test/server
 * spawns one, for signals and shutdown).
 *
 * Defaults: cheap bcrypt, no logs, rate limits out of the way; `env` overrides them.
 */
export async function startAppServer(env: Record<string, string> = {}): Promise<AppServer> {
  const config = testConfig(env);
  const keysDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-keys-'));
  const clock = createRunningClock();
  let database: DatabaseHandle | undefined;
  let server: Server | undefined;
  let port = 0;
  // One queue across restarts, as the work of a request outlives its answer.
  const recoveryQueue = createRecoveryQueue({ logger: createLogger('silent') });

  async function listen(): Promise<void> {
    const keys = await loadKeyStore({ keysDir, jwtPrivateKey: config.jwtPrivateKey, generateIfMissing: false });
    const app = createApp({
      config,
      db: database!.db,
      keys,
      logger: createLogger('silent'),
      clock: clock.now,
      poolStats: database!.poolStats,
      recoveryQueue,
    });
    const listening = app.listen(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      listening.once('listening', resolve);
      listening.once('error', reject);
    });
    server = listening;
    port = (listening.address() as AddressInfo).port;
  }

  async function close(): Promise<void> {
    const running = server;
    server = undefined;
    if (!running) return;
    const closed = new Promise<void>((resolve) => running.close(() => resolve()));
    // Keep-alive connections (fetch keeps them) would hold close() open.
    running.closeAllConnections();
    await closed;
  }

  async function dispose(): Promise<void> {
    await close();
    await recoveryQueue.settled();
    await database?.close();
    database = undefined;
    rmSync(keysDir, { recursive: true, force: true });
  }

  try {
    await writeTestKey(keysDir);
    database = await openTestDatabase('pglite');
    await listen();
  } catch (error) {
    await dispose();
    throw error;
  }

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    keysDir,
    clock,
    settled: () => recoveryQueue.settled(),
    async restart() {
      await close();
      await listen();
    },
    dispose,
  };
}
