import 'dotenv/config';
import cluster from 'node:cluster';
import type { Server } from 'node:http';
import os from 'node:os';
import { createApp } from './app';
import { superviseWorkers } from './cluster';
import { type Config, ConfigError, loadConfig } from './config';
import { DataDirInUseError } from './db/data-dir-lock';
import { type DatabaseHandle, openDatabase } from './db/database';
import { migrateToLatest, migrationStatus } from './db/migrator';
import { answersWithin } from './health/health.routes';
import { createProcessLogger, type Logger } from './logger';
import { collectClusterMetrics } from './metrics/cluster-metrics';
import { createPooledPasswordHasher } from './passwords/password-hasher';
import { installProcessGuards } from './process-guards';
import { createMailDelivery } from './mail/delivery';
import type { MailDispatcher } from './mail/dispatcher';
import { createRecoveryQueue, type RecoveryQueue } from './recovery/recovery.queue';
import { connectRedis, type Redis, RedisConnectError } from './redis';
import { createKeyRing, KeyError, keyFolderReloader, type KeyRing, type KeyStore, loadKeyStore } from './tokens/keys';

/** Opens the database, migrating the embedded one; an external one must already be migrated. */
async function prepareDatabase(config: Config, logger: Logger): Promise<DatabaseHandle> {
  const handle = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    statementTimeoutMs: config.databaseStatementTimeout * 1000,
    onTightened: ({ dataDir, previousMode, files }) =>
      logger.warn(
        { dataDir, previousMode: `0${previousMode.toString(8)}`, files },
        'DATA_DIR was open to group or others: made it readable by its owner only (0700)',
      ),
  });
  if (handle.kind === 'pglite') {
    const applied = await migrateToLatest(handle.db);
    logger.info({ dataDir: config.dataDir, applied }, 'embedded database ready');
  } else {
    const pending = (await migrationStatus(handle.db)).filter((m) => !m.executedAt).map((m) => m.name);
    if (pending.length > 0) {
      await handle.close();
      throw new ConfigError(`DATABASE_URL has pending migrations (${pending.join(', ')}): run \`npm run migrate\` first`);
    }
  }
  return handle;
}

/**
 * Stops accepting, lets requests in flight finish within `timeoutSeconds`, then closes
 * idle and remaining connections.
 */
function closeServer(server: Server, timeoutSeconds: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.closeAllConnections();
      resolve();
    }, timeoutSeconds * 1000);
    timer.unref();
    // A keep-alive connection busy at close() stays open after its response until
    // keepAliveTimeout (Node 20), and its client may send more: close each as it goes idle,
    // and tell clients sending on one not to reuse it.
    server.on('request', (_req, res) => res.setHeader('Connection', 'close'));
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(timer);
      resolve();
    });
    // Keep-alive sockets with no request in flight would otherwise hold close() open.
    server.closeIdleConnections();
  });
}

/** Errors that stop start-up with their message alone: the operator's to fix, not a bug. */
function isStartupError(error: unknown): error is Error {
  return (
    error instanceof ConfigError || error instanceof KeyError || error instanceof RedisConnectError || error instanceof DataDirInUseError
  );
}

/**
 * Loads the signing keys; in development, generates one into an empty KEYS_DIR. Under
 * WEB_CONCURRENCY the primary does this once, before forking, and the workers only read
 * what it checked: they never race to generate a key each.
 */
function loadKeys(config: Config, logger: Logger, checkedByPrimary: boolean): Promise<KeyStore> {
  return loadKeyStore({
    keysDir: config.keysDir,
    jwtPrivateKey: config.jwtPrivateKey,
    generateIfMissing: !config.isProduction && !checkedByPrimary,
    onGenerated: (kid, file) => logger.warn({ kid, file }, 'KEYS_DIR had no signing key: generated a development key'),
    ...(checkedByPrimary ? {} : { onInsecureFile: reportInsecureKeyFile(logger) }),
  });
}

/** Logs a private key file open to group or others: at start-up, and at a reload that finds one. */
function reportInsecureKeyFile(logger: Logger): (file: string, mode: number) => void {
  return (file, mode) =>
    logger.warn({ file, mode: `0${mode.toString(8)}` }, 'private key file is readable or writable by group or others: chmod 600 it');
}

