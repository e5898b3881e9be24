import { execFile } from 'node:child_process';
import path from 'node:path';
import { migrations } from '../../migrations';
import type { ScriptIo, ScriptMain } from '../../scripts/cli';
import type { DatabaseHandle } from '../../src/db/database';

const ROOT = path.resolve(__dirname, '../..');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `scripts/<script>` as an operator would, in a child process; resolves with its exit code
 * and output. A second or two per run: keep it to one smoke test per script, proving the
 * wiring from the command line, and run the rest in-process with {@link runInProcess}.
 */
export function runScript(script: ScriptName, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join('scripts', script), ...args],
      { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'silent', ...env }, timeout: 50_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`${script} did not finish (${error.message}); stderr: ${stderr}`));
          return;
        }
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

/** The operator scripts with a `main(argv, io)`, each loaded when first run. */
const SCRIPTS = {
  'keys-generate.ts': () => import('../../scripts/keys-generate'),
  'keys-list.ts': () => import('../../scripts/keys-list'),
  'keys-retire.ts': () => import('../../scripts/keys-retire'),
  'migrate.ts': () => import('../../scripts/migrate'),
  'prune.ts': () => import('../../scripts/prune'),
  'sign.ts': () => import('../../scripts/sign'),
  'user-grant.ts': () => import('../../scripts/user-grant'),
  'user-revoke.ts': () => import('../../scripts/user-revoke'),
} satisfies Record<string, () => Promise<{ main: ScriptMain }>>;

export type ScriptName = keyof typeof SCRIPTS;

export interface InProcessOptions {
  /**
   * The database the script works on, instead of opening DATABASE_URL or DATA_DIR itself
   * (an in-memory PGlite exists in this process only). It is left open.
   */
  database?: DatabaseHandle;
}

/**
 * Runs `scripts/<script>`'s `main(argv, io)` in this process, with what {@link runScript}
 * gives the child process: this process's environment, LOG_LEVEL silent, then `env`; resolves
 * with the exit code and what it wrote.
 */
export async function runInProcess(
  script: ScriptName,
  args: string[],
  env: Record<string, string>,
  options: InProcessOptions = {},
): Promise<Run> {
  const { main } = await SCRIPTS[script]();
  let stdout = '';
  let stderr = '';
  const { database } = options;
  const io: ScriptIo = {
    env: { ...process.env, LOG_LEVEL: 'silent', ...env },
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    // The script closes what it opened; the test's database stays open for the test.
    ...(database ? { openDatabase: () => Promise.resolve({ ...database, close: () => Promise.resolve() }) } : {}),
  };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

/** Every migration's name, oldest first: the rows `migrate status` lists. */
export const MIGRATION_NAMES = Object.keys(migrations).sort();

/** The rows of `migrate status`: name → "pending" or the ISO time it was applied. */
export function statusRows(stdout: string): Record<string, string> {
  const rows: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const match = /^(\d{8}T\d{4}_\S+)\s+(\S+)$/.exec(line.trim());
    if (match) rows[match[1]!] = match[2]!;
  }
  return rows;
}

/** What {@link statusRows} gives before any migration has run: every one pending. */
export const allPending = () => Object.fromEntries(MIGRATION_NAMES.map((name) => [name, 'pending']));
/** What {@link statusRows} gives once every migration has run: each with the time it was applied. */
export const allApplied = () => Object.fromEntries(MIGRATION_NAMES.map((name) => [name, expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/)]));
