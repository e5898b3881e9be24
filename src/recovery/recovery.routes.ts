import { defineRoute, type RouteTable } from '../http/route';
import type { RecoveryService } from './recovery.service';
import { emailBody, resetPasswordBody, verifyEmailBody } from './recovery.schemas';

export interface RecoveryRoutesDeps {
  recovery: RecoveryService;
}

const STRICTER_LIMIT = 'Rate limited as register and login are (AUTH_RATE_LIMIT_MAX per window).';

/** How the requests that take an email answer (CONTRACT.md section 9). */
const NO_ENUMERATION =
  'Answered 202 with no body whether or not the email has an account, and whether or not a message is sent: at most RESET_MAX_PER_HOUR messages of a kind go to one email per hour, and requests beyond that are answered alike and send nothing. The answer comes as soon as the body is valid, before any work on the account, which is done after it: its time does not depend on the email either. So a 202 does not say the message was written: if the database fails meanwhile, nothing is sent, and the user asks again.';

/** Password reset and email verification: forgot, reset, verify, and the requests for a verification message. */
export const recoveryRoutes: RouteTable<RecoveryRoutesDeps> = [
  defineRoute({
    method: 'post',
    path: '/auth/password/forgot',
    operationId: 'forgotPassword',
    tag: 'auth',
    summary: 'Send a password-reset link to an email',
    description: `For an account, a message links to PASSWORD_RESET_URL with a single-use token valid PASSWORD_RESET_TTL seconds; a newer request supersedes the older token. ${NO_ENUMERATION} ${STRICTER_LIMIT}`,
    rateLimit: 'auth',
    body: emailBody,
    response: { status: 202, description: 'Accepted (the same for every email)' },
    handler:
      ({ recovery }) =>
      ({ body, context }) => {
        recovery.forgotPassword(body.email, context);
      },
  }),

  defineRoute({
    method: 'post',
    path: '/auth/password/reset',
    operationId: 'resetPassword',
    tag: 'auth',
    summary: 'Set a new password with a reset token',
    description: `The password policy of register applies. Every session of the user is revoked, the failed-login counters of the email are cleared (from every address), and the email counts as verified. The token is single use. A disabled account stays disabled. ${STRICTER_LIMIT}`,
    rateLimit: 'auth',
    body: resetPasswordBody,
    errors: ['RESET_TOKEN_INVALID', 'RESET_TOKEN_EXPIRED', 'WEAK_PASSWORD'],
    response: { status: 204, description: 'The password is changed; every session is revoked' },
    handler:
      ({ recovery }) =>
      async ({ body, context }) => {
        await recovery.resetPassword(body, context);
      },
  }),

  defineRoute({
    method: 'post',
    path: '/users/me/email/verification',
    operationId: 'requestEmailVerification',
    tag: 'users',
    summary: 'Send the caller a new email-verification link',
    description:
      'A message links to EMAIL_VERIFY_URL with a single-use token valid EMAIL_VERIFY_TTL seconds; it supersedes the earlier one. Nothing is sent when the email is verified already, or over RESET_MAX_PER_HOUR messages per hour; the answer is the same.',
    bearer: true,
    permission: 'profile:write',
    response: { status: 202, description: 'Accepted' },
    handler:
      ({ recovery }) =>
      async ({ auth }) => {
        await recovery.requestVerification(auth.userId);
      },
  }),

  defineRoute({
    method: 'post',
    path: '/auth/email/verification',
    operationId: 'resendEmailVerification',
    tag: 'auth',
    summary: 'Send a new email-verification link to an email, without a session',
    description: `For an unverified account, as \`POST /users/me/email/verification\` does; for a login refused with \`EMAIL_NOT_VERIFIED\`. ${NO_ENUMERATION} ${STRICTER_LIMIT}`,
    rateLimit: 'auth',
    body: emailBody,
    response: { status: 202, description: 'Accepted (the same for every email)' },
    handler:
      ({ recovery }) =>
      ({ body, context }) => {
        recovery.resendVerification(body.email, context);
      },
  }),

  defineRoute({
    method: 'post',
    path: '/auth/email/verify',
    operationId: 'verifyEmail',
    tag: 'auth',
    summary: 'Verify an email with the token of its message',
    description: `The account's \`emailVerified\` becomes true. The token is single use; an account verified already is not an error. ${STRICTER_LIMIT}`,
    rateLimit: 'auth',
    body: verifyEmailBody,
    errors: ['VERIFY_TOKEN_INVALID', 'VERIFY_TOKEN_EXPIRED'],
    response: { status: 204, description: 'Verified' },
    handler:
      ({ recovery }) =>
      async ({ body, context }) => {
        await recovery.verifyEmail(body.token, context);
      },
  }),
];
