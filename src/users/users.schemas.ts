import { z } from 'zod';

/*
 * Response shapes. The view types the services return are inferred from these, and the
 * OpenAPI document is generated from them, so neither can drift from what is sent.
 * `.meta({ id })` names the component in the document.
 */

const timestamp = z.iso.datetime().meta({ description: 'ISO 8601 UTC', example: '2025-01-31T09:30:00.000Z' });

/** The public shape of an account (CONTRACT.md section 3). */
export const userView = z
  .object({
    id: z.uuid(),
    email: z.email().meta({ description: 'Trimmed and lower-cased' }),
    username: z.string().nullable(),
    roles: z.array(z.string()).meta({ example: ['user'] }),
    createdAt: timestamp,
    lastLoginAt: timestamp.nullable(),
    emailVerified: z
      .boolean()
      .meta({ description: 'Whether the owner has proved the address (POST /auth/email/verify, or a password reset)' }),
  })
  .meta({ id: 'User', description: 'An account' });

/** GET /users/me: the account and the caller's effective permissions. */
export const currentUserView = userView
  .extend({ permissions: z.array(z.string()).meta({ example: ['profile:read', 'profile:write'] }) })
  .meta({ id: 'CurrentUser', description: "The caller's account and its effective permissions, through its roles" });
