import 'dotenv/config';
import type { Server } from 'node:http';
import { createApp } from './app';
import { type Config, ConfigError, loadConfig } from './config';
import { DataDirInUseError } from './db/data-dir-lock';
import { type DatabaseHandle, openDatabase } from './db/database';
import { migrateToLatest, migrationStatus } from './db/migrator';
import { createLogger, type Logger } from './logger';
import { createPooledPasswordHasher } from './passwords/password-hasher';
import { installProcessGuards } from './process-guards';
import { connectRedis, type Redis, RedisConnectError } from './redis';
import { KeyError, loadKeyStore } from './tokens/keys';

/** Opens the database, migrating the embedded one; an external one must already be migrated. */
async function prepareDatabase(config: Config, logger: Logger): Promise<DatabaseHandle> {
  const handle = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
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
  const logger = createLogger(config.logLevel);
  // From here on, a failure nothing handles ends the process (logged), for its supervisor to restart.
  installProcessGuards(process, logger, (code) => process.exit(code));

  let database: DatabaseHandle;
  let keys;
  let redis: Redis | undefined;
  try {
    keys = await loadKeyStore({
      keysDir: config.keysDir,
      jwtPrivateKey: config.jwtPrivateKey,
      generateIfMissing: !config.isProduction,
      onGenerated: (kid, file) => logger.warn({ kid, file }, 'KEYS_DIR had no signing key: generated a development key'),
      onInsecureFile: (file, mode) =>
        logger.warn({ file, mode: `0${mode.toString(8)}` }, 'private key file is readable or writable by group or others: chmod 600 it'),
    });
    database = await prepareDatabase(config, logger);
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
    if (
      error instanceof ConfigError ||
      error instanceof KeyError ||
      error instanceof RedisConnectError ||
      error instanceof DataDirInUseError
    ) {
      logger.fatal(error.message);
      process.exit(1);
    }
    throw error;
  }

  const hasher = createPooledPasswordHasher(config.bcryptCost);
  const app = createApp({
    config,
    db: database.db,
    keys,
    logger,
    hasher,
    poolStats: () => database.poolStats(),
    ...(redis ? { redis } : {}),
  });
  const server = app.listen(config.port, config.host, () => {
    logger.info(
      {
        host: config.host,
        port: config.port,
        kid: keys.signing.kid,
        database: database.kind,
        hmac: config.hmacMode,
        redis: Boolean(redis),
      },
      'gatehouse listening',
    );
  });
  server.on('error', (error) => {
    logger.fatal({ err: error }, 'could not listen');
    process.exit(1);
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    // Close the listener before saying so: whoever reacts to the line must find the port closed.
    const closed = closeServer(server, config.shutdownTimeout);
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    await closed;
    await database.close();
    await hasher.close();
    await redis?.quit().catch(() => undefined);
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  console.error('gatehouse failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
