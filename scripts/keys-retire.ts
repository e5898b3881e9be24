import { promises as fs } from 'node:fs';
import path from 'node:path';
import { type Clock, secondsUntil, systemClock } from '../src/clock';
import { CLOCK_TOLERANCE_SECONDS } from '../src/tokens/claims';
import { ACTIVATION_MARGIN_SECONDS, buildKeyStore, filesOfKid, readKeyFiles, retirementOf } from '../src/tokens/keys';
import { CliError, formatInstant, lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';

/** Below KEYS_DIR; the server reads only the folder's top level, so keys here are not published. */
const RETIRED_DIR = 'retired';

const HELP = `
Usage: npm run keys:retire -- --kid <kid> [--force]

Stops publishing a key: moves its .key.pem and .pub.pem files from KEYS_DIR into
KEYS_DIR/retired/. Every instance stops publishing it within KEYS_RELOAD_INTERVAL seconds
(or at once on SIGHUP), and tokens it signed stop verifying there; no restart is needed.

It refuses while a token the key signed may still be live: until ACCESS_TOKEN_TTL seconds
(plus the ${CLOCK_TOLERANCE_SECONDS} s clock tolerance verifiers allow) after a newer key took over signing
on every instance, and it prints when that will be. --force retires it anyway: tokens it
signed are then refused before they expire (for a key that leaked, that is the point).

Always refuses the key that signs now (generate a newer one first: npm run keys:generate)
and a kid that KEYS_DIR does not hold. A pending key (not yet signing) may be retired at
once, unless it starts signing within KEYS_RELOAD_INTERVAL + ${ACTIVATION_MARGIN_SECONDS} s (an instance may sign
with it before it re-reads the folder; --force retires it anyway). See the kids and their states with: npm run keys:list
To undo, move the files back into KEYS_DIR.

Options:
  --kid <kid>  the key's kid, as keys:list prints it
  --force      retire it even though tokens it signed may still be live
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

/** `keys:retire --kid <kid>`: the command line's arguments in, the exit code out; `clock` is the time it acts at (tests move it). */
export function main(argv: string[], io: ScriptIo, clock: Clock = systemClock): Promise<number> {
  return runCommand('keys:retire', io, () => retire(argv, io, clock));
}

async function retire(argv: string[], io: ScriptIo, clock: Clock): Promise<void> {
  const args = parseCommandLine(
    { name: 'keys:retire', help: HELP, options: { kid: { type: 'string' }, force: { type: 'boolean' } } },
    argv,
    io.stdout,
  );
  if (!args) return;
  const kid = args.values.kid?.trim();
  if (!kid) throw new CliError('--kid is required; see --help (npm run keys:list shows the kids)');

  const config = loadScriptConfig(io.env);
  const keysDir = path.resolve(config.keysDir);
  const files = await readKeyFiles(keysDir);
  if (files.length === 0) throw new CliError(`no keys in KEYS_DIR (${keysDir})`);
  // The store the instances build: it says which key signs, and since when the others do not.
  const now = clock();
  const store = buildKeyStore(files, config.jwtPrivateKey, now);
  const names = filesOfKid(files, kid);
  if (names.length === 0) throw new CliError(`no key with kid ${kid} in KEYS_DIR (${keysDir}); see npm run keys:list`);
  const retirement = retirementOf(store, kid, now, {
    accessTokenTtl: config.accessTokenTtl,
    reloadInterval: config.keysReloadInterval,
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
  });
  const force = args.values.force === true;
  if (!retirement.ok && retirement.why === 'signing') {
    throw new CliError(
      `refusing to retire ${kid}: it is the signing key (${store.signingAt(now).source}); generate a newer key first (npm run keys:generate), wait until it signs, then retire this one`,
    );
  }
  if (!retirement.ok && retirement.why === 'too-soon' && !force) {
    const seconds = secondsUntil(retirement.safeAt, now);
    throw new CliError(
      `refusing to retire ${kid}: a token it signed may be live until ${formatInstant(retirement.safeAt)} (in ${seconds} s: ACCESS_TOKEN_TTL ${config.accessTokenTtl} s + ${CLOCK_TOLERANCE_SECONDS} s clock tolerance after a newer key took over); run it again then, or add --force`,
    );
  }
  if (!retirement.ok && retirement.why === 'activating' && !force) {
    throw new CliError(
      `refusing to retire ${kid}: it is pending but starts signing at ${formatInstant(retirement.activatesAt)}, sooner than every instance re-reads KEYS_DIR (KEYS_RELOAD_INTERVAL ${config.keysReloadInterval} s + ${ACTIVATION_MARGIN_SECONDS} s): one may sign with it before it sees the retirement, and those tokens would be refused; add --force if that is acceptable`,
    );
  }
  if (!retirement.ok && retirement.why === 'unknown-history' && !force) {
    throw new CliError(
      `refusing to retire ${kid}: KEYS_DIR does not tell when it last signed (no newer key file, or no creation stamp); add --force if no live token can carry it`,
    );
  }

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
  if (!retirement.ok) print('Forced: tokens it signed that have not expired yet will be refused.');
  else if (retirement.why === 'pending') print('It was pending: it never signed a token.');
  else if (retirement.safeSince) print(`No token it signed has been live since ${formatInstant(retirement.safeSince)}.`);
  print(
    `Every instance stops publishing it within ${config.keysReloadInterval} s (KEYS_RELOAD_INTERVAL), or at once on SIGHUP; no restart is needed.`,
  );
  print(`To undo, move the files back into ${keysDir}.`);
}

if (require.main === module) runMain(main);
