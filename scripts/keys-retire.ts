import { promises as fs } from 'node:fs';
import path from 'node:path';
import { buildKeyStore, filesOfKid, readKeyFiles } from '../src/tokens/keys';
import { CliError, lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';

/** Below KEYS_DIR; the server reads only the folder's top level, so keys here are not published. */
const RETIRED_DIR = 'retired';

const HELP = `
Usage: npm run keys:retire -- --kid <kid>
   or: tsx scripts/keys-retire.ts --kid <kid>

Stops publishing a key: moves its .key.pem and .pub.pem files from KEYS_DIR into
KEYS_DIR/retired/. Tokens it signed stop verifying once the servers are restarted, so
retire a key only after it has not signed for at least ACCESS_TOKEN_TTL (plus the JWKS
cache time of the services that verify tokens). To undo, move the files back and restart.

Refuses to retire the key that signs (generate a newer one first: npm run keys:generate),
and a kid that KEYS_DIR does not hold. See the kids with: npm run keys:list

Options:
  --kid <kid>  the key's kid, as keys:list prints it
  -h, --help   print this help
`;

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/** `keys:retire --kid <kid>`: the command line's arguments in, the exit code out. */
export function main(argv: string[], io: ScriptIo): Promise<number> {
  return runCommand('keys:retire', io, () => retire(argv, io));
}

async function retire(argv: string[], io: ScriptIo): Promise<void> {
  const args = parseCommandLine({ name: 'keys:retire', help: HELP, options: { kid: { type: 'string' } } }, argv, io.stdout);
  if (!args) return;
  const kid = args.values.kid?.trim();
  if (!kid) throw new CliError('--kid is required; see --help (npm run keys:list shows the kids)');

  const config = loadScriptConfig(io.env);
  const keysDir = path.resolve(config.keysDir);
  const files = await readKeyFiles(keysDir);
  if (files.length === 0) throw new CliError(`no keys in KEYS_DIR (${keysDir})`);
  // The store the server would build: it says which key signs.
  const store = buildKeyStore(files, config.jwtPrivateKey);
  if (kid === store.signing.kid) {
    throw new CliError(
      `refusing to retire ${kid}: it is the signing key (${store.signing.source}); generate a newer key and restart first`,
    );
  }
  const names = filesOfKid(files, kid);
  if (names.length === 0) throw new CliError(`no key with kid ${kid} in KEYS_DIR (${keysDir}); see npm run keys:list`);

  const retiredDir = path.join(keysDir, RETIRED_DIR);
  await fs.mkdir(retiredDir, { recursive: true });
  // rename() would silently replace a file of the same name: check every target before moving any.
  for (const name of names) {
    if (await exists(path.join(retiredDir, name))) throw new CliError(`${path.join(retiredDir, name)} already exists; nothing was moved`);
  }
  for (const name of names) await fs.rename(path.join(keysDir, name), path.join(retiredDir, name));

  const print = lineWriter(io.stdout);
  print(`retired key ${kid}: moved to ${retiredDir}`);
  for (const name of names) print(`  ${name}`);
  print('Restart the server (every instance) to stop publishing it: keys are read at start-up.');
  print(`To undo, move the files back into ${keysDir} and restart.`);
}

if (require.main === module) runMain(main);
