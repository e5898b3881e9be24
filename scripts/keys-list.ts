import path from 'node:path';
import { type Clock, secondsUntil, systemClock } from '../src/clock';
import { buildKeyStore, readKeyFiles } from '../src/tokens/keys';
import { CliError, formatInstant, lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';

const HELP = `
Usage: npm run keys:list

Lists the keys the running instances hold (each re-reads KEYS_DIR every KEYS_RELOAD_INTERVAL
seconds and on SIGHUP), exactly as they read them: every key in KEYS_DIR (default ./keys) is
published in /.well-known/jwks.json; the newest private key whose activation time has passed
signs, unless JWT_PRIVATE_KEY is set, which then signs instead.

Columns: kid (the JWK thumbprint, as in the tokens' header), created (from the file name
that keys:generate writes; "-" when unknown), activates (from when a private key may sign;
"-" for a public key alone and for JWT_PRIVATE_KEY), source (the file, or JWT_PRIVATE_KEY),
and state: "signing" (the key that signs now), "pending" (published, signs from its
activation time), or "published" (verifies the tokens it signed; signs no more). Keys under
KEYS_DIR/retired are not published and not listed.

Options:
  -h, --help   print this help
`;

/** The time to the second, as in the file names' stamps; "-" when unknown. */
function formatTime(date: Date | undefined): string {
  return date ? formatInstant(date) : '-';
}

/** `keys:list`: the command line's arguments in, the exit code out; `clock` is the time it acts at (tests move it). */
export function main(argv: string[], io: ScriptIo, clock: Clock = systemClock): Promise<number> {
  return runCommand('keys:list', io, () => list(argv, io, clock));
}

async function list(argv: string[], io: ScriptIo, clock: Clock): Promise<void> {
  const args = parseCommandLine({ name: 'keys:list', help: HELP, options: {} }, argv, io.stdout);
  if (!args) return;

  const config = loadScriptConfig(io.env);
  const print = lineWriter(io.stdout);
  const keysDir = path.resolve(config.keysDir);
  const files = await readKeyFiles(keysDir);
  if (files.length === 0 && config.jwtPrivateKey === undefined) {
    throw new CliError(`no keys in KEYS_DIR (${keysDir}): run \`npm run keys:generate\` or set JWT_PRIVATE_KEY`);
  }
  const now = clock();
  const store = buildKeyStore(files, config.jwtPrivateKey, now);

  // File names start with their UTC stamp, so name order is age order; JWT_PRIVATE_KEY sorts after them.
  const keys = [...store.published.values()].sort((a, b) => a.source.localeCompare(b.source));
  const rows = keys.map((key) => [
    key.kid,
    formatTime(key.createdAt),
    formatTime(store.override ? undefined : key.activatesAt),
    key.source,
    store.stateAt(key.kid, now)!,
  ]);
  const header = ['kid', 'created', 'activates', 'source', 'state'];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd();

  print(`keys in ${keysDir} at ${formatTime(now)}${config.jwtPrivateKey === undefined ? '' : ' (JWT_PRIVATE_KEY signs)'}:`);
  print(line(header));
  for (const row of rows) print(line(row));
  for (const key of keys.filter((k) => store.stateAt(k.kid, now) === 'pending')) {
    print(`${key.kid} is pending: it signs from ${formatTime(key.activatesAt)} (in ${secondsUntil(key.activatesAt!, now)} s).`);
  }
  print(
    `${rows.length} published; every instance re-reads KEYS_DIR every ${config.keysReloadInterval} s (KEYS_RELOAD_INTERVAL) and on SIGHUP.`,
  );
}

if (require.main === module) runMain(main);
