import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

/*
 * Checks one HTTP response against the OpenAPI 3.1 document: the status is one the operation
 * declares, the content type one that status declares, and the body matches its schema. A
 * request no operation takes (a path the document does not have, or a method it does not
 * list for it) must be answered with a Problem. The setup file (validate-responses.ts) runs
 * it on every response a supertest-based test receives from a Gatehouse app.
 *
 * Objects are checked closed: the document's object schemas let a client ignore fields it does
 * not know, but the service itself must send none the document does not name (a handler's
 * return value is sent as it is, so a field added there would otherwise reach every client
 * unseen, a hash or a secret included).
 */

/* eslint-disable @typescript-eslint/no-explicit-any -- the document is parsed JSON */
type Json = any;

/** A response as the client saw it. */
export interface ObservedResponse {
  /** The request's method, e.g. `GET`. */
  method: string;
  /** The request target as sent on the request line: path and query, e.g. `/admin/users?limit=2`. */
  target: string;
  status: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The body parsed as JSON (application/json, application/problem+json), else undefined. */
  json: unknown;
  /** The body as text, when it is text; undefined for binary bodies and HEAD. */
  text: string | undefined;
}

export interface ResponseValidator {
  /** Undefined when the response is what the document says; otherwise what is wrong, in a sentence or three. */
  check(response: ObservedResponse): string | undefined;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'] as const;
const DOCUMENT_ID = 'https://gatehouse.invalid/openapi.json';

interface Operation {
  method: string;
  path: string;
  pattern: RegExp;
  op: Json;
}

/** The media type of a Content-Type header, lower-cased, without parameters. */
function mediaTypeOf(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return undefined;
  return value.split(';')[0]!.trim().toLowerCase();
}

const isJsonMediaType = (type: string) => type === 'application/json' || type.endsWith('+json');

/**
 * Express 5's matching of a route path (path-to-regexp 8, non-strict and case-insensitive by
 * default): a `{name}` takes one non-empty segment, and one trailing slash is allowed.
 */
function patternOf(path: string): RegExp {
  const source = path
    .split(/(\{[^}]+\})/)
    .map((part) => (/^\{[^}]+\}$/.test(part) ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}/?$`, 'i');
}

/**
 * Adds `unevaluatedProperties: false` to every object schema that names its properties and
 * says nothing of others (see the comment at the top). Members of an `allOf` are left open,
 * since their siblings add properties; the `allOf` itself is closed instead.
 */
function closeObjects(schema: Json, insideAllOf = false): Json {
  if (Array.isArray(schema)) return schema.map((item) => closeObjects(item));
  if (typeof schema !== 'object' || schema === null) return schema;
  const copy: Json = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'allOf' && Array.isArray(value)) copy[key] = value.map((member) => closeObjects(member, true));
    else if (key === 'properties' && typeof value === 'object' && value !== null) {
      copy[key] = Object.fromEntries(Object.entries(value).map(([name, property]) => [name, closeObjects(property)]));
    } else if (key === 'example' || key === 'examples' || key === 'enum' || key === 'const' || key === 'default') copy[key] = value;
    else copy[key] = closeObjects(value);
  }
  const open = copy.additionalProperties === undefined && copy.unevaluatedProperties === undefined;
  if (open && !insideAllOf && (copy.properties !== undefined || copy.allOf !== undefined)) copy.unevaluatedProperties = false;
  return copy;
}

/** Points the document's `#/components/...` references at the components registered with Ajv. */
function absoluteRefs(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(absoluteRefs);
  if (typeof schema !== 'object' || schema === null) return schema;
  return Object.fromEntries(
    Object.entries(schema).map(([key, value]) => [
      key,
      key === '$ref' && typeof value === 'string' && value.startsWith('#/') ? `${DOCUMENT_ID}${value}` : absoluteRefs(value),
    ]),
  );
}

/** Shows a value in a message without flooding it. */
function preview(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value, null, 0);
  if (text === undefined) return String(value);
  return text.length > 600 ? `${text.slice(0, 600)}… (${text.length} characters)` : text;
}

