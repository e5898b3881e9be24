import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { DATABASE_KINDS } from '../helpers/databases';
import { expectProblem, GOOD_PASSWORD, uniqueEmail, uniqueUsername } from '../helpers/factories';

// PGlite runs one statement at a time; PostgreSQL really interleaves the two transactions,
// so there the unique index (not a prior SELECT) must be what decides the race.
describe.each(DATABASE_KINDS)('POST /auth/register, concurrently (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when two registrations race for one email, then exactly one gets 201 and the other 409 EMAIL_TAKEN', async () => {
    const email = uniqueEmail('race');
    const responses = await Promise.all([
      request(h.app).post('/auth/register').send({ email, password: GOOD_PASSWORD }),
      request(h.app)
        .post('/auth/register')
        .send({ email: ` ${email.toUpperCase()}`, password: GOOD_PASSWORD }),
    ]);

    expect(responses.map((res) => res.status).sort()).toEqual([201, 409]);
    expectProblem(
      responses.find((res) => res.status === 409)!,
      409,
      'EMAIL_TAKEN',
    );
    const rows = await h.database.db.selectFrom('users').select('id').where('email', '=', email).execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.id).toBe(responses.find((res) => res.status === 201)!.body.user.id);
  });

  it('when two registrations race for one username, then exactly one gets 201 and the other 409 USERNAME_TAKEN', async () => {
    const username = uniqueUsername();
    const responses = await Promise.all([
      request(h.app)
        .post('/auth/register')
        .send({ email: uniqueEmail('race'), password: GOOD_PASSWORD, username }),
      request(h.app)
        .post('/auth/register')
        .send({ email: uniqueEmail('race'), password: GOOD_PASSWORD, username: username.toUpperCase() }),
    ]);

    expect(responses.map((res) => res.status).sort()).toEqual([201, 409]);
    expectProblem(
      responses.find((res) => res.status === 409)!,
      409,
      'USERNAME_TAKEN',
    );
    const rows = await h.database.db
      .selectFrom('users')
      .select('id')
      .where((eb) => eb(eb.fn('lower', ['username']), '=', username.toLowerCase()))
      .execute();
    expect(rows).toHaveLength(1);
  });

  it('when a registration loses the race, then it leaves no second session or audit event behind', async () => {
    const email = uniqueEmail('race');
    await Promise.all([
      request(h.app).post('/auth/register').send({ email, password: GOOD_PASSWORD }),
      request(h.app).post('/auth/register').send({ email, password: GOOD_PASSWORD }),
    ]);

    const [user] = await h.database.db.selectFrom('users').select('id').where('email', '=', email).execute();
    const sessions = await h.database.db.selectFrom('sessions').select('id').where('user_id', '=', user!.id).execute();
    const events = await h.database.db.selectFrom('audit_events').select('type').where('user_id', '=', user!.id).execute();
    expect(sessions).toHaveLength(1);
    expect(events.map((event) => event.type)).toEqual(['user.registered']);
  });
});
