import { createHash } from 'node:crypto';
import type { CompiledQuery, Kysely } from 'kysely';
import type { Database } from './schema';

/**
 * Hot queries, compiled once and run on PostgreSQL as named prepared statements.
 *
 * Kysely builds and compiles a query on every call, and PostgreSQL parses and plans the text
 * it receives every time; for the queries on every request's path (the caller lookup, the
 * refresh rotation) both costs outweigh the work itself. A {@link PreparedQuery} is built
 * once with placeholders, and the pool (database.ts) sends its text under a name derived
 * from it, so each connection parses and plans it once and then only binds and executes.
 *
 * Opt-in, for queries that name their columns: a prepared `select *` would fail on a
 * connection that prepared it before a migration added a column.
 */

/** Names by SQL text, for the statements compiled here; read by the pool adapter. */
const statementNames = new Map<string, string>();

/** The name a prepared statement travels under: from a hash of its text, so two texts never share one. */
export function preparedStatementName(sqlText: string): string | undefined {
  return statementNames.get(sqlText);
}

function register(sqlText: string): void {
  if (!statementNames.has(sqlText)) statementNames.set(sqlText, `gh_${createHash('sha256').update(sqlText).digest('hex').slice(0, 24)}`);
}

/** A placeholder each argument stands in as while the query is compiled; replaced by position at each call. */
class Slot {
  constructor(readonly name: string) {}
}

export interface PreparedQuery<A, R> {
  /** Runs the query with `args` on `db` (the database or a transaction); returns its rows. */
  (db: Kysely<Database>, args: A): Promise<R[]>;
}

/**
 * Compiles `build` once, on first use, with a placeholder for each of `argNames`. `build` must
 * pass each argument into the query as a value, unchanged (not inside a string or a
 * computed value): a placeholder that does not reach the parameters is a bug, thrown on
 * first use.
 */
/** A query builder or an `sql` template: anything Kysely compiles. */
interface Buildable<R> {
  compile(executorProvider: Kysely<Database>): CompiledQuery<R>;
}

export function preparedQuery<A extends Record<string, unknown>, R>(
  argNames: ReadonlyArray<keyof A & string>,
  build: (db: Kysely<Database>, args: A) => Buildable<R>,
): PreparedQuery<A, R> {
  let template: { compiled: CompiledQuery<R>; slots: Array<string | undefined> } | undefined;

  const compile = (db: Kysely<Database>) => {
    const placeholders = Object.fromEntries(argNames.map((name) => [name, new Slot(name)])) as unknown as A;
    // Compiled with the executor at hand: every dialect here speaks PostgreSQL, so the text is the same.
    const compiled = build(db, placeholders).compile(db);
    const slots = compiled.parameters.map((parameter) => (parameter instanceof Slot ? parameter.name : undefined));
    const missing = argNames.filter((name) => !slots.includes(name));
    if (missing.length > 0) throw new TypeError(`prepared query: argument(s) ${missing.join(', ')} did not reach the parameters`);
    register(compiled.sql);
    return { compiled, slots };
  };

  return async (db, args) => {
    template ??= compile(db);
    const { compiled, slots } = template;
    const parameters = slots.map((slot, i) => (slot === undefined ? compiled.parameters[i] : args[slot]));
    const result = await db.executeQuery<R>({ ...compiled, parameters });
    return result.rows;
  };
}