/** Builds a validator for the document (an OpenAPI 3.1 document as JSON). */
export function createResponseValidator(document: Json): ResponseValidator {
  // strict off: OpenAPI's own keywords (`example`) sit in its schemas; unknown formats still throw.
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: true });
  addFormats(ajv);
  ajv.addSchema({ $id: DOCUMENT_ID, components: { schemas: closeObjects(document.components?.schemas ?? {}) } });
  const problemSchema = ajv.compile({ $ref: `${DOCUMENT_ID}#/components/schemas/Problem` });

  // The status of each problem code, as the document's examples give it.
  const statusOfCode = new Map<string, number>(
    Object.entries(document.components?.examples ?? {}).map(([code, example]: [string, Json]) => [code, example.value?.status]),
  );

  const operations: Operation[] = Object.entries(document.paths as Record<string, Json>).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method] !== undefined).map((method) => ({
      method: method.toUpperCase(),
      path,
      pattern: patternOf(path),
      op: item[method],
    })),
  );
  // A literal path wins over a template, as Express's first-declared route would (no path here has both).
  operations.sort((a, b) => Number(a.path.includes('{')) - Number(b.path.includes('{')));

  const compiled = new Map<string, ValidateFunction>();
  const validatorFor = (key: string, schema: Json): ValidateFunction => {
    let validate = compiled.get(key);
    if (!validate) {
      validate = ajv.compile(absoluteRefs(closeObjects(schema)));
      compiled.set(key, validate);
    }
    return validate;
  };

  const errorsOf = (validate: ValidateFunction) => ajv.errorsText(validate.errors, { dataVar: 'body', separator: '; ' });

  /** A problem body: the Problem schema, a code of this status, and `status` equal to the response's. */
  function checkProblem(response: ObservedResponse, where: string): string | undefined {
    const type = mediaTypeOf(response.headers['content-type']);
    if (type !== 'application/problem+json') {
      return `${where}: a ${response.status} must be application/problem+json, got ${type ?? 'no Content-Type'}; body ${preview(response.text)}`;
    }
    if (response.method === 'HEAD') return undefined;
    if (!problemSchema(response.json)) {
      return `${where}: the ${response.status} body is not a Problem: ${errorsOf(problemSchema)}; body ${preview(response.json)}`;
    }
    const { code, status } = response.json as { code: string; status: number };
    if (status !== response.status) return `${where}: a ${response.status} answered with a Problem whose status is ${status}`;
    if (statusOfCode.get(code) !== response.status) {
      return `${where}: ${code} is a ${statusOfCode.get(code)} in the document, answered as a ${response.status}`;
    }
    return undefined;
  }

  function check(response: ObservedResponse): string | undefined {
    const queryAt = response.target.indexOf('?');
    const path = queryAt === -1 ? response.target : response.target.slice(0, queryAt);
    const method = response.method.toUpperCase();
    const matching = operations.filter((operation) => operation.pattern.test(path));
    // Express answers HEAD with the GET route (without the body).
    const operation =
      matching.find((candidate) => candidate.method === method) ??
      (method === 'HEAD' ? matching.find((candidate) => candidate.method === 'GET') : undefined);

    if (!operation) {
      const where = `${method} ${path} (no operation of the document)`;
      // OPTIONS is HTTP's, not an operation's: Express lists the methods of a path (Allow), CORS answers preflights.
      if (method === 'OPTIONS' && response.status < 300) return undefined;
      if (response.status < 400)
        return `${where}: answered ${response.status}; only a Problem (4xx or 5xx) may answer a request no operation takes`;
      return checkProblem(response, where);
    }

    const name = `${operation.method} ${operation.path}`;
    const declared = operation.op.responses?.[String(response.status)];
    if (!declared) {
      const statuses = Object.keys(operation.op.responses ?? {}).join(', ');
      const code = (response.json as { code?: unknown } | undefined)?.code;
      return `${name}: status ${response.status}${typeof code === 'string' ? ` (${code})` : ''} is not declared (declared: ${statuses}); body ${preview(response.json ?? response.text)}`;
    }

    const where = `${name} ${response.status}`;
    const content: Record<string, { schema?: Json }> | undefined = declared.content;
    const type = mediaTypeOf(response.headers['content-type']);
    if (!content || Object.keys(content).length === 0) {
      const hasBody = response.text !== undefined && response.text !== '';
      return hasBody ? `${where}: declares no body, and one was sent (${type ?? 'no Content-Type'}): ${preview(response.text)}` : undefined;
    }
    if (type === undefined || content[type] === undefined) {
      return `${where}: Content-Type ${type ?? '(none)'} is not declared (declared: ${Object.keys(content).join(', ')})`;
    }
    if (method === 'HEAD') return undefined;

    const schema = content[type].schema;
    if (schema === undefined) return undefined;
    let body: unknown;
    if (isJsonMediaType(type)) body = response.json;
    else if (type.startsWith('text/')) body = response.text;
    // A binary body (an image): its schema says only that it is one.
    else return undefined;
    const validate = validatorFor(`${name} ${response.status} ${type}`, schema);
    if (!validate(body)) return `${where} ${type}: the body does not match the schema: ${errorsOf(validate)}; body ${preview(body)}`;
    if (type === 'application/problem+json') {
      const { code, status } = body as { code: string; status: number };
      if (status !== response.status) return `${where}: a Problem whose status is ${status}`;
      if (statusOfCode.get(code) !== response.status) return `${where}: ${code} is a ${statusOfCode.get(code)} in the document`;
    }
    return undefined;
  }

  return { check };
}
