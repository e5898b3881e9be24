import type { Server } from 'node:http';
import { Test } from 'supertest';
import type * as AppModule from '../../src/app';
import type * as DocumentModule from '../../src/openapi/openapi.document';
import { createResponseValidator, type ResponseValidator } from './openapi-response-validator';

/*
 * Jest setup (setupFilesAfterEnv): every response a test receives through supertest from a
 * Gatehouse app is checked against the OpenAPI document (openapi-response-validator.ts), so
 * the document cannot drift from the service. A response off the document fails the request's
 * promise (or callback) with a message naming the operation, the status and the schema error,
 * and fails the test that received it in afterEach even if the test caught that error.
 *
 * A Gatehouse app is one `createApp` built: it is wrapped here to mark its apps. Express apps
 * the tests build for other things (an SDK's middleware, the error handler alone) are not
 * Gatehouse and are not checked. The document is the same for every app: it is built once per
 * test file from src/openapi/openapi.document.ts, on the first response to check.
 */

/** The mark createApp's apps carry (a registered symbol: the mock factory below cannot close over a variable). */
const GATEHOUSE_APP = Symbol.for('gatehouse.test.app');

jest.mock('../../src/app', () => {
  const actual = jest.requireActual<typeof AppModule>('../../src/app');
  return {
    ...actual,
    createApp: (...args: Parameters<typeof actual.createApp>) => {
      const app = actual.createApp(...args);
      Object.defineProperty(app, Symbol.for('gatehouse.test.app'), { value: true });
      return app;
    },
  };
});

/** Marks an app as Gatehouse's, so its responses are checked (the validator's own tests use it on an app made to misbehave). */
export function markAsGatehouseApp<T extends object>(app: T): T {
  Object.defineProperty(app, GATEHOUSE_APP, { value: true });
  return app;
}

let validator: ResponseValidator | undefined;

function responseValidator(): ResponseValidator {
  if (!validator) {
    const { buildOpenApiDocument } = jest.requireActual<typeof DocumentModule>('../../src/openapi/openapi.document');
    // Through JSON, as a client reads it from /openapi.json.
    validator = createResponseValidator(JSON.parse(JSON.stringify(buildOpenApiDocument())));
  }
  return validator;
}

/** The mismatches seen since the last test ended (or since the last take). */
const mismatches: string[] = [];

/** Takes (and forgets) the mismatches recorded so far: for a test that provokes one on purpose. */
export function takeResponseMismatches(): string[] {
  return mismatches.splice(0, mismatches.length);
}

export class ResponseMismatchError extends Error {
  override readonly name = 'ResponseMismatchError';
}

interface SuperagentResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text?: string;
  req?: { method?: string; path?: string };
}

interface TestInternals {
  app: unknown;
  method: string;
  url: string;
}

function isGatehouseServer(app: unknown): boolean {
  const listener = (app as Partial<Server> | undefined)?.listeners?.('request')[0];
  return typeof listener === 'function' && (listener as unknown as Record<symbol, unknown>)[GATEHOUSE_APP] === true;
}

type Assert = (this: Test, resError: unknown, res: SuperagentResponse | undefined, fn?: (error: unknown, res: unknown) => void) => void;
const prototype = Test.prototype as unknown as { assert: Assert };
const originalAssert = prototype.assert;

prototype.assert = function (this: Test, resError, res, fn) {
  const test = this as unknown as TestInternals;
  if (res && isGatehouseServer(test.app)) {
    const url = new URL(test.url);
    const method = res.req?.method ?? test.method;
    const target = res.req?.path ?? `${url.pathname}${url.search}`;
    const mismatch = responseValidator().check({
      method,
      target,
      status: res.status,
      headers: res.headers,
      // superagent parses JSON media types (problem+json too); the validator reads it only for those.
      json: Buffer.isBuffer(res.body) ? undefined : res.body,
      text: typeof res.text === 'string' ? res.text : undefined,
    });
    if (mismatch) {
      const message = `The response is not what the OpenAPI document says: ${mismatch}`;
      mismatches.push(message);
      fn?.call(this, new ResponseMismatchError(message), res);
      return;
    }
  }
  originalAssert.call(this, resError, res, fn);
};

afterEach(() => {
  const seen = takeResponseMismatches();
  if (seen.length > 0) {
    throw new ResponseMismatchError(`${seen.length} response(s) off the OpenAPI document:\n- ${seen.slice(0, 10).join('\n- ')}`);
  }
});
