import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createScratchDatabase, DATABASE_KINDS, type DatabaseKind, type ScratchDatabase, writePgliteDataDir } from '../helpers/databases';
import { queryDirect } from '../helpers/postgres';
import { allApplied, allPending, MIGRATION_NAMES, statusRows } from '../helpers/scripts';
import { freePort, writeTestKey } from '../helpers/server-process';
import { waitUntil } from '../helpers/wait';

/*
 * The Dockerfile's two stages, replayed as plain folders (there is no Docker engine here nor
 * in CI): its COPY lines are what goes into each folder, its RUN lines are run there, and its
 * ENV is the environment. Then the operator scripts run in the runtime folder as an operator
 * runs them in the image, `npm run <script>`: compiled code, production dependencies only, no
 * TypeScript sources and no tsx. A file the runtime needs that the Dockerfile does not copy,
 * or a development dependency a compiled script imports, fails here.
 *
 * One build and one `npm ci --omit=dev` (from npm's cache) for the whole file, then a child
 * process per command: slow by the suite's standards, hence the long timeout.
 */
jest.setTimeout(12 * 60_000);

const ROOT = path.resolve(__dirname, '../..');

/** The operator commands of CONTRACT §1, as npm scripts: what must work wherever the service runs. */
const OPERATOR_SCRIPTS = [
  'migrate',
  'migrate:down',
  'migrate:status',
  'keys:generate',
  'keys:list',
  'keys:retire',
  'user:grant',
  'user:revoke',
  'prune',
  'mail:show',
] as const;

/** Bounds on each child process, so a hang fails with its output instead of a Jest timeout. */
const BUILD_TIMEOUT_MS = 5 * 60_000;
const INSTALL_TIMEOUT_MS = 5 * 60_000;
const COMMAND_TIMEOUT_MS = 90_000;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` to its end (bounded) and resolves with its exit code and output. */
function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timeoutMs = options.timeoutMs ?? COMMAND_TIMEOUT_MS;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`\`${command} ${args.join(' ')}\` did not finish within ${timeoutMs} ms:\n${stdout}${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * What every child gets from this process: where to find node and npm, and npm's own cache
 * settings. Nothing else: not the test run's NODE_ENV, DATABASE_URL or npm_* variables.
 */
function baseEnv(): NodeJS.ProcessEnv {
  // No notice of a newer npm on stderr, which the tests expect empty.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, npm_config_update_notifier: 'false' };
  for (const [name, value] of Object.entries(process.env)) {
    if (/^npm_config_(cache|registry|userconfig)$/i.test(name)) env[name] = value;
  }
  return env;
}

// ---- the Dockerfile, read and replayed --------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  name: string;
  instructions: Instruction[];
}

/** The Dockerfile's instructions by stage: continuation lines joined, comments dropped, as Docker reads it. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let logical = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      logical += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/s.exec(logical + line) ?? [];
    logical = '';
    if (keyword.toUpperCase() === 'FROM') {
      const name = /\sAS\s+(\S+)$/i.exec(args)?.[1];
      if (!name) throw new Error(`the replay needs every stage named: FROM ${args}`);
      stages.push({ name, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${keyword} before FROM`);
      stage.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

/** A stage replayed: its folder stands for the image's WORKDIR. */
interface StageFolder {
  dir: string;
  /** Its ENV, paths under WORKDIR pointing into the folder. */
  env: Record<string, string>;
  /** Its CMD, when it has one. */
  cmd?: string[];
  /** The folder's path for an image path under WORKDIR (absolute, or relative to WORKDIR). */
  at(imagePath: string): string;
}

/** The paths .dockerignore keeps out of the build context, as a test on a context-relative path. */
function dockerignore(): (relative: string) => boolean {
  const patterns = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (patterns.some((pattern) => pattern.startsWith('!') || pattern.includes('**'))) {
    throw new Error('the replay reads only plain .dockerignore patterns (no ! or **): teach it the new one');
  }
  const regexes = patterns.map(
    (pattern) =>
      new RegExp(
        `^${pattern
          .replace(/^\/+|\/+$/g, '')
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')}(/|$)`,
      ),
  );
  return (relative) => regexes.some((regex) => regex.test(relative.split(path.sep).join('/')));
}

