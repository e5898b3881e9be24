import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { CliError } from '../cli';

/** A process the bench started: a server under test, a ceiling, a CPU measurement. */
export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Resolves with the exit code (or the signal's name) once the process has ended. */
  readonly exited: Promise<number | string>;
  /** Whether it has ended. */
  hasExited(): boolean;
  /** The last few kilobytes it wrote to stderr. */
  stderrTail(): string;
  /** What it wrote to stdout, when started with `stdout: 'capture'`. */
  stdout(): string;
}

/** Every child still running, so that an error or Ctrl-C can end them all. */
const running = new Set<Child>();

const TAIL_BYTES = 8192;

export interface SpawnOptions {
  env: NodeJS.ProcessEnv;
  /**
   * `discard`: /dev/null, as a production log shipper would take it without ever making the
   * server wait (a pipe the bench is too busy to drain would block pino's synchronous writes).
   */
  stdout: 'discard' | 'capture';
  /** Working directory: not the checkout, so that no `.env` there reaches a server. */
  cwd: string;
}

/** Starts `node <file> <args…>` as a child process of its own. */
export function spawnNode(name: string, file: string, args: readonly string[], options: SpawnOptions): Child {
  const child: ChildProcess = spawn(process.execPath, [file, ...args], {
    env: options.env,
    cwd: options.cwd,
    stdio: ['ignore', options.stdout === 'discard' ? 'ignore' : 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new CliError(`${name}: could not start ${file}`);
  let stderr = '';
  let stdout = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-TAIL_BYTES);
  });
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  let ended = false;
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      ended = true;
      resolve(code ?? signal ?? 'unknown');
    });
    child.on('error', () => {
      ended = true;
      resolve('spawn error');
    });
  });
  const handle: Child = {
    name,
    pid: child.pid,
    exited,
    hasExited: () => ended,
    stderrTail: () => stderr,
    stdout: () => stdout,
  };
  running.add(handle);
  void exited.then(() => running.delete(handle));
  return handle;
}

/** A port nobody listens on now, on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** The process ids of `pid`'s children (cluster workers), from /proc. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The peak resident set (VmHWM) of one process, in kB; undefined once it has gone. */
function peakRssKb(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Peak RSS of a server and of each worker process it forked, kept across samples: a worker
 * replaced during the run keeps the peak it reached. Sample after every scenario.
 */
export class PeakRss {
  private readonly peaks = new Map<number, { role: 'primary' | 'worker'; kb: number }>();

  constructor(private readonly pid: number) {}

  sample(): void {
    const record = (pid: number, role: 'primary' | 'worker') => {
      const kb = peakRssKb(pid);
      if (kb !== undefined) this.peaks.set(pid, { role, kb: Math.max(kb, this.peaks.get(pid)?.kb ?? 0) });
    };
    record(this.pid, 'primary');
    for (const pid of childPids(this.pid)) record(pid, 'worker');
  }

  /** Every process seen, primary first, in MB. */
  processes(): Array<{ pid: number; role: 'primary' | 'worker'; mb: number }> {
    return [...this.peaks.entries()]
      .map(([pid, { role, kb }]) => ({ pid, role, mb: kb / 1024 }))
      .sort((a, b) => (a.role === b.role ? a.pid - b.pid : a.role === 'primary' ? -1 : 1));
  }
}

/** The last line of a log (a pino JSON line: its `msg`), for a one-line error. */
export function lastLogLine(text: string): string | undefined {
  const line = text
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1);
  if (line === undefined) return undefined;
  try {
    const parsed = JSON.parse(line) as { msg?: unknown };
    return typeof parsed.msg === 'string' ? parsed.msg : line;
  } catch {
    return line;
  }
}

/**
 * Waits until `probe` answers true. Fails with the child's last words when it exits first,
 * or after `timeoutMs`.
 */
export async function waitUntilReady(child: Child, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.hasExited()) {
      const code = await child.exited;
      const said = lastLogLine(child.stderrTail()) ?? lastLogLine(child.stdout());
      throw new CliError(`${child.name} exited (${code}) before it was ready${said ? `: ${said}` : ''}`);
    }
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new CliError(`${child.name} was not ready after ${timeoutMs / 1000} s`);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Ends a child: SIGTERM (a server drains and exits), SIGKILL after `graceMs`. Worker processes
 * it forked are ended too, by their own ids, should they outlive it.
 */
export async function stopChild(child: Child, graceMs = 8000): Promise<void> {
  const workers = childPids(child.pid);
  if (!child.hasExited()) {
    signal(child.pid, 'SIGTERM');
    const timer = sleep(graceMs).then(() => 'timeout' as const);
    if ((await Promise.race([child.exited, timer])) === 'timeout') {
      signal(child.pid, 'SIGKILL');
      await child.exited;
    }
  }
  for (const pid of workers) if (isAlive(pid)) signal(pid, 'SIGKILL');
}

/** Ends every child still running. */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...running].map((child) => stopChild(child)));
}

/** Runs a child to its end and returns what it printed; fails when it exits non-zero. */
export async function runToEnd(child: Child): Promise<string> {
  const code = await child.exited;
  const said = lastLogLine(child.stderrTail());
  if (code !== 0) throw new CliError(`${child.name} failed (${code})${said ? `: ${said}` : ''}`);
  return child.stdout();
}
