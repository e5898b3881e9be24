import request from 'supertest';
import { createLogger } from '../../src/logger';
import { createRecoveryQueue, type RecoveryOutcome } from '../../src/recovery/recovery.queue';
import { openTestDatabase } from '../helpers/databases';
import { uniqueEmail } from '../helpers/factories';
import { createHarness } from '../helpers/harness';

/** A job that runs until released, and tells when it started. */
function heldJob(requestId: string) {
  let release!: () => void;
  let started = false;
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    job: {
      kind: 'password_reset',
      requestId,
      run: async () => {
        started = true;
        await released;
      },
    },
    release,
    started: () => started,
  };
}

/** One turn of the event loop: the queue starts its work on the next one, after the answer is written. */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** A logger whose lines the test reads, and the outcomes the queue counted. */
function observed() {
  const lines: string[] = [];
  const outcomes: RecoveryOutcome[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
  return { lines, outcomes, logger };
}

describe('the recovery queue', () => {
  it('when more requests come than it runs at once, then they start after the current turn, the rest wait theirs, and settled() resolves once all are done', async () => {
    const { logger, outcomes } = observed();
    const queue = createRecoveryQueue({ logger, concurrency: 2, backlog: 10 });
    queue.observe((outcome) => outcomes.push(outcome));
    const jobs = ['a', 'b', 'c'].map(heldJob);
    for (const { job } of jobs) queue.push(job);
    let settled = false;
    const done = queue.settled().then(() => (settled = true));

    expect(jobs.map((job) => job.started())).toEqual([false, false, false]);
    await nextTurn();
    expect(jobs.map((job) => job.started())).toEqual([true, true, false]);
    expect(queue.pending()).toBe(3);
    jobs[0]!.release();
    await nextTurn();
    expect(jobs[2]!.started()).toBe(true);
    expect(settled).toBe(false);
    jobs[1]!.release();
    jobs[2]!.release();
    await done;
    expect(queue.pending()).toBe(0);
    expect(outcomes).toEqual(['done', 'done', 'done']);
    await expect(queue.settled()).resolves.toBeUndefined();
  });

  it('when the backlog is full, then a new request is dropped, counted and logged by its request id', async () => {
    const { logger, lines, outcomes } = observed();
    const queue = createRecoveryQueue({ logger, concurrency: 1, backlog: 1 });
    queue.observe((outcome) => outcomes.push(outcome));
    const running = heldJob('running');
    const waiting = heldJob('waiting');
    const dropped = heldJob('dropped');
    queue.push(running.job);
    queue.push(waiting.job);
    queue.push(dropped.job);

    expect(outcomes).toEqual(['dropped']);
    expect(queue.pending()).toBe(2);
    const line = JSON.parse(lines.find((l) => l.includes('dropped'))!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 40, requestId: 'dropped', kind: 'password_reset' });
    running.release();
    waiting.release();
    await queue.settled();
    expect(dropped.started()).toBe(false);
    expect(outcomes).toEqual(['dropped', 'done', 'done']);
  });

  it('when a request fails, then it is counted and logged with its request id, without what the driver quoted', async () => {
    const { logger, lines, outcomes } = observed();
    const queue = createRecoveryQueue({ logger });
    queue.observe((outcome) => outcomes.push(outcome));
    const error = Object.assign(new Error('connection refused'), {
      code: 'ECONNREFUSED',
      detail: 'Key (recipient)=(someone@example.test)',
    });
    queue.push({
      kind: 'email_verification',
      requestId: 'req-1',
      run: () => Promise.reject(error),
    });
    await queue.settled();

    expect(outcomes).toEqual(['failed']);
    const line = JSON.parse(lines.find((l) => l.includes('recovery request failed'))!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 50, requestId: 'req-1', kind: 'email_verification', err: { code: 'ECONNREFUSED' } });
    expect(lines.join('\n')).not.toContain('someone@example.test');
  });

  it.each([0, -1, 1.5])('when its concurrency is %p, then creating it is a TypeError', (concurrency) => {
    expect(() => createRecoveryQueue({ logger: createLogger('silent'), concurrency })).toThrow(TypeError);
  });
});

describe('a request for a message when the database is down', () => {
  it('when the database is closed, then forgot still answers 202, and the failure is counted and logged by request id, never the email', async () => {
    const lines: string[] = [];
    const database = await openTestDatabase('pglite');
    const h = await createHarness({ database, logger: createLogger('info', { write: (line: string) => void lines.push(line) }) });
    const email = uniqueEmail('outage');
    await database.close();

    const res = await request(h.app).post('/auth/password/forgot').set('X-Request-Id', 'forgot-in-outage').send({ email });
    expect(res.status).toBe(202);
    await h.settled();

    const metrics = (await request(h.app).get('/metrics')).text;
    expect(metrics).toContain('gatehouse_recovery_requests_total{outcome="failed"} 1');
    const failed = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line.msg === 'recovery request failed');
    expect(failed).toMatchObject({ level: 50, requestId: 'forgot-in-outage', kind: 'password_reset' });
    expect(lines.join('\n')).not.toContain(email);
    await h.close();
  });
});
