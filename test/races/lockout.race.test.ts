import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { expectProblem, GOOD_PASSWORD, registerUser, uniqueEmail } from '../helpers/factories';
import { createHarness, createSecondInstance, type Harness } from '../helpers/harness';

// CONTRACT.md section 7 under a burst: wrong passwords for one email arriving all at once, on
// two instances, against the lockout threshold. The counter is one upsert whose row lock orders
// them (src/auth/login-failures.repository.ts): the count stops exactly at the threshold, exactly
// one failure sets the lock (one user.locked event, one count in the metric), and every
// failure after it is told 423. Round after round, so that each interleaving turns up.

const WRONG_PASSWORD = 'not the right password';
const THRESHOLD = 5;
/** Wrong passwords per round, all at once: more than twice the threshold. */
const BURST = 12;

/** A documentation address (RFC 3849) of its own for each round: its counters and events are the round's alone. */
function freshAddress(host = 1): string {
  const hex = randomBytes(6).toString('hex');
  return `2001:db8:${hex.slice(0, 4)}:${hex.slice(4, 8)}:${hex.slice(8, 12)}::${host.toString(16)}`;
}

describe.each(DATABASE_KINDS)('wrong passwords racing the lockout threshold on two instances (%s)', (kind) => {
  const ROUNDS = kind === 'postgres' ? 15 : 6;

  /** Two instances over one database, with `env`; X-Forwarded-For sets each request's address. */
  async function twoInstances(env: Record<string, string>): Promise<[Harness, Harness]> {
    const a = await createHarness({ kind, env: { TRUST_PROXY: '1', ...env } });
    return [a, await createSecondInstance(a, kind, { TRUST_PROXY: '1', ...env })];
  }

  const login = (h: Harness, email: string, password: string, address: string) =>
    request(h.app).post('/auth/login').set('X-Forwarded-For', address).send({ email, password });

  /** Lockouts both instances have counted (each has its own metrics). */
  async function lockoutsCounted(instances: Harness[]): Promise<number> {
    let total = 0;
    for (const h of instances) {
      const text = (await request(h.app).get('/metrics')).text;
      total += Number(/^gatehouse_account_lockouts_total (\d+)/m.exec(text)?.[1] ?? NaN);
    }
    return total;
  }

  /** 401 for the failures below the threshold, 423 for the one that reaches it and every one after. */
  const expectedStatuses = [...Array(THRESHOLD - 1).fill(401), ...Array(BURST - THRESHOLD + 1).fill(423)];

  describe('from one address (LOGIN_MAX_FAILURES)', () => {
    let a: Harness;
    let b: Harness;
    beforeAll(async () => {
      [a, b] = await twoInstances({ LOGIN_MAX_FAILURES: String(THRESHOLD) });
    });
    afterAll(async () => {
      await b?.close();
      await a?.close();
    });

    it(`when ${BURST} wrong passwords for one email race from one address, ${ROUNDS} rounds (accounts and unknown emails in turn), then ${THRESHOLD - 1} answer 401 and the rest 423, the count stops at ${THRESHOLD}, and exactly one lock is set, audited and counted`, async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const user = round % 2 === 0 ? await registerUser(a.app) : undefined;
        const email = user?.email ?? uniqueEmail('nobody');
        const address = freshAddress();
        const countedBefore = await lockoutsCounted([a, b]);

        const responses = await Promise.all(Array.from({ length: BURST }, (_, i) => login(i % 2 ? a : b, email, WRONG_PASSWORD, address)));

        const statuses = responses.map((res) => res.status).sort();
        expect({ round, statuses }).toEqual({ round, statuses: expectedStatuses });
        for (const res of responses) expectProblem(res, res.status, res.status === 401 ? 'INVALID_CREDENTIALS' : 'ACCOUNT_LOCKED');
        const counter = await a.database.db
          .selectFrom('login_failures')
          .select(['failures', 'locked_until'])
          .where('email', '=', email)
          .where('ip', '=', address)
          .executeTakeFirstOrThrow();
        expect(counter.failures).toBe(THRESHOLD);
        expect(counter.locked_until).not.toBeNull();
        const locks = await a.database.db
          .selectFrom('audit_events')
          .select('data')
          .where('type', '=', 'user.locked')
          .where('ip', '=', address)
          .execute();
        expect(locks.map((lock) => lock.data)).toEqual([expect.objectContaining({ scope: 'address', failures: THRESHOLD })]);
        expect((await lockoutsCounted([a, b])) - countedBefore).toBe(1);
        // The lock holds, even for the right password.
        if (user) expectProblem(await login(a, email, GOOD_PASSWORD, address), 423, 'ACCOUNT_LOCKED');
      }
    });
  });

  describe('from many addresses (ACCOUNT_MAX_FAILURES)', () => {
    let a: Harness;
    let b: Harness;
    beforeAll(async () => {
      [a, b] = await twoInstances({ LOGIN_MAX_FAILURES: '100', ACCOUNT_MAX_FAILURES: String(THRESHOLD) });
    });
    afterAll(async () => {
      await b?.close();
      await a?.close();
    });

    it(`when ${BURST} wrong passwords for one account race from ${BURST} addresses, ${ROUNDS} rounds, then ${THRESHOLD - 1} answer 401 and the rest 423, the account's count stops at ${THRESHOLD}, and exactly one account lock is set, audited and counted`, async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const user = await registerUser(a.app);
        const countedBefore = await lockoutsCounted([a, b]);

        const responses = await Promise.all(
          Array.from({ length: BURST }, (_, i) => login(i % 2 ? a : b, user.email, WRONG_PASSWORD, freshAddress(i + 1))),
        );

        const statuses = responses.map((res) => res.status).sort();
        expect({ round, statuses }).toEqual({ round, statuses: expectedStatuses });
        const counter = await a.database.db
          .selectFrom('login_failures')
          .select(['failures', 'locked_until'])
          .where('email', '=', user.email)
          .where('ip', '=', '*')
          .executeTakeFirstOrThrow();
        expect(counter.failures).toBe(THRESHOLD);
        expect(counter.locked_until).not.toBeNull();
        const locks = await a.database.db
          .selectFrom('audit_events')
          .select('data')
          .where('type', '=', 'user.locked')
          .where('user_id', '=', user.id)
          .execute();
        expect(locks.map((lock) => lock.data)).toEqual([expect.objectContaining({ scope: 'account', failures: THRESHOLD })]);
        expect((await lockoutsCounted([a, b])) - countedBefore).toBe(1);
        expectProblem(await login(b, user.email, GOOD_PASSWORD, freshAddress()), 423, 'ACCOUNT_LOCKED');
      }
    });
  });
});
