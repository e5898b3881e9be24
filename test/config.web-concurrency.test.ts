import { loadConfig } from '../src/config';
import { configErrorOf } from './helpers/config';

// WEB_CONCURRENCY (CONTRACT.md section 1): worker processes sharing the port, each a separate
// instance. Above 1, what one process would keep to itself must be shared: the database, and
// the nonces of signed requests.

const DATABASE_URL = 'postgres://gatehouse@db:5432/gatehouse';
const REDIS_URL = 'redis://cache:6379';

describe('WEB_CONCURRENCY', () => {
  it('when it is unset, then one process serves, with or without shared stores', () => {
    expect(loadConfig({}).webConcurrency).toBe(1);
  });

  it.each(['0', '65', '1.5', 'two', '-2'])('when it is %s, then start-up stops with one line naming it', (value) => {
    const error = configErrorOf({ WEB_CONCURRENCY: value, DATABASE_URL, REDIS_URL });

    expect(error.message).toMatch(/^Invalid configuration: WEB_CONCURRENCY /);
    expect(error.message).not.toMatch(/[\r\n]/);
  });

  it('when it is above 1 without DATABASE_URL, then start-up stops: the embedded database belongs to one process', () => {
    const error = configErrorOf({ WEB_CONCURRENCY: '2', REDIS_URL });

    expect(error.message).toMatch(/^Invalid configuration: WEB_CONCURRENCY .*DATABASE_URL/);
    expect(error.message).not.toMatch(/[\r\n]/);
  });

  it.each(['optional', 'required'])(
    'when it is above 1 without REDIS_URL and HMAC_MODE is %s, then start-up stops: a nonce must be refused by every worker',
    (mode) => {
      const error = configErrorOf({ WEB_CONCURRENCY: '2', DATABASE_URL, HMAC_MODE: mode, HMAC_CLIENTS: `ios:${'s'.repeat(32)}` });

      expect(error.message).toMatch(/^Invalid configuration: WEB_CONCURRENCY .*REDIS_URL/);
      expect(error.message).not.toMatch(/[\r\n]/);
    },
  );

  it('when it is above 1 without REDIS_URL in production, then start-up stops (HMAC is required there by default)', () => {
    const error = configErrorOf({ NODE_ENV: 'production', WEB_CONCURRENCY: '4', DATABASE_URL, HMAC_CLIENTS: `ios:${'s'.repeat(32)}` });
    expect(error.message).toContain('REDIS_URL');
  });

  it('when it is above 1 with HMAC_MODE off, then REDIS_URL may be unset: there are no nonces to share', () => {
    expect(loadConfig({ WEB_CONCURRENCY: '2', DATABASE_URL, HMAC_MODE: 'off' }).webConcurrency).toBe(2);
  });

  it('when it is above 1 with DATABASE_URL and REDIS_URL, then that many workers are configured', () => {
    expect(loadConfig({ WEB_CONCURRENCY: '64', DATABASE_URL, REDIS_URL }).webConcurrency).toBe(64);
  });

  it('when it refuses DATABASE_URL or REDIS_URL, then their values are not in the message', () => {
    const secretUrl = 'postgres://gatehouse:s3cret-pa55@db:5432/gatehouse';
    const error = configErrorOf({ WEB_CONCURRENCY: '2', DATABASE_URL: secretUrl });
    expect(error.message).not.toContain('s3cret-pa55');
  });
});
