import { randomBytes, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { sql } from 'kysely';
import request from 'supertest';
import type { DatabaseHandle } from '../../src/db/database';
import { buildOpenApiDocument } from '../../src/openapi/openapi.document';
import { PROBLEMS, type ProblemCode } from '../../src/problems/catalogue';
import { computeSignature } from '../../src/signature/signer';
import { type DatabaseKind, DATABASE_KINDS, openPrivateDatabase, type PrivateDatabase } from '../helpers/databases';
import { GOOD_PASSWORD, makeAdmin, sessionIdOf } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { type SigningClient, testClients } from '../helpers/signing';
import {
  deepJsonText,
  headerValue,
  hostileJson,
  hostileKey,
  hostilePathSegment,
  hostileQueryValue,
  hostileString,
  objectOf,
  Ref,
  valueOf,
  wrongTypeFor,
} from './arbitraries';

/*
 * Generated hostile input against every operation of the OpenAPI document (read from the
 * app's own /openapi.json, so the fuzz follows the document as it changes). For each
 * operation, requests are generated from its schemas, with the values the service knows
 * mixed in (real ids, tokens, passwords), then broken: wrong types, missing and extra fields,
 * prototype keys, deep nesting, huge and empty strings, every Unicode plane and none, odd
 * content types and charsets, broken and near-valid Authorization and signature headers,
 * undecodable paths and queries. Most requests are correctly signed and carry a real token,
 * so the fuzz gets past the signature and authentication to validation and the handlers.
 *
 * Properties (CONTRACT.md section 2):
 * - never a 5xx;
 * - every 4xx is application/problem+json whose `code` is in the catalogue, at its status;
 * - a refused request changes no row (writes to every table are counted before and after), except
 *   the refusals the contract says record something (REFUSALS_THAT_WRITE below);
 * - every response matches the document (test/setup/validate-responses.ts fails the request
 *   otherwise, so a mismatch fails the property and is shrunk like any other failure);
 * - the service answers normally afterwards.
 *
 * Runs are bounded (RUNS below; FUZZ_RUNS overrides it, FUZZ_SEED replays a failure). A
 * failure prints fast-check's report: the seed, the path, and the shrunk request.
 */

const RUNS: Record<DatabaseKind, number> = { pglite: 20, postgres: 8 };
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
/** A bound on a property's wall time, for a machine shared with others (not a measure of speed). */
const FUZZ_TIMEOUT_MS = 180_000;

/** Runs for an operation: more where there is more input to break (a body, parameters), fewer where there is none. */
function runsFor(kind: DatabaseKind, operation?: Operation): number {
  const base = Number(process.env.FUZZ_RUNS ?? RUNS[kind]);
  if (!operation) return base;
  const inputs = (operation.body ? 2 : 0) + (operation.pathParams.length + operation.queryParams.length > 0 ? 1 : 0);
  return Math.max(1, Math.round(base * [0.5, 1, 2, 2][inputs]!));
}

/**
 * Refusals that change rows on purpose, by code: the operations that may, the tables they
 * may change, and why. Any other refusal that changes a row fails the property.
 */
const REFUSALS_THAT_WRITE: Partial<Record<ProblemCode, { operations: string[]; tables: string[]; why: string }>> = {
  INVALID_CREDENTIALS: {
    operations: ['POST /auth/login', 'POST /users/me/password'],
    tables: ['audit_events', 'login_failures'],
    why: 'a failed sign-in is counted towards the lockout and audited as auth.failed (CONTRACT.md sections 7 and 8)',
  },
  ACCOUNT_LOCKED: {
    operations: ['POST /auth/login', 'POST /users/me/password'],
    tables: ['audit_events', 'login_failures'],
    why: 'the failure that reaches LOGIN_MAX_FAILURES is counted, sets the lock and is audited (auth.failed, user.locked)',
  },
  ACCOUNT_DISABLED: {
    operations: ['POST /auth/login'],
    tables: ['audit_events'],
    why: 'the right password to a disabled account is audited as auth.failed',
  },
  EMAIL_NOT_VERIFIED: {
    operations: ['POST /auth/login'],
    tables: ['audit_events'],
    why: 'with REQUIRE_VERIFIED_EMAIL, the right password to an unverified account is audited as auth.failed',
  },
  REFRESH_TOKEN_REUSED: {
    operations: ['POST /auth/refresh'],
    tables: ['sessions', 'audit_events'],
    why: 'a reused refresh token revokes its whole session and is audited as token.reuse_detected (CONTRACT.md section 4)',
  },
};

/* eslint-disable @typescript-eslint/no-explicit-any -- the document is parsed JSON */
type Json = any;

// ---- the document's operations ---------------------------------------------------------------

interface Operation {
  name: string;
  method: string;
  path: string;
  pathParams: { name: string; schema: Json }[];
  queryParams: { name: string; schema: Json; required: boolean }[];
  body: { schema: Json; required: boolean } | undefined;
  signed: boolean;
  bearer: boolean;
  permission: string | undefined;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

function operationsOf(document: Json): Operation[] {
  return Object.entries(document.paths as Record<string, Json>).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method]).map((method) => {
      const op = item[method];
      const parameters = (op.parameters as Json[]).filter((parameter) => parameter.$ref === undefined);
      const security = op.security as Json[] | undefined;
      const bearerRoles = security?.[0]?.bearerAuth as string[] | undefined;
      return {
        name: `${method.toUpperCase()} ${path}`,
        method,
        path,
        pathParams: parameters.filter((p) => p.in === 'path').map((p) => ({ name: p.name, schema: p.schema })),
        queryParams: parameters.filter((p) => p.in === 'query').map((p) => ({ name: p.name, schema: p.schema, required: !!p.required })),
        body: op.requestBody
          ? { schema: op.requestBody.content['application/json'].schema, required: !!op.requestBody.required }
          : undefined,
        signed: security !== undefined,
        bearer: bearerRoles !== undefined,
        permission: bearerRoles?.[0],
      };
    }),
  );
}

// ---- what a generated request is ----------------------------------------------------------------

type Principal = 'owner' | 'admin';

/** Who calls a Bearer operation: a user for its own account, the admin for the admin API. */
const principalOf = (operation: Operation): Principal =>
  operation.permission === undefined || operation.permission.startsWith('profile:') ? 'owner' : 'admin';

