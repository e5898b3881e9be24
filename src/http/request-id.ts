import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Takes the caller's X-Request-Id when it is safe to echo and log, else makes one. */
export function requestId(): RequestHandler {
  return (req, res, next) => {
    // Node joins a repeated X-Request-Id with ", ", which the pattern refuses.
    const incoming = req.headers['x-request-id'];
    const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    req.requestId = id;
    // Node's own setHeader: Express's res.set would lower-case the name to look for Content-Type.
    res.setHeader('X-Request-Id', id);
    next();
  };
}