/** Runs a command of a RUN line in the stage's folder with the stage's environment; fails the replay if it fails. */
async function mustRun(folder: StageFolder, command: string, args: string[], timeoutMs: number): Promise<void> {
  const ran = await run(command, args, { cwd: folder.dir, env: { ...baseEnv(), ...folder.env }, timeoutMs });
  if (ran.code !== 0) {
    throw new Error(`\`${command} ${args.join(' ')}\` in ${folder.dir} exited with ${ran.code}:\n${ran.stdout}${ran.stderr}`);
  }
}

/**
 * Each RUN line of the Dockerfile, and what the replay does for it. Known by their exact text:
 * a changed RUN line fails the replay until this table says how to play it as a folder.
 */
const RUN_REPLAYS: Record<string, (folder: StageFolder) => Promise<void>> = {
  // The build stage's full install: the checkout's own node_modules, installed by `npm ci` from
  // the same lockfile, rather than the same 600 packages again.
  'npm ci': (folder) => fs.symlink(path.join(ROOT, 'node_modules'), path.join(folder.dir, 'node_modules'), 'dir'),
  'npm run build': (folder) => mustRun(folder, 'npm', ['run', 'build'], BUILD_TIMEOUT_MS),
  // The install itself, taken from npm's cache without asking the registry about every package
  // (--prefer-offline) or for an audit; the cache is this machine's, not a layer of an image,
  // so it is not cleaned.
  'npm ci --omit=dev --ignore-scripts && npm cache clean --force': (folder) =>
    mustRun(folder, 'npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], INSTALL_TIMEOUT_MS),
  // The folders the service writes; who owns them is the image's business (one user here).
  'mkdir -p /app/data /app/keys && chown node:node /app/data /app/keys': async (folder) => {
    await fs.mkdir(folder.at('/app/data'), { recursive: true });
    await fs.mkdir(folder.at('/app/keys'), { recursive: true });
  },
};

/** Plays one stage into `dir`: COPY from the build context (or an earlier stage), RUN, ENV, CMD. */
async function replayStage(stage: Stage, dir: string, earlier: ReadonlyMap<string, StageFolder>): Promise<StageFolder> {
  let workdir: string | undefined;
  const folder: StageFolder = {
    dir,
    env: {},
    at(imagePath) {
      if (workdir === undefined) throw new Error(`stage ${stage.name}: ${imagePath} before WORKDIR`);
      const absolute = path.posix.resolve(workdir, imagePath);
      const relative = path.posix.relative(workdir, absolute);
      if (relative.startsWith('..')) throw new Error(`stage ${stage.name}: ${imagePath} is outside WORKDIR ${workdir}`);
      return path.join(dir, relative);
    },
  };
  const ignored = dockerignore();
  for (const { keyword, args } of stage.instructions) {
    if (keyword === 'WORKDIR') {
      workdir = path.posix.resolve(workdir ?? '/', args);
    } else if (keyword === 'ENV') {
      for (const pair of args.split(/\s+/)) {
        const [name = '', value = ''] = pair.split(/=(.*)/s);
        folder.env[name] = workdir !== undefined && (value === workdir || value.startsWith(`${workdir}/`)) ? folder.at(value) : value;
      }
    } else if (keyword === 'COPY') {
      const words = args.split(/\s+/);
      const from = words.find((word) => word.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((word) => !word.startsWith('--'));
      const dest = paths.pop()!;
      for (const source of paths) {
        const target = paths.length > 1 || dest.endsWith('/') ? path.join(folder.at(dest), path.basename(source)) : folder.at(dest);
        if (from !== undefined) {
          const origin = earlier.get(from);
          if (!origin) throw new Error(`COPY --from=${from}: no such stage before ${stage.name}`);
          await fs.cp(origin.at(source), target, { recursive: true });
        } else {
          await fs.cp(path.join(ROOT, source), target, {
            recursive: true,
            filter: (file) => !ignored(path.relative(ROOT, file)),
          });
        }
      }
    } else if (keyword === 'RUN') {
      const replay = RUN_REPLAYS[args];
      if (!replay) throw new Error(`the replay does not know \`RUN ${args}\`: say in RUN_REPLAYS how to play it as a folder`);
      await replay(folder);
    } else if (keyword === 'CMD') {
      folder.cmd = JSON.parse(args) as string[];
    }
    // FROM's image, USER, VOLUME, EXPOSE, HEALTHCHECK, STOPSIGNAL: the image's, not the folder's.
  }
  return folder;
}

// ---- the runtime folder ----------------------------------------------------------------------

let tmp: string;
let runtime: StageFolder;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-runtime-folder-'));
  const stages = parseDockerfile(await fs.readFile(path.join(ROOT, 'Dockerfile'), 'utf8'));
  const played = new Map<string, StageFolder>();
  for (const stage of stages) {
    const dir = path.join(tmp, stage.name);
    await fs.mkdir(dir);
    played.set(stage.name, await replayStage(stage, dir, played));
  }
  // The last stage is the image.
  runtime = played.get(stages.at(-1)!.name)!;
});

afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

/**
 * What a deployment adds to the image's ENV, for the server and the scripts alike (they read
 * the configuration as the server does): production requires HMAC clients.
 */
const DEPLOYMENT_ENV = { HMAC_CLIENTS: `runtime-folder:${randomBytes(24).toString('hex')}`, LOG_LEVEL: 'warn' };

/** `npm run <script> -- <args>` in the runtime folder, with the image's and the deployment's environment and `env`. */
function npmRunInImage(script: string, args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return run('npm', ['run', script, ...(args.length > 0 ? ['--', ...args] : [])], {
    cwd: runtime.dir,
    env: { ...baseEnv(), ...runtime.env, ...DEPLOYMENT_ENV, ...env },
  });
}

describe('the runtime stage as a folder', () => {
  it('when the Dockerfile is replayed, then the runtime folder holds compiled code and production dependencies, no sources and no tsx', async () => {
    const entries = (await fs.readdir(runtime.dir)).sort();
    expect(entries).not.toContain('src');
    expect(entries).not.toContain('scripts');
    for (const devOnly of ['tsx', 'typescript', 'jest']) {
      await expect(fs.access(path.join(runtime.dir, 'node_modules', devOnly))).rejects.toThrow();
    }
    await fs.access(path.join(runtime.dir, 'dist/scripts/migrate.js'));
    expect(runtime.env.NODE_ENV).toBe('production');
  });

  it('when package.json is read, then every operator script runs through the launcher and none through tsx', async () => {
    const manifest = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    for (const script of OPERATOR_SCRIPTS) {
      expect({ script, command: manifest.scripts[script] }).toEqual({
        script,
        command: expect.stringMatching(/^node bin\/gatehouse-script\.cjs /),
      });
    }
  });

  it.each(OPERATOR_SCRIPTS)(
    'when `npm run %s -- --help` runs in the runtime folder, then it prints its usage and exits 0',
    async (script) => {
      const ran = await npmRunInImage(script, ['--help']);

      expect({ code: ran.code, stderr: ran.stderr }).toEqual({ code: 0, stderr: '' });
      expect(ran.stdout).toMatch(/^Usage: /m);
    },
  );
});

