import type { z } from 'zod';
import { AppError } from './problem';

/**
 * Parses input with a zod schema; on failure throws VALIDATION_FAILED listing each field.
 * Messages are zod's own and never echo the value (a password must not come back in a 422).
 */
export function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new AppError('VALIDATION_FAILED', {
    errors: result.error.issues.map((issue) => ({
      path: issue.path.length > 0 ? issue.path.map(String).join('.') : 'body',
      message: issue.message,
    })),
  });
}
