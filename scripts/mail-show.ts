import { latestMail } from '../src/mail/outbox.repository';
import { CliError, lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo, withDatabase } from './cli';

const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 1000;

const HELP = `
Usage: npm run mail:show [-- [--limit <n>]]

Prints the latest messages of the mail outbox, newest first: when each was queued, its kind,
recipient, state (pending, sent or failed, with the attempts and the last error) and its link.

For development, where MAIL_DELIVERY=outbox keeps every message here instead of sending it.
It prints the links ON PURPOSE: each holds a live password-reset or verification token, so
never run it where its output is logged or shared. A link is cleared once its message has been
sent or has failed for good, and shows as "-".

Works on DATABASE_URL when it is set, else on the embedded database under DATA_DIR (which a
running server holds: stop it first, or use DATABASE_URL).

Options:
  --limit <n>  how many messages (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT})
  -h, --help   print this help
`;

function parseLimit(value: string | undefined): number {
  if (value === undefined) return DEFAULT_LIMIT;
  const limit = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(limit >= 1 && limit <= MAX_LIMIT)) throw new CliError(`--limit must be a whole number from 1 to ${MAX_LIMIT} (got "${value}")`);
  return limit;
}

/** `mail:show [--limit <n>]`: the command line's arguments in, the exit code out. */
export function main(argv: string[], io: ScriptIo): Promise<number> {
  return runCommand('mail:show', io, () => mailShowCommand(argv, io));
}

async function mailShowCommand(argv: string[], io: ScriptIo): Promise<void> {
  const args = parseCommandLine({ name: 'mail:show', help: HELP, options: { limit: { type: 'string' } } }, argv, io.stdout);
  if (!args) return;
  const limit = parseLimit(args.values.limit);
  const config = loadScriptConfig(io.env);
  const print = lineWriter(io.stdout);

  const rows = await withDatabase(config, io, ({ db }) => latestMail(db, limit));
  if (rows.length === 0) {
    print('the outbox is empty');
    return;
  }
  print(`${rows.length} latest message(s), newest first (MAIL_DELIVERY=${config.mailDelivery})`);
  for (const row of rows) {
    const state = row.sent_at
      ? `sent ${new Date(row.sent_at).toISOString()}`
      : row.failed_at
        ? `failed ${new Date(row.failed_at).toISOString()} (${row.last_error ?? 'no reason'})`
        : `pending, ${row.attempts} attempt(s)${row.last_error ? `, last: ${row.last_error}` : ''}`;
    print('');
    print(`${new Date(row.created_at).toISOString()}  ${row.kind}  to ${row.recipient}`);
    print(`  id       ${row.id}`);
    print(`  state    ${state}`);
    print(`  expires  ${new Date(row.expires_at).toISOString()}`);
    print(`  link     ${row.link ?? '-'}`);
  }
}

if (require.main === module) runMain(main);