describe.each(DATABASE_KINDS)('the runtime folder on %s', (kind: DatabaseKind) => {
  /** DATABASE_URL or DATA_DIR of a database of this describe's own, never migrated before. */
  let databaseEnv: Record<string, string>;
  let scratch: ScratchDatabase | undefined;

  beforeAll(async () => {
    if (kind === 'postgres') {
      try {
        scratch = await createScratchDatabase('runtime');
      } catch (error) {
        throw new Error(
          `PostgreSQL of DATABASE_URL is not reachable (${(error as Error).message}): this suite runs the runtime folder's migrations on it; start it, or unset DATABASE_URL`,
        );
      }
      databaseEnv = { DATABASE_URL: scratch.url };
    } else {
      // The image's own DATA_DIR, initialised but not migrated (what initdb leaves, without its seconds).
      await writePgliteDataDir('empty', runtime.env.DATA_DIR!);
      databaseEnv = { DATABASE_URL: '' };
    }
  });

  afterAll(async () => {
    await scratch?.drop();
  });

  it('when `npm run migrate` runs, then status lists every migration pending before and applied after, and migrate:down reverts the newest', async () => {
    const before = await npmRunInImage('migrate:status', [], databaseEnv);
    expect({ code: before.code, stderr: before.stderr }).toEqual({ code: 0, stderr: '' });
    expect(statusRows(before.stdout)).toEqual(allPending());

    const up = await npmRunInImage('migrate', [], databaseEnv);
    expect({ code: up.code, stderr: up.stderr }).toEqual({ code: 0, stderr: '' });
    for (const name of MIGRATION_NAMES) expect(up.stdout).toContain(`applied ${name}`);

    const after = await npmRunInImage('migrate:status', [], databaseEnv);
    expect(after.code).toBe(0);
    expect(statusRows(after.stdout)).toEqual(allApplied());
    if (scratch) {
      // The database itself, not only the script's word for it.
      const rows = await queryDirect<{ name: string }>(scratch.url, 'SELECT name FROM kysely_migration ORDER BY name');
      expect(rows.map((row) => row.name)).toEqual(MIGRATION_NAMES);
    }

    const down = await npmRunInImage('migrate:down', [], databaseEnv);
    expect(down.code).toBe(0);
    expect(down.stdout).toContain(`reverted ${MIGRATION_NAMES.at(-1)}`);
    const again = await npmRunInImage('migrate', [], databaseEnv);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`applied ${MIGRATION_NAMES.at(-1)}`);
  });

  it("when the image's CMD starts in production with a key and HMAC clients, then /readyz answers 200 and SIGTERM stops it with 0", async () => {
    // Migrations are a deploy step before the server starts (it refuses a PostgreSQL with pending ones).
    expect((await npmRunInImage('migrate', [], databaseEnv)).code).toBe(0);
    const keysDir = await fs.mkdtemp(path.join(tmp, `keys-${kind}-`));
    await writeTestKey(keysDir);
    const port = await freePort();
    const [command, ...args] = runtime.cmd!;
    const server = spawn(command!, args, {
      cwd: runtime.dir,
      env: {
        ...baseEnv(),
        ...runtime.env,
        ...DEPLOYMENT_ENV,
        ...databaseEnv,
        HOST: '127.0.0.1',
        PORT: String(port),
        KEYS_DIR: keysDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    try {
      let readyz = 0;
      await waitUntil(
        async () => {
          if (server.exitCode !== null) throw new Error(`the server exited with ${server.exitCode}:\n${output}`);
          readyz = await fetch(`http://127.0.0.1:${port}/readyz`).then(
            (res) => res.status,
            () => 0,
          );
          return readyz !== 0;
        },
        'the server in the runtime folder answers /readyz',
        40_000,
      );
      expect({ readyz, output }).toEqual({ readyz: 200, output: expect.any(String) });

      server.kill('SIGTERM');
      let code: number | null | undefined;
      void exited.then((value) => (code = value));
      await waitUntil(() => code !== undefined, 'the server exits after SIGTERM', 20_000);
      expect(code).toBe(0);
    } finally {
      server.kill('SIGKILL');
    }
  });
});

describe('the development checkout', () => {
  it('when `npm run migrate:status -- --help` runs in the repository, then it prints its usage and exits 0', async () => {
    const ran = await run('npm', ['run', 'migrate:status', '--', '--help'], { cwd: ROOT, env: baseEnv() });

    expect({ code: ran.code, stderr: ran.stderr }).toEqual({ code: 0, stderr: '' });
    expect(ran.stdout).toMatch(/^Usage: /m);
  });

  it('when a checkout holds a stale dist/, then the npm scripts run the TypeScript source, not the build', async () => {
    const checkout = await fs.mkdtemp(path.join(tmp, 'checkout-'));
    for (const entry of ['src', 'scripts', 'migrations', 'node_modules', 'tsconfig.json']) {
      await fs.symlink(path.join(ROOT, entry), path.join(checkout, entry));
    }
    await fs.cp(path.join(ROOT, 'package.json'), path.join(checkout, 'package.json'));
    await fs.cp(path.join(ROOT, 'bin'), path.join(checkout, 'bin'), { recursive: true });
    await fs.mkdir(path.join(checkout, 'dist/scripts'), { recursive: true });
    await fs.writeFile(path.join(checkout, 'dist/scripts/migrate.js'), 'console.log("stale build"); process.exitCode = 3;\n');

    const ran = await run('npm', ['run', 'migrate:status', '--', '--help'], { cwd: checkout, env: baseEnv() });

    expect({ code: ran.code, stderr: ran.stderr }).toEqual({ code: 0, stderr: '' });
    expect(ran.stdout).toMatch(/^Usage: /m);
    expect(ran.stdout).not.toContain('stale build');
  });
});