/**
 * The instance's key ring: KEYS_DIR re-read every KEYS_RELOAD_INTERVAL seconds and on SIGHUP
 * (a rotation needs no restart). A reading that fails keeps the keys in use and says why;
 * a change is logged with the kids only.
 */
function reloadingKeyRing(config: Config, logger: Logger, initial: KeyStore): { ring: KeyRing; stop: () => void } {
  const ring = createKeyRing({
    initial,
    load: keyFolderReloader({
      keysDir: config.keysDir,
      jwtPrivateKey: config.jwtPrivateKey,
      onInsecureFile: reportInsecureKeyFile(logger),
    }),
    onChange: (change) => logger.info(change, 'keys reloaded: the set of keys changed'),
    onReloadFailed: (reason) => logger.warn({ keysDir: config.keysDir, reason }, 'keys not reloaded: keeping the keys in use'),
  });
  const stopTimer = ring.reloadEvery(config.keysReloadInterval);
  // SIGHUP is an operator's "re-read your configuration", not a reason to die (Node's default).
  const onHangUp = () => {
    void ring.reload().then(({ ok, changed }) => logger.info({ signal: 'SIGHUP', ok, changed }, 'KEYS_DIR re-read'));
  };
  process.on('SIGHUP', onHangUp);
  return {
    ring,
    stop: () => {
      stopTimer();
      process.off('SIGHUP', onHangUp);
    },
  };
}

/** The ways to end the process: once the log is written out, or at once after flushing it synchronously. */
interface Exits {
  /** Waits (bounded) until the log is written, then exits: the last lines stay in order. */
  afterLog(code: number): Promise<never>;
  /** Writes the log's buffer out synchronously and exits, for paths that must not wait. */
  now(code: number): never;
}

/**
 * The primary of `WEB_CONCURRENCY` > 1 workers: it neither opens the database nor serves.
 * It checks the keys once, forks the workers, replaces one that dies (unless they keep dying
 * right after they start), and on SIGTERM/SIGINT stops them all and exits once they have.
 */
async function runPrimary(config: Config, logger: Logger, exit: Exits): Promise<void> {
  try {
    await loadKeys(config, logger, false);
  } catch (error) {
    if (!isStartupError(error)) throw error;
    logger.fatal(error.message);
    return exit.afterLog(1);
  }
  if (!config.redisUrl) {
    logger.warn({ workers: config.webConcurrency }, 'no REDIS_URL: each worker counts rate limits on its own');
  }
  const supervisor = superviseWorkers({
    workers: config.webConcurrency,
    fork: () => cluster.fork(),
    logger,
    // Each worker's own drain, then closing its pool, hasher and Redis connection.
    stopTimeoutMs: (config.shutdownTimeout + 5) * 1000,
    exit: (code) => void exit.afterLog(code),
  });
  // /metrics of any worker answers for all of them: the primary collects and adds them up.
  // Structured clone, not JSON, over IPC: a gauge's NaN must not arrive as null.
  cluster.setupPrimary({ serialization: 'advanced' });
  const metrics = collectClusterMetrics();
  cluster.on('message', (worker, message) => metrics.message(worker, message));
  cluster.on('listening', (worker) => {
    supervisor.listening(worker);
    metrics.listening(worker);
  });
  cluster.on('exit', (worker, code, signal) => {
    supervisor.exited(worker, code, signal);
    metrics.exited(worker);
  });
  process.on('SIGTERM', () => supervisor.stop('SIGTERM'));
  process.on('SIGINT', () => supervisor.stop('SIGINT'));
  // The primary holds no keys: each worker re-reads KEYS_DIR itself.
  process.on('SIGHUP', () => supervisor.reload('SIGHUP'));
  supervisor.start();
}

/**
 * Waits for the recovery queue to empty, for at most `ms`; what is left then is logged (a
 * count: its users ask again) and fails when the pool closes.
 */
async function settleWithin(queue: RecoveryQueue, ms: number, logger: Logger): Promise<void> {
  const settled = await answersWithin(queue.settled(), Math.max(0, ms));
  if (!settled) logger.warn({ pending: queue.pending() }, 'shutting down: recovery requests left unfinished at SHUTDOWN_TIMEOUT');
}

/**
 * One instance: opens the database and Redis, listens, and drains on SIGTERM/SIGINT. The
 * whole server with `WEB_CONCURRENCY` 1; each worker of the cluster otherwise.
 */
