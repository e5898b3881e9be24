import express from 'express';
import request from 'supertest';
import { errorHandler } from '../../src/http/error-handler';
import { AppError, type ProblemOptions } from '../../src/http/problem';
import { requestId } from '../../src/http/request-id';
import { PROBLEMS as CATALOGUE, problemType as catalogueType } from '../../src/problems/catalogue';
import { PROBLEMS, problemType } from '../../src/http/problem';

/** An app whose one route throws the given error, behind the real error handler. */
function appThrowing(make: () => AppError) {
  const app = express();
  app.use(requestId());
  app.get('/boom', () => {
    throw make();
  });
  app.use(errorHandler({ exposeDetails: false }));
  return app;
}

describe('AppError headers, rendered by the error handler from typed data', () => {
  it('when an error carries retryAfter, then it answers Retry-After in whole seconds', async () => {
    const res = await request(appThrowing(() => new AppError('UNAVAILABLE', { retryAfter: 5 }))).get('/boom');

    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
  });

  it('when retryAfter has a fraction, then Retry-After is rounded up (never invites a client back early)', async () => {
    const res = await request(appThrowing(() => new AppError('ACCOUNT_LOCKED', { retryAfter: 59.2 }))).get('/boom');

    expect(res.headers['retry-after']).toBe('60');
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])(
    'when retryAfter is %s, then constructing the error is a TypeError (a caller bug)',
    (retryAfter) => {
      expect(() => new AppError('UNAVAILABLE', { retryAfter })).toThrow(TypeError);
    },
  );

  it.each<[string, ProblemOptions['challenge'], string]>([
    ['no error (no credentials were sent)', {}, 'Bearer realm="gatehouse"'],
    ['error invalid_token', { error: 'invalid_token' }, 'Bearer realm="gatehouse", error="invalid_token"'],
  ])('when an error carries a challenge with %s, then it answers WWW-Authenticate per RFC 6750', async (_name, challenge, header) => {
    const res = await request(appThrowing(() => new AppError('TOKEN_INVALID', { challenge }))).get('/boom');

    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(header);
  });

  it('when an error has neither, then it sends neither header', async () => {
    const res = await request(appThrowing(() => new AppError('FORBIDDEN'))).get('/boom');

    expect(res.headers['retry-after']).toBeUndefined();
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it('when the body is rendered, then type and title come from the shared problem catalogue', async () => {
    const res = await request(appThrowing(() => new AppError('RATE_LIMITED', { retryAfter: 1 }))).get('/boom');

    expect(res.body).toEqual(
      expect.objectContaining({ type: 'urn:gatehouse:problem:rate-limited', title: CATALOGUE.RATE_LIMITED.title, code: 'RATE_LIMITED' }),
    );
  });

  it('when importers use http/problem, then they get the very catalogue the SDKs use', () => {
    expect(PROBLEMS).toBe(CATALOGUE);
    expect(problemType).toBe(catalogueType);
  });
});
