import 'dotenv/config';
import path from 'node:path';
import { writeNewKeyPair } from '../src/tokens/keys';
import { loadScriptConfig, parseCommandLine, runScript } from './cli';

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

runScript('keys:generate', async () => {
  const args = parseCommandLine({ name: 'keys:generate', help: HELP, options: {} });
  if (!args) return;

  const config = loadScriptConfig();
  const { kid, privateFile, publicFile } = await writeNewKeyPair(config.keysDir);
  console.log(`generated a new signing key in ${path.resolve(config.keysDir)}`);
  console.log(`  kid          ${kid}`);
  console.log(`  private key  ${privateFile}`);
  console.log(`  public key   ${publicFile}`);
  console.log('Restart the server to sign with it: keys are loaded at start-up and the newest one signs.');
  console.log('Older keys stay published in the JWKS until you retire them with `npm run keys:retire -- --kid <kid>` (wait at least ACCESS_TOKEN_TTL).');
});
