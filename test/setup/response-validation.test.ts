import express from 'express';
import request from 'supertest';
import { buildOpenApiDocument } from '../../src/openapi/openapi.document';
import { createResponseValidator, type ObservedResponse } from './openapi-response-validator';
import { markAsGatehouseApp, ResponseMismatchError, takeResponseMismatches } from './validate-responses';

/*
 * The response validation every supertest-based test runs under (validate-responses.ts) must
 * be able to fail: each response here is off the document in one way, and must be refused
 * with a message that names the operation, the status and what is wrong.
 */

const validator = createResponseValidator(JSON.parse(JSON.stringify(buildOpenApiDocument())));

const USER = {
  id: '0b5a3a64-2b7b-4d4f-9d41-3c0f9c7d2a11',
  email: 'ada@example.test',
  username: null,
  roles: ['user'],
  createdAt: '2025-01-31T09:30:00.000Z',
  lastLoginAt: null,
  emailVerified: false,
  permissions: ['profile:read'],
};

const problem = (code: string, status: number) => ({
  type: `urn:gatehouse:problem:${code.toLowerCase().replace(/_/g, '-')}`,
  title: 'A title',
  status,
  detail: 'A detail',
  code,
  requestId: 'r-1',
});

const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' };
const PROBLEM_TYPE = { 'content-type': 'application/problem+json; charset=utf-8' };

function response(overrides: Partial<ObservedResponse>): ObservedResponse {
  const json = overrides.json ?? USER;
  return { method: 'GET', target: '/users/me', status: 200, headers: JSON_TYPE, json, text: JSON.stringify(json), ...overrides };
}

describe('the OpenAPI response validator', () => {
  test('when a response is what the document says, then it passes', () => {
    expect(validator.check(response({}))).toBeUndefined();
    expect(
      validator.check(response({ target: '/users/me?x=1', status: 401, headers: PROBLEM_TYPE, json: problem('TOKEN_MISSING', 401) })),
    ).toBeUndefined();
    expect(
      validator.check(
        response({ method: 'DELETE', target: `/users/me/sessions/${USER.id}`, status: 204, headers: {}, json: {}, text: '' }),
      ),
    ).toBeUndefined();
    expect(
      validator.check(response({ target: '/nowhere', status: 404, headers: PROBLEM_TYPE, json: problem('NOT_FOUND', 404) })),
    ).toBeUndefined();
  });

  test.each<[string, Partial<ObservedResponse>, RegExp]>([
    [
      'a status the operation does not declare',
      { status: 404, headers: PROBLEM_TYPE, json: problem('NOT_FOUND', 404) },
      /GET \/users\/me: status 404 \(NOT_FOUND\) is not declared/,
    ],
    [
      'a body without a required field',
      { json: { ...USER, email: undefined } },
      /GET \/users\/me 200 application\/json: the body does not match the schema: body must have required property 'email'/,
    ],
    [
      'a field of the wrong type',
      { json: { ...USER, roles: 'user' } },
      /GET \/users\/me 200 application\/json: .*body\/roles must be array/,
    ],
    [
      'a field the document does not name',
      { json: { ...USER, passwordHash: '$2b$04$x' } },
      /GET \/users\/me 200 .*must NOT have unevaluated properties/,
    ],
    ['a value off its format', { json: { ...USER, createdAt: 'yesterday' } }, /body\/createdAt must match format "date-time"/],
    [
      'a content type the status does not declare',
      { headers: { 'content-type': 'text/html' } },
      /GET \/users\/me 200: Content-Type text\/html is not declared \(declared: application\/json\)/,
    ],
    [
      'a body where the document declares none',
      { method: 'DELETE', target: `/users/me/sessions/${USER.id}`, status: 204, text: '{}' },
      /DELETE \/users\/me\/sessions\/\{id\} 204: declares no body/,
    ],
    [
      'a problem of a code the status does not have',
      { status: 401, headers: PROBLEM_TYPE, json: problem('FORBIDDEN', 401) },
      /GET \/users\/me 401 application\/problem\+json: the body does not match the schema: body\/code must be equal to one of the allowed values/,
    ],
    [
      'a problem whose status is not the response’s',
      { status: 401, headers: PROBLEM_TYPE, json: { ...problem('TOKEN_MISSING', 401), status: 400 } },
      /a Problem whose status is 400/,
    ],
    [
      'a problem as plain JSON',
      { status: 401, json: problem('TOKEN_MISSING', 401) },
      /GET \/users\/me 401: Content-Type application\/json is not declared/,
    ],
    [
      'a 404 of an unknown path that is no Problem',
      { target: '/nowhere', status: 404, json: { error: 'not found' } },
      /GET \/nowhere \(no operation of the document\): a 404 must be application\/problem\+json/,
    ],
    [
      'a 404 of an unknown path with a Problem missing its code',
      { target: '/nowhere', status: 404, headers: PROBLEM_TYPE, json: { ...problem('NOT_FOUND', 404), code: undefined } },
      /GET \/nowhere \(no operation of the document\): the 404 body is not a Problem: body must have required property 'code'/,
    ],
    [
      'a success for a method no operation has',
      { method: 'PATCH', status: 200 },
      /PATCH \/users\/me \(no operation of the document\): answered 200/,
    ],
  ])('when the response has %s, then it is refused with the operation, the status and the reason', (_what, overrides, message) => {
    expect(validator.check(response(overrides))).toMatch(message);
  });

  test('when a Gatehouse app answers off the document through supertest, then the request fails with the mismatch', async () => {
    // An app made to misbehave: /users/me without the email, and a 404 that is no Problem.
    const app = markAsGatehouseApp(express());
    app.get('/users/me', (_req, res) => void res.json({ ...USER, email: undefined }));
    app.use((_req, res) => void res.status(404).type('text/plain').send('nothing here'));

    await expect(request(app).get('/users/me')).rejects.toThrow(ResponseMismatchError);
    await expect(request(app).get('/nowhere')).rejects.toThrow(
      /GET \/nowhere \(no operation of the document\): a 404 must be application\/problem\+json, got text\/plain/,
    );
    // Also when the test asserts nothing itself: the mismatches wait for afterEach, which fails the test.
    const seen = takeResponseMismatches();
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatch(
      /GET \/users\/me 200 application\/json: the body does not match the schema: body must have required property 'email'/,
    );
  });

  test('when an app is not a Gatehouse app, then its responses are not checked', async () => {
    const app = express();
    app.get('/users/me', (_req, res) => void res.json({ anything: true }));
    const res = await request(app).get('/users/me');
    expect(res.status).toBe(200);
    expect(takeResponseMismatches()).toEqual([]);
  });
});
