import type { AuthContext } from '../access/authenticate.middleware';

declare global {
  namespace Express {
    interface Request {
      /** X-Request-Id of this request: the caller's when well-formed, else a new UUID. */
      requestId: string;
      /** The exact body bytes, kept by the JSON parser for request signatures. */
      rawBody?: Buffer;
      /** Set by `authenticate` on protected routes. */
      auth?: AuthContext;
    }
  }
}

export {};
