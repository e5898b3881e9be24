/**
 * The CPU ceilings of refresh and login, measured in a process of their own (started by
 * `npm run bench` from the build, `node dist/scripts/bench/crypto-ceiling.js`):
 *
 *   rs256 <seconds> <private key file>     RS256 signatures per second on one thread:
 *                                          jsonwebtoken.sign with a pre-parsed KeyObject,
 *                                          an access token's claims and header
 *   bcrypt <seconds> <cost> <threads>      bcryptjs compares per second, one worker
 *                                          thread per core, at the server's cost
 *
 * Prints one JSON line: `{"perSecond": n, "count": n, "seconds": n}`.
 */
import { createPrivateKey, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import jwt from 'jsonwebtoken';

const PASSWORD = 'correct horse battery staple';

interface Measured {
  count: number;
  seconds: number;
}

/** Runs `one` until `deadline`, after the first call (a warm-up, not counted). */
function loopUntil(deadline: number, one: () => void): Measured {
  one();
  const started = performance.now();
  let count = 0;
  while (Date.now() < deadline) {
    one();
    count++;
  }
  return { count, seconds: (performance.now() - started) / 1000 };
}

function rs256(seconds: number, keyFile: string): Measured {
  const privateKey = createPrivateKey(readFileSync(keyFile, 'utf8'));
  const sign = () => {
    const iat = Math.floor(Date.now() / 1000);
    jwt.sign(
      { iss: 'gatehouse', aud: 'gatehouse', sub: randomUUID(), sid: randomUUID(), jti: randomUUID(), iat, exp: iat + 900, roles: ['user'] },
      privateKey,
      { algorithm: 'RS256', header: { alg: 'RS256', typ: 'at+jwt', kid: 'ceiling' } },
    );
  };
  // Warm the JIT for a moment before the clock starts.
  loopUntil(Date.now() + 200, sign);
  return loopUntil(Date.now() + seconds * 1000, sign);
}

interface BcryptTask {
  hash: string;
}

async function bcryptOnThreads(seconds: number, cost: number, threads: number): Promise<Measured> {
  const hash = bcrypt.hashSync(PASSWORD, cost);
  const workers = Array.from({ length: threads }, () => new Worker(__filename, { workerData: { hash } satisfies BcryptTask }));
  // Start every thread at once, after all of them have loaded.
  await Promise.all(workers.map((worker) => new Promise((resolve) => worker.once('message', resolve))));
  const deadline = Date.now() + seconds * 1000;
  const results = await Promise.all(
    workers.map(
      (worker) =>
        new Promise<Measured>((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
          worker.postMessage(deadline);
        }),
    ),
  );
  await Promise.all(workers.map((worker) => worker.terminate()));
  // Each thread's own rate, summed: one that overran the deadline by a compare is not penalised.
  const perSecond = results.reduce((sum, r) => sum + r.count / r.seconds, 0);
  const count = results.reduce((sum, r) => sum + r.count, 0);
  return { count, seconds: count / perSecond };
}

function bcryptThread(): void {
  const { hash } = workerData as BcryptTask;
  parentPort!.postMessage('ready');
  parentPort!.once('message', (deadline: number) => {
    parentPort!.postMessage(loopUntil(deadline, () => bcrypt.compareSync(PASSWORD, hash)));
  });
}

async function main(argv: string[]): Promise<Measured> {
  const [mode, seconds, ...rest] = argv;
  const duration = Number(seconds);
  if (!(duration > 0)) throw new TypeError('usage: crypto-ceiling rs256|bcrypt <seconds> …');
  if (mode === 'rs256' && rest[0]) return rs256(duration, rest[0]);
  if (mode === 'bcrypt' && rest.length === 2) return bcryptOnThreads(duration, Number(rest[0]), Number(rest[1]));
  throw new TypeError('usage: crypto-ceiling rs256 <seconds> <key file> | bcrypt <seconds> <cost> <threads>');
}

if (!isMainThread) {
  bcryptThread();
} else {
  main(process.argv.slice(2)).then(
    ({ count, seconds }) => {
      process.stdout.write(`${JSON.stringify({ perSecond: count / seconds, count, seconds })}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