async function serve(config: Config, logger: Logger, exit: Exits): Promise<void> {
  const worker = cluster.worker;
  let database: DatabaseHandle;
  let keys;
  let redis: Redis | undefined;
  let mail: MailDispatcher | undefined;
  try {
    keys = await loadKeys(config, logger, worker !== undefined);
    database = await prepareDatabase(config, logger);
    // Undefined with MAIL_DELIVERY=outbox. Operator templates are checked here, before listening.
    mail = await createMailDelivery({ config, db: database.db, logger });
    if (config.redisUrl) {
      // Throttled: a Redis outage would otherwise log every reconnect attempt.
      let lastLogged = 0;
      redis = await connectRedis(config.redisUrl, (error) => {
        if (Date.now() - lastLogged > 10_000) {
          lastLogged = Date.now();
          logger.error({ err: error }, 'redis connection error');
        }
      });
    }
  } catch (error) {
    if (!isStartupError(error)) throw error;
    logger.fatal(error.message);
    return exit.afterLog(1);
  }

  const reloading = reloadingKeyRing(config, logger, keys);
  // One bcrypt thread per core in all: the workers share the cores, and more threads than
  // cores would only make hashing queue for the CPU beside the event loops.
  const hasherThreads = Math.max(1, Math.floor(os.availableParallelism() / config.webConcurrency));
  const hasher = createPooledPasswordHasher(config.bcryptCost, hasherThreads);
  // Requests for a message by email, answered at once and done after: waited for at shutdown.
  const recoveryQueue = createRecoveryQueue({ logger });
  const app = createApp({
    config,
    db: database.db,
    keys: reloading.ring,
    logger,
    hasher,
    recoveryQueue,
    poolStats: () => database.poolStats(),
    ...(worker ? { clusterPrimary: process } : {}),
    ...(redis ? { redis } : {}),
    ...(mail ? { mailDispatcher: mail, onMailQueued: () => mail.wake() } : {}),
  });
  // Delivers what an earlier run committed but did not send, then polls and wakes on each commit.
  mail?.start();
  const server = app.listen(config.port, config.host, () => {
    logger.info(
      {
        host: config.host,
        port: config.port,
        kid: keys.signing.kid,
        database: database.kind,
        hmac: config.hmacMode,
        redis: Boolean(redis),
        ...(worker ? { worker: worker.id } : {}),
      },
      'gatehouse listening',
    );
  });
  server.on('error', (error) => {
    logger.fatal({ err: error }, 'could not listen');
    void exit.afterLog(1);
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const deadline = Date.now() + config.shutdownTimeout * 1000;
    reloading.stop();
    // Close the listener before saying so: whoever reacts to the line must find the port closed.
    const closed = closeServer(server, config.shutdownTimeout);
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    await closed;
    // The requests answered 202 whose work is still queued run before the dispatcher stops and
    // the pool closes, within SHUTDOWN_TIMEOUT of the signal; what they commit is sent by a later
    // pass (of any instance) if not by the one under way.
    await settleWithin(recoveryQueue, deadline - Date.now(), logger);
    // The pass under way finishes (bounded by the transports' timeouts) before the pool closes.
    await mail?.stop();
    await database.close();
    await hasher.close();
    await redis?.quit().catch(() => undefined);
    logger.info('stopped');
    await exit.afterLog(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** Writes out what the log still holds; replaced once the logger exists. */
let flushLog: () => void = () => undefined;

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const { logger, flushed, flushSync } = createProcessLogger(config.logLevel);
  flushLog = flushSync;
  // The log is written asynchronously: every exit writes out what it still holds first.
  const exit: Exits = {
    now(code) {
      flushSync();
      process.exit(code);
    },
    async afterLog(code) {
      await flushed();
      return exit.now(code);
    },
  };
  // From here on, a failure nothing handles ends the process (logged), for its supervisor to restart.
  // The process is in a state nobody planned for: it exits at once rather than run on while the log drains.
  installProcessGuards(process, logger, (code) => exit.now(code));
  // SIGHUP re-reads KEYS_DIR once the keys are loaded; until then (and in the primary, before
  // it forks) it must not end the process, as Node's default would: the keys are read at start anyway.
  process.on('SIGHUP', () => undefined);

  if (config.webConcurrency > 1 && cluster.isPrimary) await runPrimary(config, logger, exit);
  else await serve(config, logger, exit);
}

main().catch((error: unknown) => {
  flushLog();
  console.error('gatehouse failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
