import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import helmet, { type HelmetOptions } from 'helmet';

/** One header operation helmet made: a header set to a value, or (value undefined) removed. */
type HeaderValue = string | number | readonly string[];
type HeaderStep = readonly [name: string, value: HeaderValue | undefined];

/**
 * helmet's security headers, worked out once. Given constant options, helmet sets the same
 * headers on every response, through a chain of a dozen middlewares per request; here it runs
 * once, at build time, against a recorder, and each response replays the recorded steps in
 * helmet's order. A CSP directive computed per request (a nonce, a function) cannot be
 * replayed: such options are refused with a TypeError, as is a helmet that does not finish at once.
 */
export function securityHeaders(options: Readonly<HelmetOptions>): RequestHandler {
  if (hasFunction(options)) throw new TypeError('securityHeaders: an option computed per request (a function) cannot be precomputed');
  const steps: HeaderStep[] = [];
  const recorder = {
    setHeader(name: string, value: HeaderValue) {
      steps.push([name, value]);
      return recorder;
    },
    removeHeader(name: string) {
      steps.push([name, undefined]);
    },
  };
  let finished = false;
  let failure: unknown;
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => {
    failure = error;
    finished = true;
  });
  if (failure !== undefined) throw failure instanceof Error ? failure : new TypeError('securityHeaders: helmet refused its options');
  if (!finished) throw new TypeError('securityHeaders: helmet did not finish synchronously, so its headers cannot be precomputed');

  return (_req, res, next) => {
    for (const [name, value] of steps) {
      if (value === undefined) res.removeHeader(name);
      else res.setHeader(name, value);
    }
    next();
  };
}

function hasFunction(value: unknown): boolean {
  if (typeof value === 'function') return true;
  if (value === null || typeof value !== 'object') return false;
  return Object.values(value).some(hasFunction);
}
