import express, { type RequestHandler } from 'express';
import { AppError } from './problem';

const JSON_TYPES = ['application/json', 'application/*+json'];

function hasBody(headers: Record<string, string | string[] | undefined>): boolean {
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
}

/**
 * The `charset` parameter of a Content-Type, unquoted and lower-cased (parameter names and
 * charset names are case-insensitive, RFC 9110 section 8.3.2); undefined when none is given.
 */
function charsetOf(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  for (const parameter of contentType.split(';').slice(1)) {
    const equals = parameter.indexOf('=');
    if (equals === -1 || parameter.slice(0, equals).trim().toLowerCase() !== 'charset') continue;
    return parameter
      .slice(equals + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase();
  }
  return undefined;
}

/**
 * Body parsing: JSON only, in UTF-8 only, at most `limit`, keeping the raw bytes for request
 * signatures. A body of another type or charset is 415 here, before anything reads it.
 */
export function jsonBody(limit: string): RequestHandler[] {
  const requireJson: RequestHandler = (req, _res, next) => {
    if (!hasBody(req.headers)) return next();
    if (!req.is(JSON_TYPES)) return next(new AppError('UNSUPPORTED_MEDIA_TYPE'));
    // JSON exchanged between systems is UTF-8 (RFC 8259 section 8.1); body-parser alone would
    // decode any "utf-*" it is told, UTF-16 included.
    const charset = charsetOf(req.get('content-type'));
    if (charset !== undefined && charset !== 'utf-8') {
      return next(new AppError('UNSUPPORTED_MEDIA_TYPE', { detail: 'A JSON body must be UTF-8: send no charset, or charset=utf-8' }));
    }
    next();
  };
  const parseJson = express.json({
    limit,
    // Any JSON text (RFC 8259), not only objects and arrays: `"x"` or `null` is well-formed
    // JSON of the wrong shape, which validation answers with 422, not a 400 parse error.
    strict: false,
    // Compressed bodies are refused (415): a signature covers the bytes sent, and a body that
    // inflates to 100 times its size is a cheap way to spend our memory.
    inflate: false,
    type: JSON_TYPES,
    verify: (req, _res, buffer) => {
      (req as express.Request).rawBody = buffer;
    },
  });
  return [requireJson, parseJson];
}

/** Turns body-parser's errors into problems; undefined for anything else. */
export function bodyParserProblem(error: unknown): AppError | undefined {
  const type = (error as { type?: unknown } | null)?.type;
  switch (type) {
    case 'entity.parse.failed':
      return new AppError('MALFORMED_BODY');
    case 'entity.too.large':
      return new AppError('PAYLOAD_TOO_LARGE');
    case 'charset.unsupported':
    case 'encoding.unsupported':
      return new AppError('UNSUPPORTED_MEDIA_TYPE');
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new AppError('MALFORMED_BODY', { detail: 'The request body could not be read' });
    default:
      return undefined;
  }
}
