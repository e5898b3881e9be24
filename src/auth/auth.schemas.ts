import { z } from 'zod';
import { userView } from '../users/users.schemas';

/** Emails are compared trimmed and lower-cased (CONTRACT.md section 3); an address that could receive mail. */
export const emailField = z
  .string()
  .trim()
  .toLowerCase()
  .max(254)
  .pipe(z.email({ message: 'must be an email address' }));

export const registerBody = z.object({
  email: emailField,
  // Length, byte limit and the common-password list are the password policy: WEAK_PASSWORD, not here.
  password: z.string(),
  username: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{3,32}$/, 'must be 3-32 letters, digits, "_", "." or "-"')
    .nullish(),
});

export const loginBody = z.object({
  // Not format-checked: any string is just an unknown email, answered like a wrong password.
  // The limit holds for the email as sign-in compares (and counts) it: lower-casing can lengthen
  // a string ("İ" becomes two characters), and the failure counters hold at most 254.
  email: z.string().trim().toLowerCase().max(254),
  password: z.string(),
});

export const changePasswordBody = z.object({
  currentPassword: z.string(),
  newPassword: z.string(),
});

/** Refresh and logout: the token in the body, or else in the `refresh_token` cookie. */
export const refreshBody = z
  .object({ refreshToken: z.string().max(512).optional() })
  .optional()
  .transform((body) => body ?? {});

/*
 * Response shapes: the service's TokenPair and AuthResult types are inferred from these,
 * and the OpenAPI document is generated from them.
 */

/** What a refresh returns (and, with the user, a register or login). */
export const tokenPairView = z
  .object({
    accessToken: z.string().meta({ description: 'RS256 JWS with header typ "at+jwt"; send it as `Authorization: Bearer …`' }),
    refreshToken: z.string().meta({ description: 'Opaque; single use: each refresh returns its successor' }),
    tokenType: z.literal('Bearer'),
    expiresIn: z.number().int().meta({ description: 'Seconds until the access token expires', example: 900 }),
  })
  .meta({ id: 'TokenPair', description: 'A fresh access token and the next refresh token' });

/** Register and login: the account and its first tokens. */
export const authResultView = z
  .object({ user: userView, ...tokenPairView.shape })
  .meta({ id: 'AuthResult', description: 'The account and the tokens of its new session' });
