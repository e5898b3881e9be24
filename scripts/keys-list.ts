import path from 'node:path';
import { buildKeyStore, readKeyFiles } from '../src/tokens/keys';
import { CliError, lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';

const HELP = `
Usage: npm run keys:list
   or: tsx scripts/keys-list.ts

Lists the keys a server started now would hold, exactly as it reads them: every key in
KEYS_DIR (default ./keys) is published in /.well-known/jwks.json, and the newest private
key signs, unless JWT_PRIVATE_KEY is set, which then signs instead.

Columns: kid (the JWK thumbprint, as in the tokens' header), created (from the file name
that keys:generate writes; "-" when unknown), source (the file, or JWT_PRIVATE_KEY), and
"signing" next to the key that signs. Keys under KEYS_DIR/retired are not published and
not listed.

Options:
  -h, --help   print this help
`;

/** The ISO time without milliseconds, as in the file names' stamps. */
function formatCreated(date: Date | undefined): string {
  return date ? date.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
}

/** `keys:list`: the command line's arguments in, the exit code out. */
export function main(argv: string[], io: ScriptIo): Promise<number> {
  return runCommand('keys:list', io, () => list(argv, io));
}

async function list(argv: string[], io: ScriptIo): Promise<void> {
  const args = parseCommandLine({ name: 'keys:list', help: HELP, options: {} }, argv, io.stdout);
  if (!args) return;

  const config = loadScriptConfig(io.env);
  const print = lineWriter(io.stdout);
  const keysDir = path.resolve(config.keysDir);
  const files = await readKeyFiles(keysDir);
  if (files.length === 0 && config.jwtPrivateKey === undefined) {
    throw new CliError(`no keys in KEYS_DIR (${keysDir}): run \`npm run keys:generate\` or set JWT_PRIVATE_KEY`);
  }
  const store = buildKeyStore(files, config.jwtPrivateKey);

  // File names start with their UTC stamp, so name order is age order; JWT_PRIVATE_KEY sorts after them.
  const rows = [...store.published.values()]
    .sort((a, b) => a.source.localeCompare(b.source))
    .map((key) => [key.kid, formatCreated(key.createdAt), key.source, key.kid === store.signing.kid ? 'signing' : '']);
  const header = ['kid', 'created', 'source', ''];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd();

  print(`keys in ${keysDir}${config.jwtPrivateKey === undefined ? '' : ' (JWT_PRIVATE_KEY signs)'}:`);
  print(line(header));
  for (const row of rows) print(line(row));
  print(`${rows.length} published; the running server holds the keys it read at its start.`);
}

if (require.main === module) runMain(main);
