import { signRequest } from '../src/signature/signer';
import { CliError, lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';

const HELP = `
Usage: npm run -s sign -- METHOD PATH [BODY] [--client ID]

Prints the four signature headers for one request, as curl arguments (-H Name:value),
signed with a client secret from HMAC_CLIENTS (the environment or .env). Send exactly the
BODY that was signed, and the PATH (with its query) exactly as signed:

  BODY='{"email":"ada@example.com","password":"correct horse battery staple"}'
  curl -X POST http://localhost:3000/auth/login -H 'Content-Type: application/json' \\
    $(npm run -s sign -- POST /auth/login "$BODY") -d "$BODY"

Each run uses a new nonce and the current time: sign again for every request.

Options:
  --client ID  which client of HMAC_CLIENTS signs (default: the first one)
  -h, --help   print this help
`;

/** `sign METHOD PATH [BODY] [--client ID]`: the command line's arguments in, the exit code out. */
export function main(argv: string[], io: ScriptIo): Promise<number> {
  return runCommand('sign', io, () => sign(argv, io));
}

async function sign(argv: string[], io: ScriptIo): Promise<void> {
  const args = parseCommandLine({ name: 'sign', help: HELP, options: { client: { type: 'string' } }, maxPositionals: 3 }, argv, io.stdout);
  if (!args) return;
  const [method, path, body] = args.positionals;
  if (!method || !path) throw new CliError('METHOD and PATH are required; see --help');
  if (!path.startsWith('/')) throw new CliError(`PATH must start with "/" (got "${path}")`);

  const { hmacClients } = loadScriptConfig(io.env);
  const clientId = args.values.client ?? hmacClients.keys().next().value;
  if (clientId === undefined) throw new CliError('HMAC_CLIENTS is empty: set it to clientId:secret (the secret at least 32 characters)');
  const secret = hmacClients.get(clientId);
  if (secret === undefined) throw new CliError(`client "${clientId}" is not in HMAC_CLIENTS`);

  const headers = signRequest({ clientId, secret, method, path, body });
  // Name:value without a space: the values never contain one, so the shell splits them safely.
  const print = lineWriter(io.stdout);
  for (const [name, value] of Object.entries(headers)) print(`-H ${name}:${value}`);
}

if (require.main === module) runMain(main);
