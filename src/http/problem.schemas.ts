import { z } from 'zod';
import { PROBLEMS, type ProblemCode } from '../problems/catalogue';
import type { FieldError, ProblemBody } from './problem';

/** Every machine-readable error code, in the order of {@link PROBLEMS}. */
export const PROBLEM_CODES = Object.keys(PROBLEMS) as [ProblemCode, ...ProblemCode[]];

export const fieldErrorView = z
  .object({
    path: z.string().meta({ description: 'Dotted path of the field', example: 'password' }),
    message: z.string(),
  })
  .meta({ id: 'FieldError', description: 'One field that failed validation' });

/** The RFC 9457 body of every error (CONTRACT.md section 2), for the OpenAPI document. */
export const problemView = z
  .object({
    type: z.string().meta({ description: 'A URN naming the problem', example: 'urn:gatehouse:problem:validation-failed' }),
    title: z.string().meta({ description: 'Fixed for each code' }),
    status: z.number().int().min(400).max(599),
    detail: z.string(),
    code: z.enum(PROBLEM_CODES).meta({ description: 'Machine-readable; branch on this, not on the wording' }),
    requestId: z.string().meta({ description: 'The X-Request-Id of the request, for the logs' }),
    errors: z.array(fieldErrorView).optional().meta({ description: 'With VALIDATION_FAILED and WEAK_PASSWORD: each failing field' }),
  })
  .meta({ id: 'Problem', description: 'An error, as application/problem+json (RFC 9457)' });

// ProblemBody is what the error handler sends; this fails to compile if it and the schema part.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const problemSchemaMatches: Same<z.infer<typeof problemView>, ProblemBody> = true;
const fieldErrorSchemaMatches: Same<z.infer<typeof fieldErrorView>, FieldError> = true;
void problemSchemaMatches;
void fieldErrorSchemaMatches;
