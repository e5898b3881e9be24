import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { createRedis, type Redis } from '../../src/redis';
import { freePort } from './server-process';

/** Bound on a start or a stop, so a broken redis-server fails the test instead of hanging it. */
const TIMEOUT_MS = 10_000;

/**
 * A redis-server of the test's own, on a free port, keeping nothing on disk: stopping it
 * disturbs no other suite (they use REDIS_URL's), and a restart starts it empty, as a
 * Redis without persistence comes back.
 */
export interface RedisServerProcess {
  readonly url: string;
  /** Stops it (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port and waits until it answers PING. */
  start(): Promise<void>;
  /** Freezes it (SIGSTOP): its connections stay open and nothing answers. */
  pause(): void;
  /** Thaws it (SIGCONT). */
  resume(): void;
  /** Kills whatever runs; safe to call twice. */
  dispose(): Promise<void>;
}

/** Every redis-server this test file started and has not seen exit: killed whatever happens. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Whether a Redis on `port` answers PING now. */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts `redis-server` (it must be on the PATH, as in CI) on a free port of 127.0.0.1. */
export async function startRedisServer(): Promise<RedisServerProcess> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';

  async function start(): Promise<void> {
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    live.add(started);
    started.once('exit', () => live.delete(started));
    started.on('error', (error) => (output += `spawn error: ${error.message}\n`));
    started.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    started.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + TIMEOUT_MS;
    while (!(await answersPing(port))) {
      if (started.exitCode !== null || started.signalCode !== null || Date.now() > deadline) {
        started.kill('SIGKILL');
        throw new Error(`redis-server did not start on port ${port}:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async function stop(signal: NodeJS.Signals): Promise<void> {
    const running = child;
    if (!running) return;
    child = undefined;
    // A frozen process does not act on SIGTERM until it runs again.
    running.kill('SIGCONT');
    running.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), TIMEOUT_MS)));
    const result = await Promise.race([exited(running), timeout]);
    clearTimeout(timer);
    if (result === 'timeout') {
      running.kill('SIGKILL');
      await exited(running);
    }
  }

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => stop('SIGTERM'),
    async start() {
      if (!child) await start();
    },
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    dispose: () => stop('SIGKILL'),
  };
}

/** A client from createRedis (of REDIS_URL by default) that has connected, with errors kept out of stderr. */
export async function connectedRedis(url: string = process.env.REDIS_URL!): Promise<Redis> {
  const redis = createRedis(url);
  redis.on('error', () => undefined);
  if (redis.status !== 'ready') await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
  return redis;
}
