import request from 'supertest';
import { openDatabase } from '../../src/db/database';
import { countActiveAdmins } from '../../src/roles/roles.repository';
import { DATABASE_KINDS, type DatabaseKind, openPrivateDatabase } from '../helpers/databases';
import { bearer, expectProblem, makeAdmin, registerUser, type RegisteredUser } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';

// The last-admin rule (src/admin/admin.service.ts) under contention: two admins, the only two,
// each taking the other's rights at the same moment, on two instances. One may win; the other
// must then be refused, so that there is never no active admin left. The admin-grant lock
// serialises them; round after round, so that each interleaving turns up. A database of the
// suite's own: the rule counts every admin in it.

/** Two instances over a database no other suite touches: on PostgreSQL each with its own pool. */
async function twoInstancesOnPrivateDatabase(kind: DatabaseKind): Promise<{ a: Harness; b: Harness; dispose(): Promise<void> }> {
  const database = await openPrivateDatabase(kind, 'races_admin');
  const second = database.url ? await openDatabase({ databaseUrl: database.url }) : database.handle;
  const a = await createHarness({ database: database.handle });
  const b = await createHarness({ database: second, keys: a.keys });
  return {
    a,
    b,
    dispose: async () => {
      if (second !== database.handle) await second.close();
      await database.dispose();
    },
  };
}

type Move = (h: Harness, actor: RegisteredUser, target: RegisteredUser) => request.Test;

const demote: Move = (h, actor, target) =>
  request(h.app)
    .put(`/admin/users/${target.id}/roles`)
    .set(bearer(actor.accessToken))
    .send({ roles: ['user'] });
const disable: Move = (h, actor, target) => request(h.app).post(`/admin/users/${target.id}/disable`).set(bearer(actor.accessToken));

/** What the one that lost may be told: the rule itself, or (having lost its rights first) that it has none. */
const REFUSALS = ['LAST_ADMIN', 'FORBIDDEN', 'ACCOUNT_DISABLED'];

describe.each(DATABASE_KINDS)('two admins taking each other’s rights at once, on two instances (%s)', (kind) => {
  const ROUNDS = kind === 'postgres' ? 20 : 6;
  let a: Harness;
  let b: Harness;
  let dispose: () => Promise<void>;
  beforeAll(async () => {
    ({ a, b, dispose } = await twoInstancesOnPrivateDatabase(kind));
  });
  afterAll(async () => {
    await dispose?.();
  });

  /** Makes the database's admins exactly two new users. */
  async function onlyTwoAdmins(): Promise<[RegisteredUser, RegisteredUser]> {
    await a.database.db.deleteFrom('user_roles').where('role', '=', 'admin').execute();
    const first = await registerUser(a.app);
    const second = await registerUser(a.app);
    await makeAdmin(a.database.db, first.id);
    await makeAdmin(a.database.db, second.id);
    return [first, second];
  }

  it.each<[string, Move, Move]>([
    ['each demotes the other', demote, demote],
    ['each disables the other', disable, disable],
    ['one demotes the other, who disables the first', demote, disable],
  ])(
    `when %s, ${ROUNDS} rounds, then exactly one succeeds, the other is refused, and one active admin is left`,
    async (_case, firstMove, secondMove) => {
      for (let round = 0; round < ROUNDS; round++) {
        const [first, second] = await onlyTwoAdmins();
        // Alternate instances and which request starts first.
        const moves = [() => firstMove(round % 2 ? a : b, first, second), () => secondMove(round % 2 ? b : a, second, first)];
        if (round % 4 >= 2) moves.reverse();
        const responses = await Promise.all(moves.map((move) => move()));

        const won = responses.filter((res) => res.status === 200);
        const refused = responses.filter((res) => res.status !== 200);
        expect({ round, won: won.length }).toEqual({ round, won: 1 });
        expect(REFUSALS).toContain(refused[0]!.body.code);
        expectProblem(refused[0]!, refused[0]!.status, refused[0]!.body.code);
        expect({ round, activeAdmins: await countActiveAdmins(a.database.db) }).toEqual({ round, activeAdmins: 1 });
      }
    },
  );
});