/** A request before it is sent: plain data, so fast-check can print and shrink it. */
interface FuzzRequest {
  method: string;
  /** Path segments and query values are raw text for the request line (percent-encoded, or broken on purpose). */
  pathParams: Record<string, string | Ref>;
  pathShape: 'as declared' | 'upper case' | 'trailing slash' | 'double slash' | 'dot segment' | 'extra segment';
  query: [string, string | Ref][] | { raw: string };
  body: { json: unknown } | { text: string } | { bytes: number[] } | undefined;
  contentType: string | undefined;
  authorization: AuthorizationCase;
  signature: SignatureCase;
  headers: [string, string | Ref][];
}

type AuthorizationCase =
  | { kind: 'none' }
  | {
      kind: 'token';
      of: Principal | 'victim' | 'revoked' | 'foreign';
      scheme: string;
      change: 'none' | 'flip a character' | 'drop the signature' | 'swap the payload';
    }
  | { kind: 'header'; value: string };

type SignatureCase =
  | { kind: 'valid' }
  | { kind: 'omit'; headers: SignatureHeader[] }
  | { kind: 'timestamp'; shape: 'milliseconds' | 'too old' | 'too new' | 'text'; text: string }
  | { kind: 'nonce'; value: string }
  | { kind: 'replay' }
  | { kind: 'signature'; value: string }
  | { kind: 'upper-case hex' }
  | { kind: 'client'; value: string }
  | { kind: 'signed something else'; part: 'method' | 'path' | 'body' };

type SignatureHeader = 'X-Client-Id' | 'X-Timestamp' | 'X-Nonce' | 'X-Signature';
const SIGNATURE_HEADERS: SignatureHeader[] = ['X-Client-Id', 'X-Timestamp', 'X-Nonce', 'X-Signature'];

// ---- the world the requests run in ---------------------------------------------------------------

interface Account {
  id: string;
  email: string;
  password: string;
  accessToken: string;
  refreshToken: string;
  /** A refresh token of this account's session that has been rotated. */
  spentRefreshToken: string;
  sessionId: string;
}

interface World {
  h: Harness;
  client: SigningClient;
  owner: Account;
  admin: Account;
  victim: Account;
  /** An access token whose session was logged out. */
  revokedToken: string;
  /** An access token whose header names a key the service does not publish. */
  foreignToken: string;
  /** Nonces the service has accepted: replaying one is SIGNATURE_REPLAYED. */
  acceptedNonces: string[];
  /** Cursors the service issued. */
  usersCursor: string;
  eventsCursor: string;
  /** Names of the application's tables, whose writes are counted around each request. */
  tables: string[];
}

/** A signed request with a valid signature, as a well-behaved client sends it (used to set the world up). */
function signed(world: Pick<World, 'h' | 'client'>, method: string, target: string, body?: unknown, headers: Record<string, string> = {}) {
  const bytes = body === undefined ? undefined : JSON.stringify(body);
  const timestamp = String(Math.floor(world.h.clock.now().getTime() / 1000));
  const nonce = randomBytes(24).toString('base64url');
  let req = request(world.h.app)
    [method.toLowerCase() as 'get'](target)
    .set({
      'X-Client-Id': world.client.id,
      'X-Timestamp': timestamp,
      'X-Nonce': nonce,
      'X-Signature': computeSignature(world.client.secret, { method, path: target, timestamp, nonce, body: bytes }),
      ...headers,
    });
  if (bytes !== undefined) req = req.set('Content-Type', 'application/json').send(bytes);
  return req;
}

async function newAccount(world: Pick<World, 'h' | 'client'>, prefix: string): Promise<Account> {
  const email = `${prefix}-${randomUUID()}@example.test`;
  const registered = await signed(world, 'POST', '/auth/register', { email, password: GOOD_PASSWORD });
  if (registered.status !== 201) throw new Error(`registration failed: ${registered.status} ${registered.text}`);
  const spent = registered.body.refreshToken as string;
  const refreshed = await signed(world, 'POST', '/auth/refresh', { refreshToken: spent });
  if (refreshed.status !== 200) throw new Error(`refresh failed: ${refreshed.status} ${refreshed.text}`);
  // Spend the successor too, so `spent` is past its grace retry: presenting it again is reuse.
  const again = await signed(world, 'POST', '/auth/refresh', { refreshToken: refreshed.body.refreshToken });
  if (again.status !== 200) throw new Error(`refresh failed: ${again.status} ${again.text}`);
  return {
    id: registered.body.user.id,
    email,
    password: GOOD_PASSWORD,
    accessToken: again.body.accessToken,
    refreshToken: again.body.refreshToken,
    spentRefreshToken: spent,
    sessionId: sessionIdOf(again.body.accessToken),
  };
}

async function newAdmin(world: Pick<World, 'h' | 'client'>): Promise<Account> {
  const admin = await newAccount(world, 'fuzz-admin');
  await makeAdmin(world.h.database.db, admin.id);
  return admin;
}

/** Whether an account can still act as itself: its session live, the user active (and an admin, for the admin). */
async function isUsable(db: DatabaseHandle['db'], account: Account, role?: string): Promise<boolean> {
  const row = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['sessions.revoked_at', 'users.is_active'])
    .select((eb) =>
      eb
        .exists(
          eb
            .selectFrom('user_roles')
            .whereRef('user_roles.user_id', '=', 'users.id')
            .where('user_roles.role', '=', role ?? 'user'),
        )
        .as('has_role'),
    )
    .where('sessions.id', '=', account.sessionId)
    .executeTakeFirst();
  return !!row && row.revoked_at === null && row.is_active && !!row.has_role;
}

/** Fuzzed requests may revoke, disable or demote the accounts the next ones use: make them anew when so. */
async function keepWorldUsable(world: World): Promise<void> {
  const { db } = world.h.database;
  if (!(await isUsable(db, world.owner))) world.owner = await newAccount(world, 'fuzz-owner');
  if (!(await isUsable(db, world.admin, 'admin'))) world.admin = await newAdmin(world);
}

/**
 * Counts every row written to each application table (inserted, updated or deleted), by a
 * row-level trigger in this suite's own database: comparing the counts before and after a
 * request tells whether it changed any row, in one small query whatever the tables hold.
 */
