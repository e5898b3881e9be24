import { createAdminService } from '../src/admin/admin.service';
import { systemClock } from '../src/clock';
import { AppError } from '../src/http/problem';
import { ADMIN_ROLE } from '../src/roles/roles.repository';
import { CliError, lineWriter, loadScriptConfig, parseEmailAndRole, runCommand, type ScriptIo, withDatabase } from './cli';

/** The audit trail's `by` and context for a change made from the command line. */
const CLI_ACTOR = 'cli';
const CLI_CONTEXT = { ip: null, userAgent: null, requestId: null };

export interface RoleCommand {
  name: 'user:grant' | 'user:revoke';
  help: string;
}

/**
 * `user:grant` and `user:revoke`: one role added or taken, through the admin service the admin
 * API uses, so the rules (unknown roles, the last active admin), the locks and the audit
 * event are the same whichever way a role changes.
 */
export function runRoleCommand(command: RoleCommand, argv: string[], io: ScriptIo): Promise<number> {
  return runCommand(command.name, io, async () => {
    const parsed = parseEmailAndRole(command.name, command.help, argv, io.stdout);
    if (!parsed) return;
    const { email, role } = parsed;
    const granting = command.name === 'user:grant';

    const config = loadScriptConfig(io.env);
    const { changed } = await withDatabase(config, io, async ({ db }) => {
      const admin = createAdminService({ db, clock: systemClock });
      try {
        return granting
          ? await admin.grantRole(CLI_ACTOR, email, role, CLI_CONTEXT)
          : await admin.revokeRole(CLI_ACTOR, email, role, CLI_CONTEXT);
      } catch (error) {
        throw toCliError(error, email, role);
      }
    });

    const say = lineWriter(io.stdout);
    if (granting) say(changed ? `granted role ${role} to ${email}` : `${email} already has role ${role}: nothing to do`);
    else say(changed ? `revoked role ${role} from ${email}` : `${email} does not have role ${role}: nothing to do`);
  });
}

/** The service's refusals, as one line an operator can act on. */
function toCliError(error: unknown, email: string, role: string): unknown {
  if (!(error instanceof AppError)) return error;
  switch (error.code) {
    case 'NOT_FOUND':
      return new CliError(`no user with email ${email}`);
    case 'VALIDATION_FAILED':
      return new CliError(`no role named "${role}"; ${error.errors?.[0]?.message.replace(/^is not a role; /, '') ?? ''}`);
    case 'LAST_ADMIN':
      return new CliError(`refusing to revoke ${ADMIN_ROLE} from ${email}: they are the last active admin; grant it to someone else first`);
    default:
      return error;
  }
}
