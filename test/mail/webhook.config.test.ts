import { ConfigError } from '../../src/config';
import { testConfig } from '../helpers/harness';

/*
 * A MAIL_WEBHOOK_URL that fetch cannot send to must stop start-up, not fail every message
 * until MAIL_MAX_ATTEMPTS; the error names the variable and never repeats the URL (it is secret).
 */
describe('MAIL_WEBHOOK_URL', () => {
  const webhook = (url: string) => () =>
    testConfig({ MAIL_DELIVERY: 'webhook', MAIL_WEBHOOK_URL: url, MAIL_WEBHOOK_SECRET: 'x'.repeat(32) });

  it('when it carries user:password@, then start-up stops with a line naming the variable and not the password', () => {
    expect(webhook('https://mailer:hunter2secret@mailer.internal/hooks/gatehouse')).toThrow(ConfigError);
    expect(webhook('https://mailer:hunter2secret@mailer.internal/hooks/gatehouse')).toThrow(/MAIL_WEBHOOK_URL/);
    expect(webhook('https://mailer:hunter2secret@mailer.internal/hooks/gatehouse')).not.toThrow(/hunter2secret/);
  });

  it('when it is a plain https URL with a path and query, then it is accepted', () => {
    expect(webhook('https://mailer.internal/hooks/gatehouse?source=gh')().mailWebhookUrl).toBe(
      'https://mailer.internal/hooks/gatehouse?source=gh',
    );
  });
});
