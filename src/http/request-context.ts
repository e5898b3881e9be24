import type { Request } from 'express';

/** Who asked: what sessions and audit events record about the request behind them. */
export interface RequestContext {
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

/** What services record about the caller; the only piece of Express they ever see, as plain data. */
export function contextOf(req: Request): RequestContext {
  return {
    ip: req.ip ?? null,
    userAgent: req.get('user-agent')?.slice(0, 512) ?? null,
    requestId: req.requestId,
  };
}
