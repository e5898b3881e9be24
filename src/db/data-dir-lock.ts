import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

/** The lock's name in the folder; its drafts and takeover markers start with it too. */
export const LOCK_FILE = 'gatehouse.lock';
/** Rounds of look-and-try before giving up; each round ends only because a rival moved first. */
const MAX_ATTEMPTS = 50;
/** How long to let a rival that is replacing the stale lock finish before looking again. */
const RIVAL_WAIT_MS = 5;

/** The embedded database folder is open in another live process. */
export class DataDirInUseError extends Error {
  override readonly name = 'DataDirInUseError';
}

export interface LockOptions {
  /** The pid written into the lock; this process's. Tests lock as several rival processes. */
  pid?: number;
  /**
   * Called once a lock has been judged stale, before it is taken over. Tests let rivals look
   * at the same stale lock here, to check that only one of them takes it over.
   */
  onStale?: () => void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, owned by someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A lock file's identity (its inode: one per lock ever written) and the pid it names. */
interface LockState {
  ino: bigint;
  holder: number;
}

/** Reads the lock at `file` through one descriptor, so the pid read is that inode's. Undefined when there is none. */
function readLock(file: string): LockState | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return { ino: fstatSync(fd, { bigint: true }).ino, holder: Number(readFileSync(fd, 'utf8').trim()) };
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether a lock's holder still runs. Our own pid counts as gone: a container restarts its
 * server as the same pid (often 1), and a lock naming it is the previous run's.
 */
function heldByOther(state: LockState, pid: number): boolean {
  const { holder } = state;
  return Number.isInteger(holder) && holder > 0 && holder !== pid && isAlive(holder);
}

/**
 * Replaces the stale lock `staleIno` with `draft`, unless a rival does it first. Unlinking
 * the stale lock and creating a new one (as a pid file is usually taken over) lets two
 * rivals that judged it stale together both win: the second removes the first's fresh lock.
 * Here the right to replace one stale lock is an exclusive create, named by that lock's
 * inode (`link` fails when the name exists): one rival gets it. The marker is a hard link
 * to the lock, so that inode cannot be reused while the marker exists, and a marker left by
 * a rival that died mid-way names a lock long gone, never blocking a later takeover.
 */
function takeOver(file: string, draft: string, staleIno: bigint, pid: number): boolean {
  const marker = `${file}.takeover-${staleIno}`;
  try {
    linkSync(file, marker);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // EEXIST: a rival is replacing this very lock. ENOENT: the lock went away meanwhile.
    if (code === 'EEXIST' || code === 'ENOENT') return false;
    throw error;
  }
  try {
    // The link is of whatever lock is there now: go on only if that is the one judged stale,
    // and it still is (its holder could not have changed it: it no longer runs).
    const now = readLock(marker);
    if (!now || now.ino !== staleIno || heldByOther(now, pid)) return false;
    // Atomic: the lock is the stale one or ours, never missing (a missing lock is free to all).
    renameSync(draft, file);
    return true;
  } finally {
    rmSync(marker, { force: true });
  }
}

/**
 * Claims the embedded database folder for this process. PGlite is a single-process
 * PostgreSQL with no postmaster.pid of its own: two processes on one folder (say the server
 * and `npm run user:grant`) would each write the files behind the other's back and corrupt
 * them. A lock left by a process that died is taken over, by one process only however many
 * start together. Creates the folder (owner only) when missing. Returns the release function.
 */
export function lockDataDir(dataDir: string, options: LockOptions = {}): () => void {
  const pid = options.pid ?? process.pid;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, LOCK_FILE);
  // The lock is written whole under a name of its own, then linked or renamed into place:
  // a rival never reads a lock that exists but holds no pid yet.
  const draft = `${file}.${pid}-${randomBytes(6).toString('hex')}`;
  const fd = openSync(draft, 'wx', 0o600);
  let ours: bigint;
  try {
    writeSync(fd, String(pid));
    ours = fstatSync(fd, { bigint: true }).ino;
  } finally {
    closeSync(fd);
  }
  const release = () => {
    // Only our own lock: never one that replaced it.
    if (readLock(file)?.ino === ours) rmSync(file, { force: true });
  };

  try {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        linkSync(draft, file);
        return release;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const current = readLock(file);
      // Released between our two looks: try again.
      if (!current) continue;
      if (heldByOther(current, pid)) {
        throw new DataDirInUseError(
          `the embedded database in ${dataDir} is in use by process ${current.holder} (a running server?): stop it first, or use DATABASE_URL`,
        );
      }
      options.onStale?.();
      if (takeOver(file, draft, current.ino, pid)) return release;
      // A rival is mid-way through its takeover: the next look most likely finds it done.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, RIVAL_WAIT_MS);
    }
  } finally {
    // After a link, the lock's second name; after a rename, already gone.
    rmSync(draft, { force: true });
  }
  throw new DataDirInUseError(`could not lock the embedded database in ${dataDir}: other processes kept taking it`);
}
