import { Redis } from 'ioredis';
import { Client } from 'pg';
import { openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';

/** A database of the bench's own on the server DATABASE_URL names, dropped at the end. */
export interface ScratchDatabase {
  readonly name: string;
  /** DATABASE_URL with the scratch database's name in place of the original one. */
  readonly url: string;
  /** e.g. `PostgreSQL 15.4`. */
  readonly server: string;
  readonly drop: () => Promise<void>;
}

async function onServer<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** `host:port/database` of a postgres:// or redis:// URL: never its credentials. */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  } catch {
    return 'the configured server';
  }
}

/**
 * Creates `name` on the server `databaseUrl` reaches (dropping a leftover of the same name
 * first) and migrates it to the latest migration.
 */
export async function createScratchDatabase(databaseUrl: string, name: string): Promise<ScratchDatabase> {
  const quoted = `"${name.replace(/"/g, '""')}"`;
  const server = await onServer(databaseUrl, async (client) => {
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    await client.query(`DROP DATABASE IF EXISTS ${quoted} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${quoted}`);
    return `PostgreSQL ${rows[0]?.server_version.split(' ')[0] ?? '?'}`;
  });
  const scratchUrl = new URL(databaseUrl);
  scratchUrl.pathname = `/${name}`;
  const drop = () =>
    onServer(databaseUrl, async (client) => {
      await client.query(`DROP DATABASE IF EXISTS ${quoted} WITH (FORCE)`);
    });
  try {
    const handle = await openDatabase({ databaseUrl: scratchUrl.toString() });
    try {
      await migrateToLatest(handle.db);
    } finally {
      await handle.close();
    }
  } catch (error) {
    await drop().catch(() => undefined);
    throw error;
  }
  return { name, url: scratchUrl.toString(), server, drop };
}

/** Deletes every Redis key under `prefix` (nonces and rate-limit counters of the bench's servers). */
export async function deleteRedisKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
