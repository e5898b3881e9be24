import 'dotenv/config';
import { recordEvent } from '../src/audit/audit.repository';
import { CliError, loadScriptConfig, parseEmailAndRole, runScript, withDatabase } from './cli';

const HELP = `
Usage: npm run user:grant -- --email <email> --role <role>
   or: tsx scripts/user-grant.ts --email <email> --role <role>

Gives an existing user a role (e.g. admin) and records a user.roles_changed audit event.
Granting a role the user already has changes nothing and succeeds.
Works on DATABASE_URL when it is set, else on the embedded database under DATA_DIR.

Options:
  --email <email>  the user's email (compared trimmed and lower-cased)
  --role <role>    a role that exists in the database: user, admin
  -h, --help       print this help
`;

runScript('user:grant', async () => {
  const parsed = parseEmailAndRole('user:grant', HELP);
  if (!parsed) return;
  const { email, role } = parsed;

  const config = loadScriptConfig();
  const outcome = await withDatabase(config, ({ db }) =>
    db.transaction().execute(async (trx) => {
      const user = await trx.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst();
      if (!user) throw new CliError(`no user with email ${email}`);
      const roles = await trx.selectFrom('roles').select('name').orderBy('name').execute();
      if (!roles.some((r) => r.name === role)) {
        throw new CliError(`no role named "${role}"; roles are: ${roles.map((r) => r.name).join(', ')}`);
      }

      const at = new Date();
      // ON CONFLICT rather than a prior SELECT: two grants at once still insert one row and one event.
      const inserted = await trx
        .insertInto('user_roles')
        .values({ user_id: user.id, role, created_at: at })
        .onConflict((oc) => oc.columns(['user_id', 'role']).doNothing())
        .returning('role')
        .executeTakeFirst();
      if (!inserted) return 'unchanged' as const;

      await trx.updateTable('users').set({ updated_at: at }).where('id', '=', user.id).execute();
      // Same transaction as the insert: the trail never tells of a grant that was rolled back.
      await recordEvent(trx, {
        type: 'user.roles_changed',
        userId: user.id,
        context: { ip: null, userAgent: null, requestId: null },
        data: { added: [role], removed: [], by: 'cli' },
        at,
      });
      return 'granted' as const;
    }),
  );

  console.log(outcome === 'granted' ? `granted role ${role} to ${email}` : `${email} already has role ${role}: nothing to do`);
});
