import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { expectProblem, GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { createHarness, createSecondInstance, type Harness } from '../helpers/harness';

// Registrations of one email racing each other, round after round: the unique index decides,
// never a SELECT before the INSERT, so exactly one wins and the rest are told EMAIL_TAKEN,
// whichever instance each lands on. The losers leave nothing behind.

describe.each(DATABASE_KINDS)('registrations of one email racing on two instances (%s)', (kind) => {
  /** Rounds: enough for the interleavings to vary, few enough to stay fast (the embedded database has fewer to offer). */
  const ROUNDS = kind === 'postgres' ? 25 : 8;
  /** Registrations per round. */
  const RACERS = 5;
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    a = await createHarness({ kind });
    b = await createSecondInstance(a, kind);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it(`when ${RACERS} registrations of one email (spelt in different cases and spacing) race, ${ROUNDS} rounds, then exactly one gets 201 and the rest 409 EMAIL_TAKEN, leaving one user, one session and one registration event`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const email = uniqueEmail('race');
      const spellings = [email, email.toUpperCase(), ` ${email}`, `${email} `, ` ${email.toUpperCase()} `];

      const responses = await Promise.all(
        spellings.map((spelling, i) =>
          request((i + round) % 2 ? a.app : b.app)
            .post('/auth/register')
            .send({ email: spelling, password: GOOD_PASSWORD }),
        ),
      );

      const statuses = responses.map((res) => res.status).sort();
      expect({ round, statuses }).toEqual({ round, statuses: [201, ...Array(RACERS - 1).fill(409)] });
      for (const res of responses.filter((r) => r.status === 409)) expectProblem(res, 409, 'EMAIL_TAKEN');
      const winner = responses.find((res) => res.status === 201)!.body.user.id as string;
      const users = await a.database.db.selectFrom('users').select('id').where('email', '=', email).execute();
      expect(users.map((user) => user.id)).toEqual([winner]);
      const sessions = await a.database.db.selectFrom('sessions').select('id').where('user_id', '=', winner).execute();
      expect(sessions).toHaveLength(1);
      const events = await a.database.db.selectFrom('audit_events').select('type').where('user_id', '=', winner).execute();
      expect(events.map((event) => event.type)).toEqual(['user.registered']);
    }
  });
});
