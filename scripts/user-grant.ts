import { runMain, type ScriptIo } from './cli';
import { runRoleCommand } from './user-role';

const HELP = `
Usage: npm run user:grant -- --email <email> --role <role>

Gives an existing user a role (e.g. admin) and records a user.roles_changed audit event.
Granting a role the user already has changes nothing and succeeds.
Works on DATABASE_URL when it is set, else on the embedded database under DATA_DIR.

Options:
  --email <email>  the user's email (compared trimmed and lower-cased)
  --role <role>    a role that exists in the database: user, admin
  -h, --help       print this help
`;

/** `user:grant --email <email> --role <role>`: the command line's arguments in, the exit code out. */
export function main(argv: string[], io: ScriptIo): Promise<number> {
  return runRoleCommand({ name: 'user:grant', help: HELP }, argv, io);
}

if (require.main === module) runMain(main);
