import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../config';
import type { MailKind } from '../db/schema';

/** The three parts of one kind of message. */
export interface MailTemplate {
  subject: string;
  text: string;
  html: string;
}

export type MailTemplates = Readonly<Record<MailKind, MailTemplate>>;

/** What a template may insert, as `{{name}}`. */
export interface TemplateValues {
  productName: string;
  /** The link with the token: the message's whole point. */
  link: string;
  /** The recipient's address. */
  to: string;
  /** When the link stops working, ISO 8601 UTC. */
  expiresAt: string;
  /** Whole minutes from the message's creation until then. */
  expiresInMinutes: string;
}

const PLACEHOLDERS: ReadonlySet<string> = new Set<keyof TemplateValues>(['productName', 'link', 'to', 'expiresAt', 'expiresInMinutes']);
const PLACEHOLDER = /\{\{\s*([A-Za-z]+)\s*\}\}/g;

const MAIL_KINDS: readonly MailKind[] = ['password_reset', 'email_verification'];
const PARTS = { subject: 'subject.txt', text: 'txt', html: 'html' } as const satisfies Record<keyof MailTemplate, string>;

/**
 * The built-in messages, kept here as strings rather than files so `npm run build` has
 * nothing to copy. An operator replaces any of them with `MAIL_TEMPLATES_DIR`.
 */
export const BUILT_IN_TEMPLATES: MailTemplates = {
  password_reset: {
    subject: 'Reset your {{productName}} password',
    text: `Someone asked to reset the password of the {{productName}} account of {{to}}.

To choose a new password, open this link (it works once, for {{expiresInMinutes}} minutes, until {{expiresAt}}):

{{link}}

If you did not ask for this, ignore this message: your password stays as it is.
`,
    html: `<!doctype html>
<html><body style="font-family: sans-serif; line-height: 1.5">
<p>Someone asked to reset the password of the {{productName}} account of {{to}}.</p>
<p><a href="{{link}}">Choose a new password</a></p>
<p>The link works once, for {{expiresInMinutes}} minutes (until {{expiresAt}}). If the button does not work, copy this address into your browser:<br>{{link}}</p>
<p>If you did not ask for this, ignore this message: your password stays as it is.</p>
</body></html>
`,
  },
  email_verification: {
    subject: 'Confirm your email address for {{productName}}',
    text: `Please confirm that {{to}} is your address for {{productName}}.

Open this link (it works once, for {{expiresInMinutes}} minutes, until {{expiresAt}}):

{{link}}

If you did not create an account, ignore this message.
`,
    html: `<!doctype html>
<html><body style="font-family: sans-serif; line-height: 1.5">
<p>Please confirm that {{to}} is your address for {{productName}}.</p>
<p><a href="{{link}}">Confirm my address</a></p>
<p>The link works once, for {{expiresInMinutes}} minutes (until {{expiresAt}}). If the button does not work, copy this address into your browser:<br>{{link}}</p>
<p>If you did not create an account, ignore this message.</p>
</body></html>
`,
  },
};

/** `{{name}}` placeholders a template uses that are not ours: a typo an operator should hear of at start-up. */
function unknownPlaceholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((match) => match[1]!).filter((name) => !PLACEHOLDERS.has(name));
}

/**
 * The templates to send with: the built-in ones, each part replaced by
 * `<dir>/<kind>.subject.txt`, `<dir>/<kind>.txt` or `<dir>/<kind>.html` when that file exists.
 * A placeholder we do not know stops start-up (ConfigError) rather than reach a recipient as `{{…}}`.
 */
export async function loadMailTemplates(dir: string | undefined): Promise<MailTemplates> {
  if (dir === undefined) return BUILT_IN_TEMPLATES;
  const loaded = {} as Record<MailKind, MailTemplate>;
  for (const kind of MAIL_KINDS) {
    const template = { ...BUILT_IN_TEMPLATES[kind] };
    for (const [part, suffix] of Object.entries(PARTS) as Array<[keyof MailTemplate, string]>) {
      const file = path.join(dir, `${kind}.${suffix}`);
      let content: string;
      try {
        content = await readFile(file, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new ConfigError(`MAIL_TEMPLATES_DIR: cannot read ${file} (${(error as Error).message})`);
      }
      const unknown = unknownPlaceholders(content);
      if (unknown.length > 0) {
        throw new ConfigError(
          `MAIL_TEMPLATES_DIR: ${file} uses unknown placeholder(s) ${unknown.map((n) => `{{${n}}}`).join(', ')}; known: ${[...PLACEHOLDERS].map((n) => `{{${n}}}`).join(', ')}`,
        );
      }
      // A subject is one header line: a newline in it would end the header.
      template[part] = part === 'subject' ? content.trim().replace(/\s*[\r\n]+\s*/g, ' ') : content;
    }
    loaded[kind] = template;
  }
  return loaded;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML content and for quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

function fill(template: string, values: TemplateValues, escape: (value: string) => string): string {
  return template.replace(PLACEHOLDER, (whole, name: string) =>
    PLACEHOLDERS.has(name) ? escape(values[name as keyof TemplateValues]) : whole,
  );
}

/** One message's subject and bodies; values are HTML-escaped in the HTML body, and no newline reaches the subject. */
export function renderMail(template: MailTemplate, values: TemplateValues): MailTemplate {
  const oneLine = (value: string) => value.replace(/[\r\n]+/g, ' ');
  return {
    subject: oneLine(fill(template.subject, values, oneLine)),
    text: fill(template.text, values, (value) => value),
    html: fill(template.html, values, escapeHtml),
  };
}
