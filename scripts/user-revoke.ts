import { runMain, type ScriptIo } from './cli';
import { runRoleCommand } from './user-role';

const HELP = `
Usage: npm run user:revoke -- --email <email> --role <role>

Takes a role away from an existing user and records a user.roles_changed audit event.
Gatehouse's own routes see the change at the user's next request; access tokens already
issued keep carrying the role for other services until they expire (ACCESS_TOKEN_TTL).
Revoking a role the user does not have changes nothing and succeeds.
Refuses to take admin from the last active admin.
Works on DATABASE_URL when it is set, else on the embedded database under DATA_DIR.

Options:
  --email <email>  the user's email (compared trimmed and lower-cased)
  --role <role>    a role that exists in the database: user, admin
  -h, --help       print this help
`;

/** `user:revoke --email <email> --role <role>`: the command line's arguments in, the exit code out. */
export function main(argv: string[], io: ScriptIo): Promise<number> {
  return runRoleCommand({ name: 'user:revoke', help: HELP }, argv, io);
}

if (require.main === module) runMain(main);
