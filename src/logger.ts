import pino, { type Logger } from 'pino';

/**
 * Paths pino blanks out. Our serializers never log headers or bodies in the first place;
 * this list is the last line of defence if someone logs a request object by hand.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-signature"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.password',
  '*.currentPassword',
  '*.newPassword',
  '*.refreshToken',
  '*.accessToken',
  '*.token',
  '*.secret',
  '*.privateKey',
  'password',
  'refreshToken',
  'accessToken',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { service: 'gatehouse' } }, destination);
}

export type { Logger };
