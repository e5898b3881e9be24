import { isIP } from 'node:net';
import type { Request } from 'express';

/** Who asked: what sessions and audit events record about the request behind them. */
export interface RequestContext {
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

/**
 * The client's address. With `trust proxy` set, Express takes it from X-Forwarded-For as
 * written, and a proxy's header may carry whatever the client put there ("unknown", a
 * hostname, 2 kB of text); only an IP address is believed, otherwise the address of the
 * peer that connected. An IPv6 zone (`fe80::1%eth0`) is the sender's own interface name, of
 * any length and no use to us: an address with one is not believed either.
 */
export function clientAddress(req: Request): string | null {
  const forwarded = req.ip;
  if (forwarded !== undefined && isIP(forwarded) !== 0 && !forwarded.includes('%')) return forwarded;
  return req.socket.remoteAddress ?? null;
}

/** What services record about the caller; the only piece of Express they ever see, as plain data. */
export function contextOf(req: Request): RequestContext {
  return {
    ip: clientAddress(req),
    userAgent: req.get('user-agent')?.slice(0, 512) ?? null,
    requestId: req.requestId,
  };
}
