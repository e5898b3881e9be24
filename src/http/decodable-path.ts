import type { RequestHandler } from 'express';
import { AppError } from './problem';

/**
 * CONTRACT.md section 2: a path that cannot be decoded (bad percent-encoding, `/docs/%E0%A4%A`)
 * is 404 NOT_FOUND, as is one that decodes to U+0000: neither names anything here. Without
 * this, the router's own decoding of a path parameter throws, and the error is a 500.
 * Checked once, before any route: it costs one decodeURIComponent, and only for a path that
 * has a `%` at all, so even the unsigned routes (/docs) answer it cheaply.
 */
export function decodablePath(): RequestHandler {
  return (req, _res, next) => {
    const { path } = req;
    if (!path.includes('%')) return next();
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return next(new AppError('NOT_FOUND', { detail: 'No such route' }));
    }
    if (decoded.includes('\u0000')) return next(new AppError('NOT_FOUND', { detail: 'No such route' }));
    next();
  };
}
