import { z } from 'zod';
import { emailField } from '../auth/auth.schemas';

/*
 * Request bodies of account recovery and email verification (CONTRACT.md section 9). A token
 * is any string here: one that is not a token of ours is simply not valid (400), as the
 * service decides after the same lookup as for any other.
 */

/** Tokens are 43 characters; any string up to this bound that is not a live token is answered 400, as a wrong one. */
const token = z.string().max(512).meta({ description: 'The token from the link of the message' });

/** POST /auth/password/forgot and POST /auth/email/verification. */
export const emailBody = z.object({ email: emailField });

export const resetPasswordBody = z.object({
  token,
  // Length, byte limit and the common-password list are the password policy: WEAK_PASSWORD, not here.
  newPassword: z.string(),
});

export const verifyEmailBody = z.object({ token });
