import path from 'node:path';
import { writeNewKeyPair } from '../src/tokens/keys';
import { lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';

const HELP = `
Usage: npm run keys:generate
   or: tsx scripts/keys-generate.ts

Writes a new RSA key pair into KEYS_DIR (default ./keys): <stamp>-<kid>.key.pem (mode 0600)
and <stamp>-<kid>.pub.pem. Existing keys are never overwritten.

The running server loads keys at start-up: restart it to sign with the new key. Every key
in the folder stays published in /.well-known/jwks.json until it is retired (npm run keys:retire).

Options:
  -h, --help   print this help
`;

/** `keys:generate`: the command line's arguments in, the exit code out. */
export function main(argv: string[], io: ScriptIo): Promise<number> {
  return runCommand('keys:generate', io, () => generate(argv, io));
}

async function generate(argv: string[], io: ScriptIo): Promise<void> {
  const args = parseCommandLine({ name: 'keys:generate', help: HELP, options: {} }, argv, io.stdout);
  if (!args) return;

  const config = loadScriptConfig(io.env);
  const print = lineWriter(io.stdout);
  const { kid, privateFile, publicFile } = await writeNewKeyPair(config.keysDir);
  print(`generated a new signing key in ${path.resolve(config.keysDir)}`);
  print(`  kid          ${kid}`);
  print(`  private key  ${privateFile}`);
  print(`  public key   ${publicFile}`);
  print('Restart the server to sign with it: keys are loaded at start-up and the newest one signs.');
  print(
    'Older keys stay published in the JWKS until you retire them with `npm run keys:retire -- --kid <kid>` (wait at least ACCESS_TOKEN_TTL).',
  );
}

if (require.main === module) runMain(main);