async function countWrites(db: DatabaseHandle['db'], tables: readonly string[]): Promise<void> {
  await sql`create table fuzz_writes (name text primary key, writes bigint not null)`.execute(db);
  await sql`
    create function fuzz_count_write() returns trigger language plpgsql as $$
    begin
      insert into fuzz_writes values (TG_TABLE_NAME, 1) on conflict (name) do update set writes = fuzz_writes.writes + 1;
      return null;
    end $$`.execute(db);
  for (const table of tables) {
    await sql`create trigger fuzz_count_writes after insert or update or delete on ${sql.table(table)}
      for each row execute function fuzz_count_write()`.execute(db);
  }
}

/** Rows written so far, by table. */
async function fingerprint(world: World): Promise<Record<string, string>> {
  const { rows } = await sql<{ name: string; writes: string }>`select name, writes::text from fuzz_writes`.execute(world.h.database.db);
  return Object.fromEntries(world.tables.map((table) => [table, rows.find((row) => row.name === table)?.writes ?? '0']));
}

async function buildWorld(kind: DatabaseKind, database: DatabaseHandle): Promise<World> {
  const { ios, hmacClients } = testClients();
  const h = await createHarness({ kind, database, env: { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients } });
  const base = { h, client: ios };
  const [owner, admin, victim, loggedOut] = [
    await newAccount(base, 'fuzz-owner'),
    await newAdmin(base),
    await newAccount(base, 'fuzz-victim'),
    await newAccount(base, 'fuzz-gone'),
  ];
  const logout = await signed(base, 'POST', '/auth/logout', { refreshToken: loggedOut.refreshToken });
  if (logout.status !== 204) throw new Error(`logout failed: ${logout.status}`);

  // The owner's token, under a header naming a key the service does not publish.
  const [, payload, signature] = owner.accessToken.split('.') as [string, string, string];
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: 'not-a-key-of-ours' })).toString('base64url');
  const foreignToken = `${header}.${payload}.${signature}`;

  const world: World = {
    ...base,
    owner,
    admin,
    victim,
    revokedToken: loggedOut.accessToken,
    foreignToken,
    acceptedNonces: [],
    usersCursor: '',
    eventsCursor: '',
    tables: [],
  };
  const users = await signed(world, 'GET', '/admin/users?limit=1', undefined, { Authorization: `Bearer ${admin.accessToken}` });
  const events = await signed(world, 'GET', '/admin/events?limit=1', undefined, { Authorization: `Bearer ${admin.accessToken}` });
  world.usersCursor = users.body.nextCursor;
  world.eventsCursor = events.body.nextCursor;
  const { rows } = await sql<{ name: string }>`
    select table_name as name from information_schema.tables
    where table_schema = current_schema() and table_type = 'BASE TABLE' and table_name not like 'kysely%'
    order by table_name`.execute(h.database.db);
  world.tables = rows.map((row) => row.name);
  await countWrites(h.database.db, world.tables);
  return world;
}

/** The value a Ref names, at the moment of sending. */
function resolveRef(world: World, ref: Ref): string {
  const [who, field] = ref.name.split('.') as [string, string];
  if (who === 'cursor') return field === 'users' ? world.usersCursor : world.eventsCursor;
  const account = (world as unknown as Record<string, Account>)[who];
  const value = account?.[field as keyof Account];
  if (typeof value !== 'string') throw new Error(`unknown reference ${ref.name}`);
  return value;
}

function resolveRefs(world: World, value: unknown): unknown {
  if (value instanceof Ref) return resolveRef(world, value);
  if (Array.isArray(value)) return value.map((item) => resolveRefs(world, item));
  if (typeof value === 'object' && value !== null) {
    return objectOf(Object.entries(value).map(([key, item]) => [key, resolveRefs(world, item)]));
  }
  return value;
}

// ---- generators -------------------------------------------------------------------------------------

const uniqueEmail = fc.uuid().map((id) => `fuzz-${id}@example.test`);

/** Values the service knows, by the name of the field, path parameter or query parameter that takes them. */
function hintsFor(operation: Operation) {
  const sessions = operation.path.startsWith('/users/me/sessions');
  return {
    id: sessions
      ? fc.constantFrom(new Ref('owner.sessionId'), new Ref('victim.sessionId'), new Ref('admin.sessionId'))
      : fc.oneof({ weight: 4, arbitrary: fc.constant(new Ref('victim.id')) }, { weight: 1, arbitrary: fc.constant(new Ref('admin.id')) }),
    email: fc.oneof(
      fc.constantFrom(new Ref('owner.email'), new Ref('victim.email')),
      uniqueEmail,
      uniqueEmail.map((email) => `  ${email.toUpperCase()} `),
    ),
    password: fc.constantFrom(new Ref('owner.password'), GOOD_PASSWORD, 'another horse battery staple'),
    currentPassword: fc.constantFrom(new Ref('owner.password'), 'not the password at all'),
    newPassword: fc.constantFrom('another horse battery staple', 'yet another long passphrase', 'password', 'short'),
    username: fc.uuid().map((id) => `u_${id.replace(/-/g, '').slice(0, 20)}`),
    refreshToken: fc.oneof(
      fc.constantFrom(new Ref('owner.refreshToken'), new Ref('owner.spentRefreshToken'), new Ref('victim.spentRefreshToken')),
      fc.constant(randomBytes(32).toString('base64url')),
    ),
    roles: fc.constantFrom(['user'], ['admin'], ['user', 'admin'], ['nobody'], ['user', 'user']),
    cursor: fc.constantFrom(new Ref('cursor.users'), new Ref('cursor.events')),
    userId: fc.constantFrom(new Ref('victim.id'), new Ref('owner.id')),
  };
}

/** The properties a body schema names, with their schemas. */
function propertiesOf(schema: Json, document: Json): Record<string, Json> {
  const resolved = schema?.$ref ? document.components.schemas[String(schema.$ref).split('/').pop()!] : schema;
  return (resolved?.properties ?? {}) as Record<string, Json>;
}

/**
 * Characters whose length changes under the service's own handling: lower-casing (İ doubles),
 * NFKC (ﬃ triples), UTF-16 against code points (astral), trimming (spaces, U+00A0, U+FEFF),
 * bcrypt's 72 bytes (é is two); and U+0000.
 */
const BOUNDARY_CHARACTERS = ['a', '\u0130', '\ufb03', '\u{1f600}', 'é', ' ', '\u00a0', '\ufeff', '\u0000'] as const;

/** The length limit of a string property: its maxLength, or bcrypt's 72 bytes for one without. */
const lengthLimitOf = (property: Json): number => (typeof property?.maxLength === 'number' ? (property.maxLength as number) : 72);

