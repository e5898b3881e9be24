import { parseArgs, type ParseArgsConfig } from 'node:util';
import dotenv from 'dotenv';
import { normalizeEmail } from '../src/users/user.repository';
import { type Config, ConfigError, loadConfig } from '../src/config';
import { type DatabaseHandle, isDatabaseUnavailable, openDatabase } from '../src/db/database';
import { KeyError } from '../src/tokens/keys';
import { DataDirInUseError } from '../src/db/data-dir-lock';

/**
 * A failure the operator can act on. Its message is printed as one line, without a stack,
 * and the script exits non-zero.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
}

/** Where a script writes text: the process's stdout or stderr, or a test's buffer. */
export interface Output {
  write(text: string): unknown;
}

/**
 * What a script takes from outside besides its arguments. Run from the command line
 * ({@link runMain}), these are the process's own; a test passes its own and reads what was written.
 */
export interface ScriptIo {
  /** The variables the configuration is read from: process.env, with `.env` loaded, from the command line. */
  env: NodeJS.ProcessEnv;
  stdout: Output;
  stderr: Output;
  /**
   * Opens the database the configuration names. By default, what the server opens:
   * DATABASE_URL, else the embedded database under DATA_DIR. A caller that already holds
   * the database (a test, on an in-memory one) hands it over here; it is closed after use.
   */
  openDatabase?: (config: Config) => Promise<DatabaseHandle>;
}

/** A script's entry point: the arguments after the script's name in, the exit code out. */
export type ScriptMain = (argv: string[], io: ScriptIo) => Promise<number>;

/** The process's own environment and streams. */
export function processIo(): ScriptIo {
  return { env: process.env, stdout: process.stdout, stderr: process.stderr };
}

/** Writes whole lines to `out`, as console.log does with one string. */
export function lineWriter(out: Output): (line: string) => void {
  return (line) => {
    out.write(`${line}\n`);
  };
}

/** An instant as the scripts print it: ISO 8601 in UTC, to the second (`2026-11-23T13:21:55Z`). */
export function formatInstant(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** What a script accepts, and the help text `--help` prints. */
export interface CommandSpec<O extends NonNullable<ParseArgsConfig['options']>> {
  /** The npm script name, used as the prefix of error lines. */
  name: string;
  /** The whole `--help` text: usage line, what it does, options. */
  help: string;
  options: O;
  /** Positional arguments the command allows (e.g. `up`, `down`, `status`); none when absent. */
  maxPositionals?: number;
}

export type ParsedArgs<O extends NonNullable<ParseArgsConfig['options']>> = ReturnType<
  typeof parseArgs<{ options: O & { help: { type: 'boolean'; short: 'h' } }; allowPositionals: true; strict: true }>
>;

/**
 * parseArgs refuses `--kid -H4x…` as ambiguous, yet a kid (a base64url thumbprint) starts
 * with `-` one time in 64. Every string option of ours takes a value, so a token after one
 * is its value unless it is itself one of our options: rewrite such pairs as `--kid=-H4x…`.
 */
function attachDashedValues(argv: string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const optionNamed = (token: string) => {
    const name = token.startsWith('--') ? token.slice(2).split('=')[0]! : undefined;
    return name !== undefined && (name === 'help' || Object.hasOwn(options, name)) ? name : undefined;
  };
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') return [...args, ...argv.slice(i)];
    const next = argv[i + 1];
    const name = token.includes('=') ? undefined : optionNamed(token);
    const takesValue = name !== undefined && options[name]?.type === 'string';
    if (takesValue && next !== undefined && next.startsWith('-') && next !== '-h' && next !== '--' && !optionNamed(next)) {
      args.push(`${token}=${next}`);
      i++;
    } else {
      args.push(token);
    }
  }
  return args;
}

/**
 * Parses the command line strictly (an unknown option is an error, not ignored) and answers
 * `--help` itself: prints the help to `stdout` and exits 0. Returns undefined in that case.
 */
