import path from 'node:path';
import { addSeconds, type Clock, systemClock } from '../src/clock';
import {
  ACTIVATION_MARGIN_SECONDS,
  defaultActivationDelaySeconds,
  JWKS_MAX_AGE_SECONDS,
  PRIVATE_SUFFIX,
  readKeyFiles,
  writeNewKeyPair,
} from '../src/tokens/keys';
import { CliError, formatInstant, lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';

const HELP = `
Usage: npm run keys:generate [-- --activate-in SECONDS | --now]

Writes a new RSA key pair into KEYS_DIR (default ./keys): <stamp>-<kid>.key.pem (mode 0600)
and <stamp>-<kid>.pub.pem; with an activation time, the private key's name ends in
.from-<stamp>.key.pem. Existing keys are never overwritten; each file appears whole.

Every running instance re-reads KEYS_DIR every KEYS_RELOAD_INTERVAL seconds (and on SIGHUP):
the new key is published in /.well-known/jwks.json at once, and signs from its activation
time on. The default activation delay, JWKS max-age (${JWKS_MAX_AGE_SECONDS} s) + KEYS_RELOAD_INTERVAL +
a minute, lets every instance and every verifier's cached JWKS learn the key before any token
carries it: a rotation needs no restart and refuses no token. The first key of an empty
KEYS_DIR signs at once.

Then retire the old key once no live token can carry it: npm run keys:retire -- --kid <kid>
(it says when that is). See the keys and their states: npm run keys:list

Options:
  --activate-in SECONDS  sign from SECONDS from now (default: the delay above)
  --now                  sign at once: for a single instance (others may not know the key yet)
  -h, --help             print this help
`;

/** `keys:generate`: the command line's arguments in, the exit code out; `clock` is the time it acts at (tests move it). */
export function main(argv: string[], io: ScriptIo, clock: Clock = systemClock): Promise<number> {
  return runCommand('keys:generate', io, () => generate(argv, io, clock));
}

function parseDelay(text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new CliError(`--activate-in takes whole seconds (0 or more), not "${text}"; see --help`);
  return Number(text.trim());
}

async function generate(argv: string[], io: ScriptIo, clock: Clock): Promise<void> {
  const args = parseCommandLine(
    { name: 'keys:generate', help: HELP, options: { 'activate-in': { type: 'string' }, now: { type: 'boolean' } } },
    argv,
    io.stdout,
  );
  if (!args) return;
  const { 'activate-in': activateIn, now: atOnce } = args.values;
  if (activateIn !== undefined && atOnce) throw new CliError('--activate-in and --now exclude each other; see --help');

  const config = loadScriptConfig(io.env);
  const print = lineWriter(io.stdout);
  const keysDir = path.resolve(config.keysDir);
  const safeDelay = defaultActivationDelaySeconds(config.keysReloadInterval);
  // Nothing signs yet: a delay would only leave the service without a key it can use.
  const first = config.jwtPrivateKey === undefined && !(await readKeyFiles(keysDir)).some((f) => f.name.endsWith(PRIVATE_SUFFIX));
  const delay = atOnce || (first && activateIn === undefined) ? 0 : activateIn === undefined ? safeDelay : parseDelay(activateIn);

  const now = clock();
  const { kid, privateFile, publicFile, activatesAt } = await writeNewKeyPair(keysDir, now, addSeconds(now, delay));
  print(`generated a new signing key in ${keysDir}`);
  print(`  kid          ${kid}`);
  print(`  private key  ${privateFile}`);
  print(`  public key   ${publicFile}`);
  print(`  signs from   ${formatInstant(activatesAt)}${delay === 0 ? ' (at once)' : ` (in ${delay} s)`}`);
  if (config.jwtPrivateKey !== undefined) {
    print('JWT_PRIVATE_KEY is set and signs instead of any file: the new key is published only until it is unset.');
  } else if (delay === 0 && !first) {
    print(
      `Signs at once: an instance that has not re-read KEYS_DIR yet (up to ${config.keysReloadInterval} s, or SIGHUP it) signs with the old key, ` +
        `and a verifier may meet the new kid before its cached JWKS has it.`,
    );
  } else if (delay > 0 && delay < safeDelay) {
    print(
      `Warning: ${delay} s is less than JWKS max-age + KEYS_RELOAD_INTERVAL (+ ${ACTIVATION_MARGIN_SECONDS} s margin) = ${safeDelay} s: ` +
        'a verifier whose cached JWKS predates the key may refuse its first tokens until it refetches.',
    );
  }
  print('Every instance publishes it within KEYS_RELOAD_INTERVAL (or at once on SIGHUP); no restart is needed.');
  print('Then retire the old key with `npm run keys:retire -- --kid <kid>` once no live token can carry it (it tells you when).');
}

if (require.main === module) runMain(main);