/** `count` characters of `character` (plain letters and spaces after an `x@`, so that an email field still looks like one). */
function repeated(character: string, count: number): string {
  return character === 'a' || character === ' ' ? `x@${character.repeat(Math.max(0, count - 2))}` : character.repeat(count);
}

/** A string at the edge of a field's length limit, in one of the characters above. */
function boundaryString(property: Json): fc.Arbitrary<string> {
  const limit = lengthLimitOf(property);
  return fc
    .tuple(fc.constantFrom(...BOUNDARY_CHARACTERS), fc.constantFrom(limit - 1, limit, limit + 1))
    .map(([character, count]) => repeated(character, count));
}

/** A valid body (by schema and hints), or one broken in one of many ways. */
function bodyArbitrary(operation: Operation, document: Json, hints: ReturnType<typeof hintsFor>): fc.Arbitrary<FuzzRequest['body']> {
  const valid = operation.body ? valueOf(operation.body.schema, document, hints) : fc.constant({});
  const properties = operation.body ? propertiesOf(operation.body.schema, document) : {};
  const names = Object.keys(properties);
  const broken = valid.chain((body) => {
    const object = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
    const keys = Object.keys(object);
    const withField = (field: string, value: unknown) => ({
      json: objectOf([...Object.entries(object).filter(([k]) => k !== field), [field, value]]),
    });
    const wholeBody: fc.Arbitrary<FuzzRequest['body']>[] = [
      // Another JSON value altogether: a string, a number, null, an array, nesting.
      hostileJson.map((json) => ({ json })),
      // Not JSON, or not quite.
      fc
        .constantFrom(
          '',
          '{',
          '{"a":',
          'nul',
          '{"email":"a"',
          "{'email':'a'}",
          '{"a":1,}',
          '\ufeff{}',
          '[1,2',
          '{"a":NaN}',
          '{"a":1e999}',
          '{"__proto__":{"admin":true}}',
          '{"constructor":{"prototype":{"admin":true}}}',
        )
        .map((text) => ({ text })),
      // Nested thousands deep.
      deepJsonText.map((text) => ({ text })),
      // Bytes that are not UTF-8.
      fc
        .constantFrom(
          [0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d],
          [0xc0, 0xaf],
          [0xed, 0xa0, 0x80],
          [0x00, 0x00, 0x00, 0x7b],
        )
        .map((bytes) => ({ bytes: [...bytes] })),
      // Over the body limit.
      fc.constantFrom(16 * 1024 + 1, 40 * 1024).map((size) => ({ text: JSON.stringify({ pad: 'x'.repeat(size) }) })),
      // The same field twice: JSON.parse keeps the last.
      fc.constant({
        text: `{${[...Object.entries(object), ...Object.entries(object)].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v instanceof Ref ? 'x' : v)}`).join(',')}}`,
      }),
    ];
    const fieldLevel: fc.Arbitrary<FuzzRequest['body']>[] = [
      // An extra field, a prototype key among them.
      fc.tuple(hostileKey, hostileJson).map(([key, value]) => ({ json: objectOf([...Object.entries(object), [key, value]]) })),
    ];
    if (keys.length > 0) {
      // A field missing.
      fieldLevel.push(
        fc.constantFrom(...keys).map((missing) => ({ json: objectOf(Object.entries(object).filter(([k]) => k !== missing)) })),
      );
    }
    if (names.length > 0) {
      const name = fc.constantFrom(...names);
      fieldLevel.push(
        // A field of the wrong type.
        name.chain((field) => wrongTypeFor(object[field] ?? '').map((value) => withField(field, value))),
        // A string field holding hostile text, or text at the edge of its length limit (twice as likely).
        name.chain((field) => hostileString.map((value) => withField(field, value))),
        name.chain((field) => boundaryString(properties[field]).map((value) => withField(field, value))),
        name.chain((field) => boundaryString(properties[field]).map((value) => withField(field, value))),
      );
    }
    return fc.oneof({ weight: 3, arbitrary: fc.oneof(...fieldLevel) }, { weight: 1, arbitrary: fc.oneof(...wholeBody) });
  });
  const none = fc.constant(undefined);
  if (operation.body) {
    return fc.oneof(
      { weight: 5, arbitrary: valid.map((json) => ({ json })) },
      { weight: 5, arbitrary: broken },
      { weight: 1, arbitrary: none },
    );
  }
  // No body declared: usually none, sometimes one anyway.
  return fc.oneof({ weight: 6, arbitrary: none }, { weight: 1, arbitrary: broken });
}

const contentTypeArbitrary: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json; charset="UTF-8"',
      'application/json; charset=utf-16le',
      'application/json; charset=latin1',
      'application/json; charset=',
      'application/json;;;',
      'APPLICATION/JSON',
      'application/merge-patch+json',
      'application/problem+json',
      'text/plain',
      'text/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      '*/*',
      'json',
      '',
    ),
  },
  { weight: 1, arbitrary: headerValue },
  // No Content-Type at all.
  { weight: 1, arbitrary: fc.constant(undefined) },
);

function authorizationArbitrary(operation: Operation): fc.Arbitrary<AuthorizationCase> {
  const real = fc.constant<AuthorizationCase>({ kind: 'token', of: principalOf(operation), scheme: 'Bearer', change: 'none' });
  const others = fc.oneof(
    fc.constant<AuthorizationCase>({ kind: 'none' }),
    fc.record({
      kind: fc.constant('token' as const),
      of: fc.constantFrom<'owner' | 'admin' | 'victim' | 'revoked' | 'foreign'>('owner', 'admin', 'victim', 'revoked', 'foreign'),
      scheme: fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Bearer  ', 'Basic', 'Token', '', 'Bearer\t'),
      change: fc.constantFrom<'none' | 'flip a character' | 'drop the signature' | 'swap the payload'>(
        'none',
        'flip a character',
        'drop the signature',
        'swap the payload',
      ),
    }),
    fc
      .oneof(
        headerValue,
        fc.constantFrom(
          'Bearer',
          'Bearer ',
          'Bearer a.b',
          'Bearer a.b.c',
          'Bearer ..',
          'Bearer a.b.c.d',
          'Bearer eyJhbGciOiJub25lIn0.e30.',
          'Bearer eyJhbGciOiJub25lIn0.e30.x',
          'Basic dXNlcjpwYXNz',
        ),
      )
      .map((value): AuthorizationCase => ({ kind: 'header', value })),
  );
  return operation.bearer
    ? fc.oneof({ weight: 4, arbitrary: real }, { weight: 2, arbitrary: others })
    : fc.oneof({ weight: 4, arbitrary: fc.constant<AuthorizationCase>({ kind: 'none' }) }, { weight: 1, arbitrary: others });
}

const signatureArbitrary: fc.Arbitrary<SignatureCase> = fc.oneof(
  { weight: 10, arbitrary: fc.constant<SignatureCase>({ kind: 'valid' }) },
  {
    weight: 4,
    arbitrary: fc.oneof(
      fc.subarray(SIGNATURE_HEADERS, { minLength: 1 }).map((headers): SignatureCase => ({ kind: 'omit', headers })),
      fc.record({
        kind: fc.constant('timestamp' as const),
        shape: fc.constantFrom<'milliseconds' | 'too old' | 'too new' | 'text'>('milliseconds', 'too old', 'too new', 'text'),
        text: fc.oneof(
          headerValue,
          fc.constantFrom('', '0', '-1', '1e9', '+1700000000', ' 1700000000', '1700000000.5', '99999999999999999', '0x65'),
        ),
      }),
      fc
        .oneof(headerValue, fc.constantFrom('short', 'a'.repeat(65), 'a'.repeat(16), 'nonce with spaces 123', 'ñññññññññññññññññ'))
        .map((value): SignatureCase => ({ kind: 'nonce', value })),
      fc.constant<SignatureCase>({ kind: 'replay' }),
      fc
        .oneof(
          headerValue,
          fc.constantFrom('sha256=', `sha256=${'0'.repeat(64)}`, `sha1=${'0'.repeat(40)}`, '0'.repeat(64), `SHA256=${'a'.repeat(64)}`),
        )
        .map((value): SignatureCase => ({ kind: 'signature', value })),
      fc.constant<SignatureCase>({ kind: 'upper-case hex' }),
      fc
        .oneof(headerValue, fc.constantFrom('IOS', 'ios ', 'android', '__proto__', 'constructor', ''))
        .map((value): SignatureCase => ({ kind: 'client', value })),
      fc
        .constantFrom<'method' | 'path' | 'body'>('method', 'path', 'body')
        .map((part): SignatureCase => ({ kind: 'signed something else', part })),
    ),
  },
);

const HEADER_NAMES = [
  'X-Request-Id',
  'User-Agent',
  'Cookie',
  'Origin',
  'Sec-Fetch-Site',
  'Accept',
  'Accept-Charset',
  'Accept-Encoding',
  'Content-Encoding',
  'X-Forwarded-For',
  'If-None-Match',
  'If-Match',
  'If-Modified-Since',
  'Range',
  'X-HTTP-Method-Override',
  'X-Fuzz',
] as const;

const headersArbitrary: fc.Arbitrary<[string, string | Ref][]> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<[string, string | Ref][]>([]) },
  {
    weight: 2,
    arbitrary: fc.array(
      fc.oneof(
        fc.tuple(fc.constantFrom(...HEADER_NAMES), headerValue),
        fc.tuple(
          fc.constant('Cookie'),
          fc.oneof(
            fc.constant('refresh_token='),
            headerValue.map((v) => `refresh_token=${v}`),
            fc.constant('refresh_token=%E0%A4%A; __proto__=1'),
          ),
        ),
        fc.tuple(fc.constant('Sec-Fetch-Site'), fc.constantFrom('same-origin', 'cross-site', 'none')),
        fc.tuple(fc.constant('Content-Encoding'), fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x')),
        fc.tuple(fc.constant('Range'), fc.constantFrom('bytes=0-0', 'bytes=999999-', 'bytes=-1', 'bytes=a-b')),
        fc.tuple(fc.constant('If-None-Match'), fc.constantFrom('*', '"x"', 'W/"x"')),
      ),
      { maxLength: 3 },
    ),
  },
  // The refresh cookie of the owner, from an allowed page or not.
  {
    weight: 1,
    arbitrary: fc.constantFrom<[string, string | Ref][]>(
      [
        ['Cookie', new Ref('owner.refreshToken')],
        ['Sec-Fetch-Site', 'same-origin'],
      ],
      [['Cookie', new Ref('owner.refreshToken')]],
    ),
  },
);

function queryArbitrary(operation: Operation, document: Json, hints: ReturnType<typeof hintsFor>): fc.Arbitrary<FuzzRequest['query']> {
  const params = operation.queryParams.map(({ name, schema }) =>
    fc
      .option(
        fc.oneof(
          {
            weight: 3,
            arbitrary: valueOf(schema, document, hints, name).map((value) =>
              value instanceof Ref ? value : encodeURIComponent(String(value)),
            ),
          },
          { weight: 2, arbitrary: hostileQueryValue },
        ),
        { nil: undefined },
      )
      .map((value) => (value === undefined ? [] : [[name, value] as [string, string | Ref]])),
  );
  const declared = fc.tuple(...params).map((parts) => parts.flat());
  const extra = fc.array(
    fc.tuple(
      fc.oneof(fc.constantFrom('__proto__', 'constructor', 'limit', 'cursor', 'a[b]', 'a[]', '%'), hostileQueryValue),
      hostileQueryValue,
    ),
    { maxLength: 2 },
  );
  return fc.oneof(
    { weight: 6, arbitrary: declared },
    { weight: 2, arbitrary: fc.tuple(declared, extra).map(([a, b]) => [...a, ...b]) },
    {
      weight: 1,
      arbitrary: fc
        .oneof(hostileQueryValue, fc.constantFrom('&&&', '=', '==', '&=&', 'a=1&a=2', '%', 'limit=1&limit=2'))
        .map((raw) => ({ raw })),
    },
  );
}

function requestArbitrary(operation: Operation, document: Json): fc.Arbitrary<FuzzRequest> {
  const hints = hintsFor(operation);
  const pathParams = fc.record(
    Object.fromEntries(
      operation.pathParams.map(({ name, schema }) => [
        name,
        fc.oneof(
          {
            weight: 3,
            arbitrary: valueOf(schema, document, hints, name).map((value) =>
              value instanceof Ref ? value : encodeURIComponent(String(value)),
            ),
          },
          { weight: 2, arbitrary: hostilePathSegment },
        ),
      ]),
    ),
  ) as fc.Arbitrary<Record<string, string | Ref>>;
  return fc.record({
    method: fc.oneof(
      { weight: 12, arbitrary: fc.constant(operation.method) },
      { weight: 1, arbitrary: fc.constantFrom('get', 'post', 'put', 'delete', 'patch', 'head', 'options') },
    ),
    pathParams,
    pathShape: fc.oneof(
      { weight: 12, arbitrary: fc.constant('as declared' as const) },
      {
        weight: 1,
        arbitrary: fc.constantFrom<FuzzRequest['pathShape']>(
          'upper case',
          'trailing slash',
          'double slash',
          'dot segment',
          'extra segment',
        ),
      },
    ),
    query: queryArbitrary(operation, document, hints),
    body: bodyArbitrary(operation, document, hints),
    contentType: contentTypeArbitrary,
    authorization: authorizationArbitrary(operation),
    signature: operation.signed
      ? signatureArbitrary
      : fc.oneof(
          { weight: 4, arbitrary: fc.constant<SignatureCase>({ kind: 'omit', headers: SIGNATURE_HEADERS }) },
          { weight: 1, arbitrary: signatureArbitrary },
        ),
    headers: headersArbitrary,
  });
}

// ---- sending one ------------------------------------------------------------------------------------

function changeToken(token: string, change: 'none' | 'flip a character' | 'drop the signature' | 'swap the payload', world: World): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  switch (change) {
    case 'none':
      return token;
    case 'flip a character': {
      const at = Math.floor(signature.length / 2);
      return `${header}.${payload}.${signature.slice(0, at)}${signature[at] === 'A' ? 'B' : 'A'}${signature.slice(at + 1)}`;
    }
    case 'drop the signature':
      return `${header}.${payload}.`;
    case 'swap the payload':
      return `${header}.${world.admin.accessToken.split('.')[1]}.${signature}`;
  }
}

function targetOf(operation: Operation, fuzz: FuzzRequest, world: World): string {
  let path = operation.path.replace(/\{([^}]+)\}/g, (_m, name: string) => {
    const value = fuzz.pathParams[name]!;
    return value instanceof Ref ? encodeURIComponent(resolveRef(world, value)) : value;
  });
  switch (fuzz.pathShape) {
    case 'upper case':
      path = path.toUpperCase();
      break;
    case 'trailing slash':
      path = `${path}/`;
      break;
    case 'double slash':
      path = `/${path}`;
      break;
    case 'dot segment':
      path = path.replace(/^\/([^/]+)/, '/$1/.');
      break;
    case 'extra segment':
      path = `${path}/extra`;
      break;
    default:
      break;
  }
  const query = Array.isArray(fuzz.query)
    ? fuzz.query.map(([name, value]) => `${name}=${value instanceof Ref ? encodeURIComponent(resolveRef(world, value)) : value}`).join('&')
    : fuzz.query.raw;
  return query === '' ? path : `${path}?${query}`;
}

function bodyBytes(fuzz: FuzzRequest, world: World): Buffer | undefined {
  const { body } = fuzz;
  if (body === undefined) return undefined;
  if ('json' in body) {
    const text = JSON.stringify(resolveRefs(world, body.json));
    return text === undefined ? undefined : Buffer.from(text);
  }
  if ('text' in body) return Buffer.from(body.text);
  return Buffer.from(body.bytes);
}

function signatureHeaders(
  world: World,
  fuzz: FuzzRequest,
  method: string,
  target: string,
  bytes: Buffer | undefined,
): Record<string, string> {
  const now = Math.floor(world.h.clock.now().getTime() / 1000);
  const { signature: fault } = fuzz;
  let timestamp = String(now);
  if (fault.kind === 'timestamp') {
    timestamp = { milliseconds: String(now * 1000), 'too old': String(now - 301), 'too new': String(now + 301), text: fault.text }[
      fault.shape
    ];
  }
  let nonce = randomBytes(24).toString('base64url');
  if (fault.kind === 'nonce') nonce = fault.value;
  if (fault.kind === 'replay' && world.acceptedNonces.length > 0) nonce = world.acceptedNonces[world.acceptedNonces.length - 1]!;
  const toSign = {
    method: fault.kind === 'signed something else' && fault.part === 'method' ? (method === 'get' ? 'POST' : 'GET') : method,
    path: fault.kind === 'signed something else' && fault.part === 'path' ? `${target}x` : target,
    timestamp,
    nonce,
    body:
      fault.kind === 'signed something else' && fault.part === 'body' ? Buffer.concat([bytes ?? Buffer.alloc(0), Buffer.from(' ')]) : bytes,
  };
  const headers: Record<string, string> = {
    'X-Client-Id': fault.kind === 'client' ? fault.value : world.client.id,
    'X-Timestamp': timestamp,
    'X-Nonce': nonce,
    'X-Signature': computeSignature(world.client.secret, toSign),
  };
  if (fault.kind === 'signature') headers['X-Signature'] = fault.value;
  if (fault.kind === 'upper-case hex') headers['X-Signature'] = `sha256=${headers['X-Signature']!.slice(7).toUpperCase()}`;
  if (fault.kind === 'omit') for (const name of fault.headers) delete headers[name];
  return headers;
}

function authorizationHeader(world: World, fuzz: FuzzRequest): string | undefined {
  const { authorization: auth } = fuzz;
  if (auth.kind === 'none') return undefined;
  if (auth.kind === 'header') return auth.value;
  const tokens = {
    owner: world.owner.accessToken,
    admin: world.admin.accessToken,
    victim: world.victim.accessToken,
    revoked: world.revokedToken,
    foreign: world.foreignToken,
  };
  return `${auth.scheme} ${changeToken(tokens[auth.of], auth.change, world)}`;
}

interface Sent {
  method: string;
  target: string;
  bytes: Buffer | undefined;
  res: request.Response;
}

async function send(world: World, operation: Operation, fuzz: FuzzRequest): Promise<Sent> {
  const method = fuzz.method;
  const target = targetOf(operation, fuzz, world);
  // HEAD carries no body here: the client would send it unframed, and the server read it as the next request.
  const bytes = method === 'head' ? undefined : bodyBytes(fuzz, world);
  const headers: Record<string, string> = {};
  for (const [name, value] of fuzz.headers) headers[name] = value instanceof Ref ? `refresh_token=${resolveRef(world, value)}` : value;
  const authorization = authorizationHeader(world, fuzz);
  if (authorization !== undefined) headers.Authorization = authorization;
  Object.assign(headers, signatureHeaders(world, fuzz, method.toUpperCase(), target, bytes));
  if (bytes !== undefined && fuzz.contentType !== undefined) headers['Content-Type'] = fuzz.contentType;

  let req = request(world.h.app)[method as 'get'](target).set(headers);
  // The bytes as they are: superagent would otherwise serialise a Buffer by the Content-Type (as JSON, or as a form).
  if (bytes !== undefined) req = req.serialize((data: unknown) => data as string).send(bytes);
  const res = await req;
  if (res.status < 300 && headers['X-Nonce'] !== undefined) world.acceptedNonces.push(headers['X-Nonce']);
  return { method, target, bytes, res };
}

/** What the world must learn from a success: a password changed, a refresh token rotated. */
function learn(world: World, operation: Operation, sent: Sent): void {
  if (sent.res.status >= 300 || sent.bytes === undefined) return;
  let body: Record<string, unknown> | undefined;
  try {
    body = JSON.parse(sent.bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    return;
  }
  if (operation.name === 'POST /users/me/password' && typeof body?.newPassword === 'string') world.owner.password = body.newPassword;
  if (operation.name === 'POST /auth/refresh' && body?.refreshToken === world.owner.refreshToken) {
    world.owner.spentRefreshToken = world.owner.refreshToken;
    world.owner.refreshToken = sent.res.body.refreshToken;
  }
}

// ---- the properties ----------------------------------------------------------------------------------

const CODES = new Set(Object.keys(PROBLEMS));
const SIGNATURE_CODES = new Set(['SIGNATURE_MISSING', 'SIGNATURE_INVALID', 'SIGNATURE_EXPIRED', 'SIGNATURE_REPLAYED']);
const TOKEN_CODES = new Set(['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_REVOKED']);

/** Checks one answer; throws (failing the property) with what is wrong. */
function checkAnswer(operation: Operation, sent: Sent, before: Record<string, string>, after: Record<string, string>): void {
  const { res } = sent;
  const where = `${sent.method.toUpperCase()} ${sent.target.slice(0, 300)} → ${res.status}`;
  if (res.status >= 500) throw new Error(`${where}: a 5xx: ${res.text.slice(0, 500)}`);
  if (res.status < 400) return;
  if (!/^application\/problem\+json/.test(res.headers['content-type'] ?? ''))
    throw new Error(`${where}: not problem+json (${res.headers['content-type']})`);
  const code = res.body?.code as ProblemCode | undefined;
  if (sent.method !== 'head') {
    if (code === undefined || !CODES.has(code)) throw new Error(`${where}: code ${String(code)} is not in the catalogue`);
    if (PROBLEMS[code].status !== res.status) throw new Error(`${where}: ${code} is a ${PROBLEMS[code].status} in the catalogue`);
  }
  const allowed = code && sent.method === operation.method ? REFUSALS_THAT_WRITE[code] : undefined;
  const mayWrite = allowed && allowed.operations.includes(operation.name) ? allowed.tables : [];
  const changed = Object.keys(before).filter((table) => before[table] !== after[table] && !mayWrite.includes(table));
  if (changed.length > 0) {
    const may = allowed && mayWrite.length > 0 ? ` (${String(code)} may write only ${mayWrite.join(', ')}: ${allowed.why})` : '';
    throw new Error(`${where} (${String(code)}): a refused request changed ${changed.join(', ')}${may}`);
  }
}

interface Reach {
  answers: number;
  pastSignature: number;
  pastAuthentication: number;
}

async function runOne(world: World, operation: Operation, fuzz: FuzzRequest, reach: Reach): Promise<void> {
  await keepWorldUsable(world);
  const before = await fingerprint(world);
  const sent = await send(world, operation, fuzz);
  // The requests by email are done after their 202: their writes belong to them, not to the next request.
  await world.h.settled();
  const after = await fingerprint(world);
  checkAnswer(operation, sent, before, after);
  learn(world, operation, sent);
  const code = sent.res.body?.code as string | undefined;
  reach.answers += 1;
  if (code === undefined || !SIGNATURE_CODES.has(code)) reach.pastSignature += 1;
  if (code === undefined || !(SIGNATURE_CODES.has(code) || TOKEN_CODES.has(code))) reach.pastAuthentication += 1;
}

/** A request as a well-behaved client sends it: valid by the schemas, signed, with the right token. */
function wellFormed(operation: Operation, document: Json): FuzzRequest {
  const hints = hintsFor(operation);
  const sample = (schema: Json, name?: string) => fc.sample(valueOf(schema, document, hints, name), { numRuns: 1, seed: 7 })[0];
  return {
    method: operation.method,
    pathParams: Object.fromEntries(
      operation.pathParams.map(({ name, schema }) => {
        const value = sample(schema, name);
        return [name, value instanceof Ref ? value : encodeURIComponent(String(value))];
      }),
    ),
    pathShape: 'as declared',
    query: [],
    body: operation.body ? { json: sample(operation.body.schema) } : undefined,
    contentType: 'application/json',
    authorization: operation.bearer ? { kind: 'token', of: principalOf(operation), scheme: 'Bearer', change: 'none' } : { kind: 'none' },
    signature: operation.signed ? { kind: 'valid' } : { kind: 'omit', headers: SIGNATURE_HEADERS },
    headers: [],
  };
}

/** A request outside every operation: any method, a path of hostile segments, signed or not. */
const strayRequest = fc.record({
  method: fc.constantFrom('get', 'post', 'put', 'delete', 'patch', 'head', 'options'),
  prefix: fc.constantFrom('', '/auth', '/users', '/admin', '/users/me', '/docs', '/.well-known', '/metrics', '/AUTH'),
  segments: fc.array(hostilePathSegment, { minLength: 1, maxLength: 3 }),
  query: fc.option(hostileQueryValue, { nil: undefined }),
  signature: signatureArbitrary,
  body: fc.option(hostileJson, { nil: undefined }),
});

for (const kind of DATABASE_KINDS) {
  describe(`generated hostile requests against every operation of /openapi.json (${kind})`, () => {
    let database: PrivateDatabase;
    let world: World;
    let document: Json;
    let operations: Operation[];

    beforeAll(async () => {
      // A database of its own: every table is fingerprinted, so no other suite may write to it.
      database = await openPrivateDatabase(kind, 'fuzz');
      world = await buildWorld(kind, database.handle);
      const res = await request(world.h.app).get('/openapi.json');
      document = res.body;
      operations = operationsOf(document);
    });

    afterAll(async () => {
      await world?.h.close();
      await database?.dispose();
    });

    test('when the document is read, then it has operations to fuzz, signed and Bearer ones among them', () => {
      expect(operations.length).toBeGreaterThan(15);
      expect(operations.some((operation) => operation.signed && operation.bearer)).toBe(true);
      expect(operations.some((operation) => operation.body)).toBe(true);
    });

    // One test per operation, so a failure names it. Jest needs the names before beforeAll runs:
    // they come from the document built here, and each test checks the served one has it too.
    const names = operationsOf(JSON.parse(JSON.stringify(buildOpenApiDocument()))).map((operation) => operation.name);

    test.each(names)(
      '%s: never a 5xx, every refusal a catalogued problem that changes no row, every answer as documented',
      async (name) => {
        const operation = operations.find((candidate) => candidate.name === name);
        // The served document and the one built here are the same; a route missing from either is a failure.
        expect(operation).toBeDefined();
        const reach: Reach = { answers: 0, pastSignature: 0, pastAuthentication: 0 };
        await fc.assert(
          fc.asyncProperty(requestArbitrary(operation!, document), (fuzz) => runOne(world, operation!, fuzz, reach)),
          // A well-formed request first, then the generated ones.
          { numRuns: runsFor(kind, operation), seed: SEED, examples: [[wellFormed(operation!, document)]] },
        );
        // The fuzz got past the signature (and the token) to validation and the handler, not only to the door.
        if (operation!.signed) expect(reach.pastSignature).toBeGreaterThan(0);
        if (operation!.bearer) expect(reach.pastAuthentication).toBeGreaterThan(0);
      },
      FUZZ_TIMEOUT_MS,
    );

    test(
      'when every string field of every body is at the edge of its length limit, in characters whose length changes, then each answer holds the properties',
      async () => {
        // Deterministic, besides the random fuzz: each field, each character, at the limit and one past it.
        const failures: string[] = [];
        for (const operation of operations.filter((candidate) => candidate.body)) {
          const [base] = fc.sample(valueOf(operation.body!.schema, document, hintsFor(operation)), { numRuns: 1, seed: 11 });
          const properties = propertiesOf(operation.body!.schema, document);
          const strings = Object.entries(properties).filter(([, property]) => [property.type].flat().includes('string'));
          for (const [field, property] of strings) {
            for (const character of BOUNDARY_CHARACTERS) {
              for (const count of [lengthLimitOf(property), lengthLimitOf(property) + 1]) {
                const fuzz: FuzzRequest = {
                  method: operation.method,
                  pathParams: {},
                  pathShape: 'as declared',
                  query: [],
                  body: {
                    json: objectOf([...Object.entries(base as object).filter(([k]) => k !== field), [field, repeated(character, count)]]),
                  },
                  contentType: 'application/json',
                  authorization: operation.bearer ? { kind: 'token', of: 'owner', scheme: 'Bearer', change: 'none' } : { kind: 'none' },
                  signature: { kind: 'valid' },
                  headers: [],
                };
                try {
                  await runOne(world, operation, fuzz, { answers: 0, pastSignature: 0, pastAuthentication: 0 });
                } catch (error) {
                  failures.push(
                    `${operation.name} ${field} = ${count} × ${JSON.stringify(character)}: ${(error as Error).message.slice(0, 400)}`,
                  );
                }
              }
            }
          }
        }
        expect(failures).toEqual([]);
      },
      FUZZ_TIMEOUT_MS,
    );

    test(
      'when requests go to paths no operation has, then each is a 404 (or a refusal in front of it) as a problem, and no row changes',
      async () => {
        const stray: Operation = {
          name: 'stray',
          method: 'none',
          path: '',
          pathParams: [],
          queryParams: [],
          body: undefined,
          signed: true,
          bearer: false,
          permission: undefined,
        };
        await fc.assert(
          fc.asyncProperty(strayRequest, async ({ method, prefix, segments, query, signature, body }) => {
            const path = `${prefix}/${segments.join('/')}`;
            const fuzz: FuzzRequest = {
              method,
              pathParams: {},
              pathShape: 'as declared',
              query: query === undefined ? [] : { raw: query },
              body: body === undefined ? undefined : { json: body },
              contentType: 'application/json',
              authorization: { kind: 'none' },
              signature,
              headers: [],
            };
            await keepWorldUsable(world);
            const before = await fingerprint(world);
            const sent = await send(world, { ...stray, path }, fuzz);
            await world.h.settled();
            const after = await fingerprint(world);
            checkAnswer(stray, sent, before, after);
          }),
          { numRuns: runsFor(kind) * 2, seed: SEED },
        );
      },
      FUZZ_TIMEOUT_MS,
    );

    test('when a login fails, then the write counter sees its rows, and the property refuses them where no refusal may write', async () => {
      const before = await fingerprint(world);
      const res = await signed(world, 'POST', '/auth/login', {
        email: `nobody-${randomUUID()}@example.test`,
        password: 'not the password',
      });
      const after = await fingerprint(world);

      expect(res.status).toBe(401);
      expect(world.tables.filter((table) => before[table] !== after[table])).toEqual(['audit_events', 'login_failures']);
      const login = operations.find((operation) => operation.name === 'POST /auth/login')!;
      const me = operations.find((operation) => operation.name === 'GET /users/me')!;
      const sent: Sent = { method: 'post', target: '/auth/login', bytes: undefined, res };
      expect(() => checkAnswer(login, sent, before, after)).not.toThrow();
      expect(() => checkAnswer(me, { ...sent, method: 'get' }, before, after)).toThrow(
        /a refused request changed audit_events, login_failures/,
      );
    });

    test('when the fuzzing is over, then the service answers normally', async () => {
      await keepWorldUsable(world);
      const me = await signed(world, 'GET', '/users/me', undefined, { Authorization: `Bearer ${world.owner.accessToken}` });
      expect(me.status).toBe(200);
      expect(me.body.id).toBe(world.owner.id);
      const fresh = await newAccount(world, 'fuzz-after');
      const login = await signed(world, 'POST', '/auth/login', { email: fresh.email, password: fresh.password });
      expect(login.status).toBe(200);
      const users = await signed(world, 'GET', '/admin/users?limit=2', undefined, { Authorization: `Bearer ${world.admin.accessToken}` });
      expect(users.status).toBe(200);
      expect(users.body.items).toHaveLength(2);
      const health = await request(world.h.app).get('/readyz');
      expect(health.status).toBe(200);
    });
  });
}
