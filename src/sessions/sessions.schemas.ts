import { z } from 'zod';

const timestamp = z.iso.datetime().meta({ description: 'ISO 8601 UTC', example: '2025-01-31T09:30:00.000Z' });

/** One live session of the caller; the service's SessionView type is inferred from it. */
export const sessionView = z
  .object({
    id: z.uuid(),
    createdAt: timestamp,
    lastUsedAt: timestamp,
    userAgent: z.string().nullable(),
    ip: z.string().nullable(),
    current: z.boolean().meta({ description: 'The session of the access token making this request' }),
  })
  .meta({ id: 'Session', description: 'A live session (one login), refreshed by its own refresh token' });

export const sessionIdParam = z.object({ id: z.string().meta({ description: 'A session id from GET /users/me/sessions' }) });
