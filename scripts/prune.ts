import { countPrunable, DEFAULT_PRUNE_BATCH_SIZE, prune, pruneCutoffs, type PruneCounts } from '../src/maintenance/prune';
import { CliError, lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo, withDatabase } from './cli';

const MAX_BATCH_SIZE = 100_000;

const HELP = `
Usage: npm run prune [-- [--dry-run] [--batch-size <n>]]

Deletes what Gatehouse no longer needs:
  refresh_tokens  tokens past their expiry
  sessions        sessions past their absolute end (SESSION_MAX_AGE), or revoked more than
                  REFRESH_TOKEN_TTL seconds ago (with their tokens)
  audit_events    events older than AUDIT_RETENTION_DAYS days (default 90)
  login_failures  failed-login counters whose last failure and lock are both older than
                  LOCKOUT_DURATION seconds
  one_time_tokens password-reset and email-verification tokens past their expiry
  mail_outbox     messages sent, or failed for good, more than a day ago (the hourly cap
                  RESET_MAX_PER_HOUR counts only the last hour; unsent ones are kept)
Live sessions and their unexpired refresh tokens are left alone, including a rotated token
that has not expired yet (reuse detection needs it).

Rows are deleted in batches, each its own short statement, so the tables are never locked
for long and the service can keep running; run it from cron, e.g. hourly or daily.
Works on DATABASE_URL when it is set, else on the embedded database under DATA_DIR.

Options:
  --dry-run         count what would be deleted; delete nothing
  --batch-size <n>  rows per DELETE statement (default ${DEFAULT_PRUNE_BATCH_SIZE}, at most ${MAX_BATCH_SIZE})
  -h, --help        print this help
`;

function parseBatchSize(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PRUNE_BATCH_SIZE;
  const size = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(size >= 1 && size <= MAX_BATCH_SIZE))
    throw new CliError(`--batch-size must be a whole number from 1 to ${MAX_BATCH_SIZE} (got "${value}")`);
  return size;
}

/** `prune [--dry-run] [--batch-size <n>]`: the command line's arguments in, the exit code out. */
export function main(argv: string[], io: ScriptIo): Promise<number> {
  return runCommand('prune', io, () => pruneCommand(argv, io));
}

async function pruneCommand(argv: string[], io: ScriptIo): Promise<void> {
  const args = parseCommandLine(
    {
      name: 'prune',
      help: HELP,
      options: { 'dry-run': { type: 'boolean' }, 'batch-size': { type: 'string' } },
    },
    argv,
    io.stdout,
  );
  if (!args) return;
  const dryRun = args.values['dry-run'] === true;
  const batchSize = parseBatchSize(args.values['batch-size']);

  const config = loadScriptConfig(io.env);
  const print = lineWriter(io.stdout);
  const options = {
    now: new Date(),
    refreshTokenTtl: config.refreshTokenTtl,
    auditRetentionDays: config.auditRetentionDays,
    lockoutDuration: config.lockoutDuration,
    batchSize,
  };
  const { now, revokedBefore, auditBefore } = pruneCutoffs(options);
  print(`${dryRun ? 'dry run: counting' : 'deleting'} refresh tokens and sessions that expired before ${now.toISOString()},`);
  print(`sessions revoked before ${revokedBefore.toISOString()} (REFRESH_TOKEN_TTL ${config.refreshTokenTtl} s),`);
  print(`audit events before ${auditBefore.toISOString()} (AUDIT_RETENTION_DAYS ${config.auditRetentionDays}),`);
  print('reset and verification tokens past their expiry, and mail sent or failed more than a day ago');

  const counts = await withDatabase(config, io, ({ db }) => (dryRun ? countPrunable(db, options) : prune(db, options)));

  const rows: Array<[string, keyof PruneCounts]> = [
    ['refresh_tokens', 'refreshTokens'],
    ['sessions', 'sessions'],
    ['audit_events', 'auditEvents'],
    ['login_failures', 'loginFailures'],
    ['one_time_tokens', 'oneTimeTokens'],
    ['mail_outbox', 'mailOutbox'],
  ];
  print(`${'table'.padEnd(15)}  ${dryRun ? 'would delete' : 'deleted'}`);
  for (const [table, key] of rows) print(`${table.padEnd(15)}  ${counts[key]}`);
  if (dryRun) print('dry run: nothing was deleted');
}

if (require.main === module) runMain(main);
