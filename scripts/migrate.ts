import { migrateDown, migrateToLatest, migrationStatus } from '../src/db/migrator';
import { CliError, lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo, withDatabase } from './cli';

const HELP = `
Usage: npm run migrate            (apply every pending migration)
       npm run migrate:down       (undo the newest applied migration)
       npm run migrate:status     (list migrations and when each was applied)

Works on DATABASE_URL when it is set, else on the embedded database under DATA_DIR
(default ./data). A .env file in the working directory is read.

Options:
  -h, --help   print this help
`;

const COMMANDS = ['up', 'down', 'status'] as const;
type Command = (typeof COMMANDS)[number];

function isCommand(value: string | undefined): value is Command {
  return COMMANDS.some((command) => command === value);
}

/** Where the migrations run, for the first line of output: never the password in the URL. */
function target(databaseUrl: string | undefined, dataDir: string): string {
  if (!databaseUrl) return `embedded database in ${dataDir}`;
  const url = new URL(databaseUrl);
  return `PostgreSQL ${url.hostname}${url.port ? `:${url.port}` : ''}${url.pathname}`;
}

/** `migrate up|down|status`: the command line's arguments in, the exit code out. */
export function main(argv: string[], io: ScriptIo): Promise<number> {
  return runCommand('migrate', io, () => migrate(argv, io));
}

async function migrate(argv: string[], io: ScriptIo): Promise<void> {
  const args = parseCommandLine({ name: 'migrate', help: HELP, options: {}, maxPositionals: 1 }, argv, io.stdout);
  if (!args) return;
  const command = args.positionals[0];
  if (!isCommand(command)) {
    throw new CliError(
      command === undefined ? 'say up, down or status; see --help' : `unknown command "${command}": say up, down or status`,
    );
  }

  const config = loadScriptConfig(io.env);
  const print = lineWriter(io.stdout);
  print(`migrate ${command}: ${target(config.databaseUrl, config.dataDir)}`);
  await withDatabase(config, io, async ({ db }) => {
    if (command === 'up') {
      const applied = await migrateToLatest(db);
      if (applied.length === 0) print('nothing to migrate: the database is up to date');
      for (const name of applied) print(`applied ${name}`);
    } else if (command === 'down') {
      const reverted = await migrateDown(db);
      if (reverted.length === 0) print('nothing to revert: no migration is applied');
      for (const name of reverted) print(`reverted ${name}`);
    } else {
      const migrations = await migrationStatus(db);
      const width = Math.max('migration'.length, ...migrations.map((m) => m.name.length));
      print(`${'migration'.padEnd(width)}  applied at`);
      for (const migration of migrations) {
        print(`${migration.name.padEnd(width)}  ${migration.executedAt ? migration.executedAt.toISOString() : 'pending'}`);
      }
      const pending = migrations.filter((m) => !m.executedAt).length;
      print(pending === 0 ? 'up to date' : `${pending} pending: run \`npm run migrate\``);
    }
  });
}

if (require.main === module) runMain(main);
