import type { Request } from 'express';
import type { RequestContext } from '../audit/audit.repository';

/** What services record about the caller; the only piece of Express they ever see, as plain data. */
export function contextOf(req: Request): RequestContext {
  return {
    ip: req.ip ?? null,
    userAgent: req.get('user-agent')?.slice(0, 512) ?? null,
    requestId: req.requestId,
  };
}
