/**
 * The ceiling `npm run bench` measures Gatehouse against, in a process of its own (run from
 * the build: `node dist/scripts/bench/ceiling-server.js`):
 *
 *   GET /bare  a bare Express 5 JSON route: what any route of any Express app costs here
 *   GET /me    the ideal verify-and-select route: a Bearer RS256 token verified by
 *              jsonwebtoken against a public KeyObject parsed once, then one SELECT of the
 *              user row by primary key with `pg` (a Pool, as Gatehouse's), answered as JSON
 *
 * Environment: PORT, HOST; KEYS_DIR (the newest `*.pub.pem` verifies); DATABASE_URL, or else
 * an embedded PGlite of its own, migrated, holding one users row whose id is CEILING_USER_ID;
 * WEB_CONCURRENCY workers with node:cluster (default 1), as Gatehouse runs them.
 */
import cluster from 'node:cluster';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import express from 'express';
import jwt from 'jsonwebtoken';
import { Kysely } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import { Pool } from 'pg';
import { migrateToLatest } from '../../src/db/migrator';
import type { Database } from '../../src/db/schema';

const SELECT_USER = 'SELECT id, email, username, created_at, last_login_at FROM users WHERE id = $1';

interface UserRow {
  id: string;
  email: string;
  username: string | null;
  created_at: Date;
  last_login_at: Date | null;
}

type FindUser = (id: string) => Promise<UserRow | undefined>;

function newestPublicKey(keysDir: string): KeyObject {
  const file = readdirSync(keysDir)
    .filter((name) => name.endsWith('.pub.pem'))
    .sort()
    .at(-1);
  if (!file) throw new TypeError(`no *.pub.pem in ${keysDir}`);
  return createPublicKey(readFileSync(path.join(keysDir, file), 'utf8'));
}

async function openUsers(env: NodeJS.ProcessEnv): Promise<FindUser> {
  if (env.DATABASE_URL) {
    const pool = new Pool({ connectionString: env.DATABASE_URL, max: 10 });
    return async (id) => (await pool.query<UserRow>(SELECT_USER, [id])).rows[0];
  }
  const userId = env.CEILING_USER_ID;
  if (!userId) throw new TypeError('CEILING_USER_ID is required without DATABASE_URL');
  // The same schema as Gatehouse's, from its migrations, holding the one row the tokens name.
  const pglite = await PGlite.create('memory://');
  await migrateToLatest(new Kysely<Database>({ dialect: new PGliteDialect(pglite) }));
  await pglite.query(`INSERT INTO users (id, email, password_hash) VALUES ($1, 'ceiling@example.test', '$2a$04$ceiling')`, [userId]);
  return async (id) => (await pglite.query<UserRow>(SELECT_USER, [id])).rows[0];
}

async function serve(env: NodeJS.ProcessEnv): Promise<void> {
  const publicKey = newestPublicKey(env.KEYS_DIR ?? '');
  const findUser = await openUsers(env);
  const app = express();

  app.get('/bare', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/me', async (req, res) => {
    const header = req.headers.authorization;
    let subject: string | undefined;
    try {
      const claims = jwt.verify(header?.startsWith('Bearer ') ? header.slice(7) : '', publicKey, {
        algorithms: ['RS256'],
        issuer: 'gatehouse',
        audience: 'gatehouse',
      });
      subject = typeof claims === 'object' ? claims.sub : undefined;
    } catch {
      subject = undefined;
    }
    if (!subject) {
      res.status(401).json({ code: 'TOKEN_INVALID' });
      return;
    }
    const user = await findUser(subject);
    if (!user) {
      res.status(404).json({ code: 'NOT_FOUND' });
      return;
    }
    res.json({ id: user.id, email: user.email, username: user.username, createdAt: user.created_at, lastLoginAt: user.last_login_at });
  });

  app.listen(Number(env.PORT ?? 0), env.HOST ?? '127.0.0.1');
}

function main(env: NodeJS.ProcessEnv): void {
  const workers = Number(env.WEB_CONCURRENCY ?? 1);
  if (cluster.isPrimary && workers > 1) {
    for (let i = 0; i < workers; i++) cluster.fork();
    // A ceiling that lost a worker measures nothing true: end, and let the bench report it.
    cluster.on('exit', () => process.exit(1));
    const stop = () => {
      cluster.removeAllListeners('exit');
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
      process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    return;
  }
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
  serve(env).catch((error: unknown) => {
    process.stderr.write(`ceiling server failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

main(process.env);
