import 'dotenv/config';
import { ADMIN_ROLE, countActiveAdmins, listRoleNames, lockAdminGrants } from '../src/roles/roles.repository';
import { recordEvent } from '../src/audit/audit.repository';
import { CliError, loadScriptConfig, parseEmailAndRole, runScript, withDatabase } from './cli';

const HELP = `
Usage: npm run user:revoke -- --email <email> --role <role>
   or: tsx scripts/user-revoke.ts --email <email> --role <role>

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

runScript('user:revoke', async () => {
  const parsed = parseEmailAndRole('user:revoke', HELP);
  if (!parsed) return;
  const { email, role } = parsed;

  const config = loadScriptConfig();
  const outcome = await withDatabase(config, ({ db }) =>
    db.transaction().execute(async (trx) => {
      const user = await trx.selectFrom('users').select(['id', 'is_active']).where('email', '=', email).executeTakeFirst();
      if (!user) throw new CliError(`no user with email ${email}`);
      const roles = await listRoleNames(trx);
      if (!roles.includes(role)) throw new CliError(`no role named "${role}"; roles are: ${roles.join(', ')}`);

      // Before the delete, as the admin API does: two removals at once take turns, so they
      // cannot both see another admin left and together remove the last one.
      if (role === ADMIN_ROLE) await lockAdminGrants(trx);
      const deleted = await trx
        .deleteFrom('user_roles')
        .where('user_id', '=', user.id)
        .where('role', '=', role)
        .returning('role')
        .executeTakeFirst();
      if (!deleted) return 'unchanged' as const;
      // Throwing rolls the delete back. An inactive admin's removal leaves the count as it was.
      if (role === ADMIN_ROLE && user.is_active && (await countActiveAdmins(trx)) === 0) {
        throw new CliError(`refusing to revoke ${ADMIN_ROLE} from ${email}: they are the last active admin; grant it to someone else first`);
      }

      const at = new Date();
      await trx.updateTable('users').set({ updated_at: at }).where('id', '=', user.id).execute();
      // Same transaction as the delete: the trail never tells of a revocation that was rolled back.
      await recordEvent(trx, {
        type: 'user.roles_changed',
        userId: user.id,
        context: { ip: null, userAgent: null, requestId: null },
        data: { added: [], removed: [role], by: 'cli' },
        at,
      });
      return 'revoked' as const;
    }),
  );

  console.log(outcome === 'revoked' ? `revoked role ${role} from ${email}` : `${email} does not have role ${role}: nothing to do`);
});
