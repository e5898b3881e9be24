import 'dotenv/config';
import { migrateDown, migrateToLatest, migrationStatus } from '../src/db/migrator';
import { CliError, loadScriptConfig, parseCommandLine, runScript, withDatabase } from './cli';

const HELP = `
Usage: npm run migrate            (apply every pending migration)
       npm run migrate:down       (undo the newest applied migration)
       npm run migrate:status     (list migrations and when each was applied)
   or: tsx scripts/migrate.ts up|down|status

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

runScript('migrate', async () => {
  const args = parseCommandLine({ name: 'migrate', help: HELP, options: {}, maxPositionals: 1 });
  if (!args) return;
  const command = args.positionals[0];
  if (!isCommand(command)) {
    throw new CliError(command === undefined ? 'say up, down or status; see --help' : `unknown command "${command}": say up, down or status`);
  }

  const config = loadScriptConfig();
  console.log(`migrate ${command}: ${target(config.databaseUrl, config.dataDir)}`);
  await withDatabase(config, async ({ db }) => {
    if (command === 'up') {
      const applied = await migrateToLatest(db);
      if (applied.length === 0) console.log('nothing to migrate: the database is up to date');
      for (const name of applied) console.log(`applied ${name}`);
    } else if (command === 'down') {
      const reverted = await migrateDown(db);
      if (reverted.length === 0) console.log('nothing to revert: no migration is applied');
      for (const name of reverted) console.log(`reverted ${name}`);
    } else {
      const migrations = await migrationStatus(db);
      const width = Math.max('migration'.length, ...migrations.map((m) => m.name.length));
      console.log(`${'migration'.padEnd(width)}  applied at`);
      for (const migration of migrations) {
        console.log(`${migration.name.padEnd(width)}  ${migration.executedAt ? migration.executedAt.toISOString() : 'pending'}`);
      }
      const pending = migrations.filter((m) => !m.executedAt).length;
      console.log(pending === 0 ? 'up to date' : `${pending} pending: run \`npm run migrate\``);
    }
  });
});
