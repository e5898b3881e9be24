import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DataDirInUseError, lockDataDir } from '../../src/db/data-dir-lock';

/** The pid of a process that has exited: what a crashed server leaves in its lock. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  return child.pid!;
}

/** Live processes whose pids stand for rival servers starting at the same moment. */
async function liveProcesses(count: number): Promise<ChildProcess[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const child = spawn('sleep', ['120']);
      await once(child, 'spawn');
      return child;
    }),
  );
}

async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill();
      await once(child, 'exit');
    }),
  );
}

describe('lockDataDir', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-lock-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('when the folder is free, then it is locked with our pid and released on demand', async () => {
    const release = lockDataDir(dir);
    expect(await fs.readFile(path.join(dir, 'gatehouse.lock'), 'utf8')).toBe(String(process.pid));
    release();
    await expect(fs.stat(path.join(dir, 'gatehouse.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('when another live process holds it, then it refuses with a message naming that process', async () => {
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      await fs.writeFile(path.join(dir, 'gatehouse.lock'), String(other.pid));
      expect(() => lockDataDir(dir)).toThrow(DataDirInUseError);
      expect(() => lockDataDir(dir)).toThrow(new RegExp(`in use by process ${other.pid}`));
    } finally {
      other.kill();
      await once(other, 'exit');
    }
  });

  it('when the process that held it has died, then the stale lock is taken over', async () => {
    const other = spawn(process.execPath, ['-e', '']);
    await once(other, 'exit');
    await fs.writeFile(path.join(dir, 'gatehouse.lock'), String(other.pid));
    const release = lockDataDir(dir);
    expect(await fs.readFile(path.join(dir, 'gatehouse.lock'), 'utf8')).toBe(String(process.pid));
    release();
  });

  it('when the lock holds our own pid (a container restarted with the same pid), then it is taken over', async () => {
    await fs.writeFile(path.join(dir, 'gatehouse.lock'), String(process.pid));

    const release = lockDataDir(dir);

    expect(await fs.readFile(path.join(dir, 'gatehouse.lock'), 'utf8')).toBe(String(process.pid));
    release();
  });

  it('when the folder is created, then it is readable by its owner only', async () => {
    const dataDir = path.join(dir, 'new');

    const release = lockDataDir(dataDir);
    release();

    expect((await fs.stat(dataDir)).mode & 0o777).toBe(0o700);
  });
});

describe('lockDataDir when several processes find the same stale lock', () => {
  let dir: string;
  let rivals: ChildProcess[] = [];
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-lock-race-'));
  });
  afterEach(async () => {
    await stopAll(rivals);
    rivals = [];
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('when each has judged the lock stale before any acts on it, then exactly one takes it over and the others are refused', async () => {
    rivals = await liveProcesses(6);
    await fs.writeFile(path.join(dir, 'gatehouse.lock'), String(await deadPid()));
    const outcomes: string[] = [];
    // Rival i, once it has judged the lock stale, lets rival i + 1 look at it too before it
    // acts: all six act on one stale judgement, the interleaving in which two processes
    // starting together could both take the lock over.
    const attempt = (i: number): void => {
      try {
        lockDataDir(dir, { pid: rivals[i]!.pid!, onStale: () => (i + 1 < rivals.length ? attempt(i + 1) : undefined) });
        outcomes[i] = 'locked';
      } catch (error) {
        outcomes[i] = error instanceof DataDirInUseError ? 'refused' : String(error);
      }
    };

    attempt(0);

    expect(outcomes.filter((outcome) => outcome === 'locked')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === 'refused')).toHaveLength(rivals.length - 1);
    const winner = rivals[outcomes.indexOf('locked')]!;
    expect(await fs.readFile(path.join(dir, 'gatehouse.lock'), 'utf8')).toBe(String(winner.pid));
    expect((await fs.readdir(dir)).sort()).toEqual(['gatehouse.lock']);
  });

  it('when rival threads race for a stale lock, round after round, then exactly one wins each round', async () => {
    const ROUNDS = 40;
    rivals = await liveProcesses(4);
    const stale = await deadPid();
    const gate = new Int32Array(new SharedArrayBuffer(4));
    const workers = rivals.map(
      (rival) =>
        new Worker(RIVAL_THREAD, {
          eval: true,
          workerData: {
            tsx: require.resolve('tsx/cjs/api'),
            module: require.resolve('../../src/db/data-dir-lock.ts'),
            dir,
            pid: rival.pid,
            rounds: ROUNDS,
            gate: gate.buffer,
          },
        }),
    );
    const outcomes = new Map<number, string[]>();
    const roundDone = new Map<number, () => void>();
    for (const worker of workers) {
      worker.on('message', ({ round, outcome }: { round: number; outcome: string }) => {
        const list = outcomes.get(round) ?? [];
        list.push(outcome);
        outcomes.set(round, list);
        if (list.length === workers.length) roundDone.get(round)?.();
      });
    }
    try {
      await Promise.all(workers.map((worker) => once(worker, 'online')));
      for (let round = 0; round < ROUNDS; round++) {
        await fs.rm(path.join(dir, 'gatehouse.lock'), { force: true });
        await fs.writeFile(path.join(dir, 'gatehouse.lock'), String(stale));
        const done = new Promise<void>((resolve) => roundDone.set(round, resolve));
        Atomics.store(gate, 0, round + 1);
        Atomics.notify(gate, 0);
        await done;
      }
    } finally {
      await Promise.all(workers.map((worker) => worker.terminate()));
    }

    const winnersPerRound = [...outcomes.values()].map((list) => list.filter((outcome) => outcome === 'locked').length);
    const unexpected = [...outcomes.values()].flat().filter((outcome) => outcome !== 'locked' && outcome !== 'refused');
    expect(unexpected).toEqual([]);
    expect(winnersPerRound).toEqual(Array.from({ length: ROUNDS }, () => 1));
  }, 60_000);
});

/** A rival server in a thread: each round, it waits at the gate, then tries to lock the folder once. */
const RIVAL_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
require(workerData.tsx).register();
const { lockDataDir } = require(workerData.module);
const gate = new Int32Array(workerData.gate);
for (let round = 0; round < workerData.rounds; round++) {
  Atomics.wait(gate, 0, round);
  let outcome;
  try {
    lockDataDir(workerData.dir, { pid: workerData.pid });
    outcome = 'locked';
  } catch (error) {
    outcome = error && error.name === 'DataDirInUseError' ? 'refused' : String(error);
  }
  parentPort.postMessage({ round, outcome });
}
`;
