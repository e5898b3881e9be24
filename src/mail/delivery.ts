import type { Clock } from '../clock';
import type { Config } from '../config';
import type { DB } from '../db/database';
import type { Logger } from '../logger';
import { createMailDispatcher, type DispatcherOptions, type MailDispatcher, type MailEvents } from './dispatcher';
import { createSmtpTransport } from './smtp';
import { loadMailTemplates } from './templates';
import type { MailTransport } from './transport';
import { createWebhookTransport } from './webhook';

export interface MailDeliveryDeps {
  config: Config;
  db: DB;
  logger: Logger;
  clock?: Clock;
  events?: MailEvents;
  /** Dispatcher tuning (tests). */
  tuning?: Partial<Omit<DispatcherOptions, 'db' | 'transport' | 'logger' | 'maxAttempts' | 'clock' | 'events'>>;
}

/** The transport MAIL_DELIVERY names; undefined for `outbox`, where messages stay for `npm run mail:show`. */
export async function createMailTransport(config: Config): Promise<MailTransport | undefined> {
  switch (config.mailDelivery) {
    case 'outbox':
      return undefined;
    case 'webhook':
      // The configuration's rules make both present with MAIL_DELIVERY=webhook.
      return createWebhookTransport({
        url: config.mailWebhookUrl!,
        secret: config.mailWebhookSecret!,
        productName: config.mailProductName,
      });
    case 'smtp':
      return createSmtpTransport({
        smtpUrl: config.smtpUrl!,
        from: config.mailFrom,
        productName: config.mailProductName,
        templates: await loadMailTemplates(config.mailTemplatesDir),
      });
  }
}

/**
 * The dispatcher for MAIL_DELIVERY (not started), or undefined with `outbox`. Operator
 * templates are read and checked here, at start-up: a bad one is a ConfigError.
 */
export async function createMailDelivery(deps: MailDeliveryDeps): Promise<MailDispatcher | undefined> {
  const transport = await createMailTransport(deps.config);
  if (!transport) return undefined;
  return createMailDispatcher({
    ...deps.tuning,
    db: deps.db,
    transport,
    logger: deps.logger,
    maxAttempts: deps.config.mailMaxAttempts,
    ...(deps.clock ? { clock: deps.clock } : {}),
    ...(deps.events ? { events: deps.events } : {}),
  });
}