export function parseCommandLine<O extends NonNullable<ParseArgsConfig['options']>>(
  spec: CommandSpec<O>,
  argv: string[] = process.argv.slice(2),
  stdout: Output = process.stdout,
): ParsedArgs<O> | undefined {
  let parsed: ParsedArgs<O>;
  try {
    parsed = parseArgs({
      args: attachDashedValues(argv, spec.options),
      options: { ...spec.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // parseArgs' messages are long and mention "strict"; keep its first sentence.
    const message = error instanceof Error ? (error.message.split('. ')[0] ?? error.message) : String(error);
    throw new CliError(`${message.replace(/\.$/, '')}; see --help`);
  }
  if ((parsed.values as { help?: boolean }).help) {
    stdout.write(spec.help.trim() + '\n');
    return undefined;
  }
  if (parsed.positionals.length > (spec.maxPositionals ?? 0)) {
    throw new CliError(`unexpected argument "${parsed.positionals[spec.maxPositionals ?? 0]}"; see --help`);
  }
  return parsed;
}

/**
 * The service's configuration, read as the server reads it (`.env` included by the caller), but
 * without the rules that only a server answering requests needs (signing clients, workers, mail):
 * an operator runs `npm run migrate` with `DATABASE_URL`, not the whole serving setup.
 */
export function loadScriptConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return loadConfig(env, { serving: false });
}

/**
 * Opens the database the server would open (DATABASE_URL, else the embedded one under
 * DATA_DIR), or the one `io` hands over, runs `work`, and always closes it: an open pool
 * would keep the process alive, and PGlite must be closed to leave its files consistent.
 */
export async function withDatabase<T>(config: Config, io: ScriptIo, work: (handle: DatabaseHandle) => Promise<T>): Promise<T> {
  const handle = io.openDatabase
    ? await io.openDatabase(config)
    : await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    return await work(handle);
  } finally {
    await handle.close();
  }
}

/** Errors whose message is already a complete sentence for an operator. */
function isExpected(error: unknown): error is Error {
  return error instanceof CliError || error instanceof ConfigError || error instanceof KeyError || error instanceof DataDirInUseError;
}

/** One line about an unexpected error; pg's AggregateError (IPv4 and IPv6 both refused) has no message of its own. */
function describe(error: unknown): string {
  if (error instanceof AggregateError && error.message === '' && error.errors.length > 0) return describe(error.errors[0]);
  const message = error instanceof Error ? error.message : String(error);
  // 42P01 undefined_table: pointed at a database nobody has migrated yet.
  if ((error as { code?: unknown }).code === '42P01') return `the database is not migrated (${message}): run \`npm run migrate\` first`;
  return isDatabaseUnavailable(error) ? `cannot reach the database (${message})` : `failed: ${message}`;
}

/**
 * Runs a command's work: on failure writes one line to stderr (`name: message`) and resolves
 * with exit code 1, else 0.
 */
export async function runCommand(name: string, io: Pick<ScriptIo, 'stderr'>, work: () => Promise<void>): Promise<number> {
  try {
    await work();
    return 0;
  } catch (error) {
    const message = isExpected(error) ? error.message : describe(error);
    io.stderr.write(`${name}: ${message.split('\n')[0]}\n`);
    return 1;
  }
}

/**
 * What a script does when its file is run directly (`npm run …`, `tsx scripts/….ts`): reads
 * `.env` into process.env, runs `main` on the command line and the process's streams, and
 * sets the exit code. The process then exits by itself once everything is closed; nothing
 * forces it, so output is never cut short.
 */
export function runMain(main: ScriptMain): void {
  // Exactly what `import 'dotenv/config'` does (quiet unless DOTENV_QUIET says otherwise;
  // dotenv parses that text itself), but here rather than at import time: a test importing
  // the script must not have .env poured into its process.
  const quiet = process.env.DOTENV_QUIET ?? process.env.DOTENV_CONFIG_QUIET;
  dotenv.config({ quiet: (quiet ?? true) as boolean });
  void main(process.argv.slice(2), processIo()).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`${describe(error).split('\n')[0]}\n`);
      process.exitCode = 1;
    },
  );
}

/**
 * `--email E --role R`, as user:grant and user:revoke take them: the email normalised as the
 * service stores it. Undefined when `--help` was answered.
 */
export function parseEmailAndRole(
  name: string,
  help: string,
  argv: string[] = process.argv.slice(2),
  stdout: Output = process.stdout,
): { email: string; role: string } | undefined {
  const args = parseCommandLine({ name, help, options: { email: { type: 'string' }, role: { type: 'string' } } }, argv, stdout);
  if (!args) return undefined;
  const email = args.values.email === undefined ? undefined : normalizeEmail(args.values.email);
  const role = args.values.role?.trim();
  if (!email) throw new CliError('--email is required; see --help');
  if (!role) throw new CliError('--role is required; see --help');
  return { email, role };
}
