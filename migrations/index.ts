import type { Migration } from 'kysely';
import * as initial from './20261123T1300_initial';
import * as sessionsRevokedAtIndex from './20261123T1500_sessions_revoked_at_index';
import * as loginFailures from './20261129T1900_login_failures';
import * as rolePermissionsRevision from './20261129T2200_role_permissions_revision';
import * as accountRecovery from './20261130T0000_account_recovery';
import * as refreshTokensSuccessorIndex from './20261130T0100_refresh_tokens_successor_index';

/**
 * Every migration, by name. Names sort by time; Kysely applies them in that order.
 * Imported statically rather than read from disk so the compiled service carries them.
 */
export const migrations: Record<string, Migration> = {
  '20261123T1300_initial': initial,
  '20261123T1500_sessions_revoked_at_index': sessionsRevokedAtIndex,
  '20261129T1900_login_failures': loginFailures,
  '20261129T2200_role_permissions_revision': rolePermissionsRevision,
  '20261130T0000_account_recovery': accountRecovery,
  '20261130T0100_refresh_tokens_successor_index': refreshTokensSuccessorIndex,
};
