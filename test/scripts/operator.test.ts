import { createPublicKey } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { type DatabaseHandle, openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';
import { buildKeyStore, readKeyFiles, thumbprint } from '../../src/tokens/keys';
import { registerUser, uniqueEmail } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { generateRsaPem } from '../helpers/keys';
import { type Run, runInProcess, runScript, type ScriptName } from '../helpers/scripts';
import { createScratchDatabase, openPgliteFrom } from '../helpers/databases';

// The scripts run in-process through their main(argv, io); one test per script runs it as an
// operator would, `node` with tsx in a child process (a second or two), to prove the wiring.
jest.setTimeout(90_000);

const DAY = 24 * 60 * 60;

let tempDirs: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `gatehouse-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
  tempDirs = [];
});

/** The kid of a PEM key, computed here from the public half. */
const kidOf = (publicPem: string) => thumbprint(createPublicKey(publicPem));

/**
 * A migrated database of its own for the scripts to work on: the real PostgreSQL when
 * DATABASE_URL is set (a new database on that server, so that whole-table work such as prune,
 * or counting admins, never meets another suite's rows), else an embedded one in memory.
 */
interface Target {
  kind: 'postgres' | 'pglite';
  /** The test's own connection to it, open until `dispose`. */
  handle: DatabaseHandle;
  /** Runs a script in-process on it: on PostgreSQL the script connects itself; the in-memory PGlite is handed over. */
  run(script: ScriptName, args: string[]): Promise<Run>;
  dispose(): Promise<void>;
}

async function createTarget(): Promise<Target> {
  const serverUrl = process.env.DATABASE_URL;
  if (serverUrl) {
    const scratch = await createScratchDatabase('ops');
    const databaseUrl = scratch.url;
    const handle = await openDatabase({ databaseUrl });
    await migrateToLatest(handle.db);
    return {
      kind: 'postgres',
      handle,
      run: (script, args) => runInProcess(script, args, { DATABASE_URL: databaseUrl }),
      dispose: async () => {
        await handle.close();
        await scratch.drop();
      },
    };
  }
  const handle = await openPgliteFrom('migrated');
  return {
    kind: 'pglite',
    handle,
    run: (script, args) => runInProcess(script, args, { DATABASE_URL: '' }, { database: handle }),
    dispose: () => handle.close(),
  };
}

/** Runs the app over the target's database. */
async function withApp<T>(target: Target, work: (h: Harness) => Promise<T>): Promise<T> {
  return work(await createHarness({ database: target.handle }));
}

async function grantAdmin(h: Harness, userId: string): Promise<void> {
  await h.database.db.insertInto('user_roles').values({ user_id: userId, role: 'admin', created_at: h.clock.now() }).execute();
}

describe('operator scripts: command line', () => {
  let keysDir: string;
  let unusedDataDir: string;
  beforeAll(async () => {
    keysDir = await tempDir('keys');
    unusedDataDir = path.join(keysDir, 'unused');
  });

  // The one run of user:revoke from the command line.
  it('when user-revoke.ts is given --help, then it prints its usage and exits 0 without doing anything', async () => {
    const run = await runScript('user-revoke.ts', ['--help'], { KEYS_DIR: keysDir, DATABASE_URL: '', DATA_DIR: unusedDataDir });

    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^Usage: /);
    expect(await fs.readdir(keysDir)).toEqual([]);
  });

  it.each([['keys-list.ts'], ['keys-retire.ts'], ['prune.ts']] as const)(
    'when %s is given --help, then it prints its usage and exits 0 without doing anything',
    async (script) => {
      const run = await runInProcess(script, ['--help'], { KEYS_DIR: keysDir, DATABASE_URL: '', DATA_DIR: unusedDataDir });

      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
      expect(run.stdout).toMatch(/^Usage: /);
      expect(await fs.readdir(keysDir)).toEqual([]);
    },
  );

  // The one run of prune from the command line.
  it('when prune is given a batch size of 0, then it names the option and exits non-zero before opening the database', async () => {
    const run = await runScript('prune.ts', ['--batch-size', '0'], { DATABASE_URL: '', DATA_DIR: unusedDataDir });

    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('--batch-size');
    expect(await fs.readdir(keysDir)).toEqual([]);
  });
});

describe('keys:list and keys:retire', () => {
  // 2048-bit keys generated once here; file names as keys:generate writes them (stamp first).
  const older = generateRsaPem();
  const newer = generateRsaPem();
  const OLDER = '20260101T000000Z-older';
  const NEWER = '20260301T000000Z-newer';
  let fixture: string;
  beforeAll(async () => {
    fixture = await tempDir('keys');
    await fs.writeFile(path.join(fixture, `${OLDER}.key.pem`), older.privatePem);
    await fs.writeFile(path.join(fixture, `${OLDER}.pub.pem`), older.publicPem);
    await fs.writeFile(path.join(fixture, `${NEWER}.key.pem`), newer.privatePem);
    await fs.writeFile(path.join(fixture, `${NEWER}.pub.pem`), newer.publicPem);
  });

  /** A copy of the two-key folder, for a test that changes it. */
  async function keysDirCopy(): Promise<string> {
    const dir = await tempDir('keys');
    await fs.cp(fixture, dir, { recursive: true });
    return dir;
  }

  /** The rows of keys:list: kid → [created, source, state] (activation times: test/scripts/keys-rotation.test.ts). */
  function listed(stdout: string): Record<string, [string, string, string]> {
    const rows: Record<string, [string, string, string]> = {};
    for (const line of stdout.split('\n')) {
      const match = /^([A-Za-z0-9_-]{43})\s+(\S+)\s+\S+\s+(\S+)\s+(signing|pending|published)$/.exec(line.trim());
      if (match) rows[match[1]!] = [match[2]!, match[3]!, match[4]!];
    }
    return rows;
  }

  // The one run of keys:list from the command line.
  it('when KEYS_DIR holds two keys, then keys:list shows both with their creation time and marks the newer one as signing', async () => {
    const run = await runScript('keys-list.ts', [], { KEYS_DIR: fixture, JWT_PRIVATE_KEY: '' });

    expect(run.code).toBe(0);
    expect(listed(run.stdout)).toEqual({
      [kidOf(older.publicPem)]: ['2026-01-01T00:00:00Z', `${OLDER}.key.pem`, 'published'],
      [kidOf(newer.publicPem)]: ['2026-03-01T00:00:00Z', `${NEWER}.key.pem`, 'signing'],
    });
  });

  it('when JWT_PRIVATE_KEY is set, then keys:list marks it as signing, with that source, and still lists the files', async () => {
    const env = generateRsaPem();

    const run = await runInProcess('keys-list.ts', [], { KEYS_DIR: fixture, JWT_PRIVATE_KEY: env.privatePem });

    expect(run.code).toBe(0);
    expect(listed(run.stdout)).toEqual({
      [kidOf(older.publicPem)]: ['2026-01-01T00:00:00Z', `${OLDER}.key.pem`, 'published'],
      [kidOf(newer.publicPem)]: ['2026-03-01T00:00:00Z', `${NEWER}.key.pem`, 'published'],
      [kidOf(env.publicPem)]: ['-', 'JWT_PRIVATE_KEY', 'signing'],
    });
  });

  it('when KEYS_DIR holds no keys, then keys:list exits non-zero naming the folder', async () => {
    const empty = await tempDir('keys');

    const run = await runInProcess('keys-list.ts', [], { KEYS_DIR: empty, JWT_PRIVATE_KEY: '' });

    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(empty);
  });

  it.each([
    ['the signing key', () => kidOf(newer.publicPem)],
    ['a kid KEYS_DIR does not hold', () => kidOf(generateRsaPem().publicPem)],
  ])('when keys:retire is asked to retire %s, then it refuses, exits non-zero and moves nothing', async (_what, kid) => {
    const keysDir = await keysDirCopy();
    const refused = kid();

    const run = await runInProcess('keys-retire.ts', ['--kid', refused], { KEYS_DIR: keysDir, JWT_PRIVATE_KEY: '' });

    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(refused);
    expect((await fs.readdir(keysDir)).sort()).toEqual((await fs.readdir(fixture)).sort());
  });

  // The one run of keys:retire from the command line.
  it('when an older key is retired, then its files move to retired/, keys:list no longer shows it and the server would not publish it', async () => {
    const keysDir = await keysDirCopy();
    const env = { KEYS_DIR: keysDir, JWT_PRIVATE_KEY: '' };

    const run = await runScript('keys-retire.ts', ['--kid', kidOf(older.publicPem)], env);

    expect(run.code).toBe(0);
    expect((await fs.readdir(path.join(keysDir, 'retired'))).sort()).toEqual([`${OLDER}.key.pem`, `${OLDER}.pub.pem`]);
    expect((await fs.readdir(keysDir)).sort()).toEqual([`${NEWER}.key.pem`, `${NEWER}.pub.pem`, 'retired']);
    // What the server does with the folder at start-up.
    const store = buildKeyStore(await readKeyFiles(keysDir));
    expect(store.jwks.keys.map((key) => key.kid)).toEqual([kidOf(newer.publicPem)]);
    expect(store.signing.kid).toBe(kidOf(newer.publicPem));
    const list = await runInProcess('keys-list.ts', [], env);
    expect(list.code).toBe(0);
    expect(Object.keys(listed(list.stdout))).toEqual([kidOf(newer.publicPem)]);
  });
});

describe(`user:revoke (${process.env.DATABASE_URL ? 'postgres' : 'pglite'})`, () => {
  let target: Target;
  beforeAll(async () => {
    target = await createTarget();
  });
  afterAll(async () => {
    await target.dispose();
  });

  /** A user's roles and role-change events. */
  async function roleStateOf(h: Harness, userId: string) {
    const { db } = h.database;
    const roles = await db.selectFrom('user_roles').select('role').where('user_id', '=', userId).orderBy('role').execute();
    const events = await db
      .selectFrom('audit_events')
      .select(['data', 'ip', 'request_id'])
      .where('user_id', '=', userId)
      .where('type', '=', 'user.roles_changed')
      .execute();
    return { roles: roles.map((r) => r.role), events };
  }
  const unchanged = { roles: ['user'], events: [] };

  it('when the user has the role, then it is removed with one audit event, and /users/me loses its permissions at once', async () => {
    const user = await withApp(target, async (h) => {
      const registered = await registerUser(h.app);
      await grantAdmin(h, registered.id);
      // Another admin, so this one is not the last.
      await grantAdmin(h, (await registerUser(h.app)).id);
      return registered;
    });

    const run = await target.run('user-revoke.ts', ['--email', ` ${user.email.toUpperCase()} `, '--role', 'admin']);

    expect(run.code).toBe(0);
    const { state, me } = await withApp(target, async (h) => ({
      state: await roleStateOf(h, user.id),
      me: await request(h.app).get('/users/me').set('Authorization', `Bearer ${user.accessToken}`),
    }));
    expect(state).toEqual({
      roles: ['user'],
      events: [{ data: { added: [], removed: ['admin'], by: 'cli' }, ip: null, request_id: null }],
    });
    expect(me.status).toBe(200);
    expect(me.body.roles).toEqual(['user']);
    expect(me.body.permissions).not.toContain('users:read');
  });

  it('when the user does not have the role, then it exits 0, says so, and changes nothing', async () => {
    const user = await withApp(target, (h) => registerUser(h.app));

    const run = await target.run('user-revoke.ts', ['--email', user.email, '--role', 'admin']);

    expect(run.code).toBe(0);
    expect(run.stdout).toContain(user.email);
    expect(await withApp(target, (h) => roleStateOf(h, user.id))).toEqual(unchanged);
  });

  it.each([
    ['no user has the email', () => uniqueEmail('nobody'), 'admin'],
    ['the role does not exist', undefined, 'superuser'],
  ] as const)('when %s, then it exits non-zero naming it and the user keeps their roles', async (_case, email, role) => {
    const user = await withApp(target, (h) => registerUser(h.app));
    const given = email ? email() : user.email;

    const run = await target.run('user-revoke.ts', ['--email', given, '--role', role]);

    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(email ? given : role);
    expect(await withApp(target, (h) => roleStateOf(h, user.id))).toEqual(unchanged);
  });
});

describe(`user:revoke and the last admin (${process.env.DATABASE_URL ? 'postgres' : 'pglite'})`, () => {
  // Each test counts every admin in its database: each gets a new one.
  let target: Target;
  beforeEach(async () => {
    target = await createTarget();
  });
  afterEach(async () => {
    await target.dispose();
  });

  const adminsIn = () =>
    withApp(target, async (h) =>
      (await h.database.db.selectFrom('user_roles').select('user_id').where('role', '=', 'admin').execute()).map((r) => r.user_id).sort(),
    );

  it('when the user is the last active admin, then it refuses, exits non-zero, and they stay admin', async () => {
    const { admin, disabled } = await withApp(target, async (h) => {
      const admin = await registerUser(h.app);
      await grantAdmin(h, admin.id);
      // A disabled admin cannot act: it does not count.
      const disabled = await registerUser(h.app);
      await grantAdmin(h, disabled.id);
      await h.database.db.updateTable('users').set({ is_active: false }).where('id', '=', disabled.id).execute();
      return { admin, disabled };
    });

    const run = await target.run('user-revoke.ts', ['--email', admin.email, '--role', 'admin']);

    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(admin.email);
    expect(await adminsIn()).toEqual([admin.id, disabled.id].sort());
  });

  it('when every admin is disabled, then admin can still be revoked from one of them', async () => {
    const disabled = await withApp(target, async (h) => {
      const user = await registerUser(h.app);
      await grantAdmin(h, user.id);
      await h.database.db.updateTable('users').set({ is_active: false }).where('id', '=', user.id).execute();
      return user;
    });

    const run = await target.run('user-revoke.ts', ['--email', disabled.email, '--role', 'admin']);

    expect(run.code).toBe(0);
    expect(await adminsIn()).toEqual([]);
  });
});

describe(`prune (${process.env.DATABASE_URL ? 'postgres' : 'pglite'})`, () => {
  let target: Target;
  beforeAll(async () => {
    target = await createTarget();
  });
  afterAll(async () => {
    await target.dispose();
  });

  /** The rows of prune's table: table → count. */
  function counts(stdout: string): Record<string, number> {
    const rows: Record<string, number> = {};
    for (const line of stdout.split('\n')) {
      const match = /^(refresh_tokens|sessions|audit_events)\s+(\d+)$/.exec(line.trim());
      if (match) rows[match[1]!] = Number(match[2]);
    }
    return rows;
  }

  /** Whose rows are in each table. */
  const owners = () =>
    withApp(target, async (h) => {
      const { db } = h.database;
      const sessions = await db.selectFrom('sessions').select('user_id').execute();
      const tokens = await db
        .selectFrom('refresh_tokens')
        .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
        .select('user_id')
        .execute();
      const events = await db.selectFrom('audit_events').select('user_id').execute();
      const ids = (rows: Array<{ user_id: string | null }>) => rows.map((row) => row.user_id).sort();
      return { sessions: ids(sessions), refreshTokens: ids(tokens), auditEvents: ids(events) };
    });

  it('when run with --dry-run, then it only counts; run again without, it deletes the old rows and leaves the live ones', async () => {
    const { old, live } = await withApp(target, async (h) => {
      // Older than AUDIT_RETENTION_DAYS (90): its session, token and event have all had their day.
      h.clock.set(new Date(Date.now() - 100 * DAY * 1000));
      const old = await registerUser(h.app);
      h.clock.set(new Date());
      const live = await registerUser(h.app);
      return { old, live };
    });
    const everything = {
      sessions: [old.id, live.id].sort(),
      refreshTokens: [old.id, live.id].sort(),
      auditEvents: [old.id, live.id].sort(),
    };

    const dryRun = await target.run('prune.ts', ['--dry-run']);

    expect(dryRun.code).toBe(0);
    expect(counts(dryRun.stdout)).toEqual({ refresh_tokens: 1, sessions: 1, audit_events: 1 });
    expect(await owners()).toEqual(everything);

    const real = await target.run('prune.ts', ['--batch-size', '1']);

    expect(real.code).toBe(0);
    expect(counts(real.stdout)).toEqual({ refresh_tokens: 1, sessions: 1, audit_events: 1 });
    expect(await owners()).toEqual({ sessions: [live.id], refreshTokens: [live.id], auditEvents: [live.id] });
  });
});
