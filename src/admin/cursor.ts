import { sql } from 'kysely';
import { AppError } from '../http/problem';
import { isUuid } from '../uuid';

/** A keyset position: the row's timestamp at full (microsecond) precision, and its id. */
export interface Cursor {
  at: string;
  id: string;
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/**
 * Whether a timestamp of the {@link TIMESTAMP} shape is an instant we could have issued. The
 * shape admits month 13, February 30 or hour 25, which PostgreSQL refuses mid-query (a 500),
 * and 24:00 or second 60, which it reads as another instant; year 0 does not exist in
 * PostgreSQL. A real instant is one that comes back unchanged through Date (the shape's
 * first 23 characters are Date's own ISO form, to the millisecond).
 */
function isRealInstant(timestamp: string): boolean {
  const milliseconds = `${timestamp.slice(0, 23)}Z`;
  const date = new Date(milliseconds);
  return !Number.isNaN(date.getTime()) && date.toISOString() === milliseconds && date.getUTCFullYear() >= 1;
}

/** Opaque to clients: base64url JSON, so its shape can change without breaking them. */
export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.at, cursor.id])).toString('base64url');
}

export function decodeCursor(value: string): Cursor {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    if (
      Array.isArray(parsed) &&
      typeof parsed[0] === 'string' &&
      typeof parsed[1] === 'string' &&
      TIMESTAMP.test(parsed[0]) &&
      isRealInstant(parsed[0]) &&
      isUuid(parsed[1])
    ) {
      return { at: parsed[0], id: parsed[1] };
    }
  } catch {
    // fall through to the validation error
  }
  throw new AppError('VALIDATION_FAILED', { errors: [{ path: 'cursor', message: 'is not a cursor this service issued' }] });
}

/**
 * The timestamp as text with microseconds: a JavaScript Date keeps only milliseconds, and a
 * cursor that lost precision would skip or repeat rows created within one millisecond.
 */
export const cursorTimestamp = (column: string) =>
  sql<string>`to_char(${sql.ref(column)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
