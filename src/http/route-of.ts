import type { IncomingMessage } from 'node:http';
import type { Request } from 'express';

/**
 * The route template that served a request (`/admin/users/:id/roles`), never the raw path:
 * ids in paths would make one log field or metric label per user. `unmatched` when no route
 * was reached: a 404, or a request the chain answered first (signature, rate limit).
 */
export function routeOf(req: IncomingMessage): string {
  const express = req as Request;
  // Express types `route` as any: read only what we use.
  const template = (express.route as { path?: unknown } | undefined)?.path;
  return typeof template === 'string' ? express.baseUrl + template : 'unmatched';
}
