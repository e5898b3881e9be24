import type { Kysely } from 'kysely';
import type { Database } from '../db/schema';

/**
 * Which permissions each role grants, kept in this process. The map is a handful of rows that
 * change only by a migration or an operator's hand, while every protected request needs it:
 * so it is read once and kept, and read again when the database's revision of it moved
 * (migration 20261129T2200: a trigger moves it on any change to roles or role_permissions).
 * Callers learn the current revision from the same query that loads the caller, so an edit
 * reaches every instance on its next request.
 */
export interface PermissionMap {
  /** The permissions `roles` grant together, sorted; `revision` is the database's, as just read. */
  permissionsOf(roles: readonly string[], revision: string): Promise<readonly string[]>;
}

interface Loaded {
  revision: string;
  byRole: ReadonlyMap<string, readonly string[]>;
  /** Unions already computed, by the roles' names joined: most callers hold one of a few sets. */
  unions: Map<string, readonly string[]>;
}

export function createPermissionMap(db: Kysely<Database>): PermissionMap {
  let loaded: Loaded | undefined;
  let loading: Promise<Loaded> | undefined;

  async function load(): Promise<Loaded> {
    // Revision and rows in one statement, so the map is never tagged with a revision newer than its rows.
    const rows = await db
      .selectFrom('role_permissions')
      .rightJoin('role_permissions_revision', (join) => join.onTrue())
      .select(['role_permissions.role', 'role_permissions.permission', 'role_permissions_revision.revision'])
      .execute();
    const byRole = new Map<string, string[]>();
    for (const { role, permission } of rows) {
      if (role === null || permission === null) continue;
      const permissions = byRole.get(role) ?? [];
      permissions.push(permission);
      byRole.set(role, permissions);
    }
    return { revision: String(rows[0]?.revision), byRole, unions: new Map() };
  }

  function unionOf(map: Loaded, roles: readonly string[]): readonly string[] {
    const key = roles.join('\n');
    let union = map.unions.get(key);
    if (!union) {
      union = Object.freeze([...new Set(roles.flatMap((role) => map.byRole.get(role) ?? []))].sort());
      map.unions.set(key, union);
    }
    return union;
  }

  return {
    async permissionsOf(roles, revision) {
      // One reload at a time, however many requests notice the change together; a second when
      // the one under way had started before the revision this caller saw.
      for (let attempt = 0; attempt < 2 && (loaded === undefined || BigInt(loaded.revision) < BigInt(revision)); attempt++) {
        loading ??= load().finally(() => (loading = undefined));
        loaded = await loading;
      }
      return unionOf(loaded!, roles);
    },
  };
}
