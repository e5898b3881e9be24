const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Whether a string is a UUID. Checked before an id from outside reaches a query: PostgreSQL
 * rejects a malformed uuid with an error (a 500), where the caller deserves a 404 or 401.
 */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}
