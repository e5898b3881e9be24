import type { RequestHandler } from 'express';
import { AppError, type FieldError } from './problem';

const NUL = '\u0000';
const MESSAGE = 'must not contain U+0000';
/** Enough to show the caller what is wrong; a body of a thousand NULs needs no thousand-line answer. */
const MAX_ERRORS = 20;

/** Where a value sits in the document: its key and its parent's place, the path built only when needed. */
interface Place {
  readonly parent: Place | undefined;
  readonly key: string;
}

/** `roles.0`, `profile.name`: the dotted path validation errors use too (http/validate.ts). */
function pathOf(place: Place | undefined, root: string): string {
  const keys: string[] = [];
  for (let at = place; at !== undefined; at = at.parent) keys.push(at.key);
  // A key holding U+0000 is named with it written out, not sent back raw.
  return keys.length === 0 ? root : keys.reverse().join('.').replaceAll(NUL, '\\u0000');
}

/**
 * Every place in a parsed JSON value (or a parsed query) where a string, or an object's key,
 * holds U+0000; at most `max`. Walked with a stack of its own, not by recursion: JSON.parse
 * accepts nesting deep enough to overflow the call stack of a recursive walk.
 */
export function nulCharacterPaths(value: unknown, root: string, max = MAX_ERRORS): string[] {
  const found: string[] = [];
  const stack: { value: unknown; place: Place | undefined }[] = [{ value, place: undefined }];
  while (stack.length > 0 && found.length < max) {
    const { value: current, place } = stack.pop()!;
    if (typeof current === 'string') {
      if (current.includes(NUL)) found.push(pathOf(place, root));
    } else if (Array.isArray(current)) {
      for (let index = current.length - 1; index >= 0; index -= 1) {
        stack.push({ value: current[index], place: { parent: place, key: String(index) } });
      }
    } else if (typeof current === 'object' && current !== null) {
      // Own keys only, `__proto__` included: JSON.parse makes it an own property like any other.
      const keys = Object.keys(current);
      for (let index = keys.length - 1; index >= 0; index -= 1) {
        const key = keys[index]!;
        const child: Place = { parent: place, key };
        if (key.includes(NUL)) found.push(pathOf(child, root));
        stack.push({ value: (current as Record<string, unknown>)[key], place: child });
      }
    }
  }
  return found.slice(0, max);
}

/**
 * CONTRACT.md section 2: a string holding U+0000 is 422 VALIDATION_FAILED, wherever it is in
 * the body or the query. PostgreSQL cannot store U+0000 in text (it fails mid-query: a 500),
 * and no field of ours means anything with it; so it is refused once, here, for every route,
 * rather than by each schema.
 */
export function refuseNulCharacters(): RequestHandler {
  return (req, _res, next) => {
    const paths = [...nulCharacterPaths(req.body, 'body'), ...nulCharacterPaths(req.query, 'query')];
    if (paths.length === 0) return next();
    const errors: FieldError[] = paths.slice(0, MAX_ERRORS).map((path) => ({ path, message: MESSAGE }));
    next(new AppError('VALIDATION_FAILED', { errors }));
  };
}
