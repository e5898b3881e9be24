import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { configRules, configVariables, type ConfigVariable } from '../src/config';
import { CliError, parseCommandLine, runScript } from './cli';

const HELP = `
Usage: npm run docs:config [-- --check]
   or: tsx scripts/config-docs.ts [--check]

Writes .env.example and the configuration table of README.md (between its
<!-- config:start --> and <!-- config:end --> lines) from the declaration of the
environment variables in src/config.ts, their one source. Edit a variable there, then
run this.

Options:
      --check  write nothing; exit non-zero when either file differs from the declaration
  -h, --help   print this help
`;

const ROOT = path.resolve(__dirname, '..');

/** The README's generated block lies from a line starting with this to the end marker. */
const START_PREFIX = '<!-- config:start';
const START = '<!-- config:start: generated from src/config.ts by `npm run docs:config`; edit the variables there -->';
const END = '<!-- config:end -->';

type Entry = readonly [name: string, variable: ConfigVariable];

const entries = (): Entry[] => Object.entries(configVariables);

// --- Reading the schemas back -------------------------------------------------------

/** The schemas a variable's schema is built from, outermost first. */
function* partsOf(schema: z.core.$ZodType): Generator<z.core.$ZodType> {
  yield schema;
  if (schema instanceof z.ZodPipe) {
    yield* partsOf(schema.in);
    yield* partsOf(schema.out);
  } else if (schema instanceof z.ZodDefault || schema instanceof z.ZodOptional) {
    yield* partsOf(schema.unwrap());
  }
}

/** The text an unset variable takes: the `.default()` its schema starts with, if any. */
export function defaultOf(schema: z.core.$ZodType): string | undefined {
  if (schema instanceof z.ZodDefault) return String(schema.def.defaultValue);
  if (schema instanceof z.ZodPipe) return defaultOf(schema.in);
  return undefined;
}

function choicesOf(schema: z.core.$ZodType): string[] | undefined {
  for (const part of partsOf(schema)) if (part instanceof z.ZodEnum) return part.options.map(String);
  return undefined;
}

/** The bounds of a number with an upper bound (an integer without one is bounded only by 2^53). */
function rangeOf(schema: z.core.$ZodType): [number, number] | undefined {
  for (const part of partsOf(schema)) {
    if (part instanceof z.ZodNumber && part.minValue !== null && part.maxValue !== null && part.maxValue < Number.MAX_SAFE_INTEGER) {
      return [part.minValue, part.maxValue];
    }
  }
  return undefined;
}

// --- Words ----------------------------------------------------------------------

const code = (text: string | number) => `\`${text}\``;

const orList = (items: string[]) => (items.length > 1 ? `${items.slice(0, -1).join(', ')} or ${items.at(-1)}` : (items[0] ?? ''));

/** Rule messages name variables in plain capitals (they are error messages too); Markdown shows them as code. */
const markVariables = (text: string) =>
  text.replace(/\b[A-Z][A-Z0-9_]*[A-Z0-9]\b/g, (word) => (Object.hasOwn(configVariables, word) ? code(word) : word));

/** `.env.example` is plain text: the same words without Markdown's backticks. */
const plain = (markdown: string) => markdown.replace(/`/g, '');

/** The meaning, then what the schema and the rules between variables allow, in Markdown. */
function detailsOf(name: string, variable: ConfigVariable): string {
  const notes = [variable.meaning];
  const choices = choicesOf(variable.schema);
  if (choices) notes.push(`one of ${orList(choices.map(code))}`);
  const range = rangeOf(variable.schema);
  if (range) notes.push(`from ${code(range[0])} to ${code(range[1])}`);
  for (const rule of configRules) if (rule.variable === name) notes.push(markVariables(rule.message));
  return notes.join('; ');
}

/** The default column, in Markdown; never a value for a secret. */
function defaultText(name: string, variable: ConfigVariable): string {
  const fallback = defaultOf(variable.schema);
  if (variable.secret && (fallback !== undefined || variable.defaultFrom)) {
    // STYLE.md: no secret ever has a default. A mistake in src/config.ts, so not a CliError.
    throw new TypeError(`${name} is a secret and must not have a default`);
  }
  if (variable.defaultFrom) {
    const { variable: other, when, otherwise } = variable.defaultFrom;
    const cases = Object.entries(when).map(([value, result]) => `${code(result)} when ${code(other)} is ${code(value)}`);
    return `${cases.join(', ')}, else ${code(otherwise)}`;
  }
  if (fallback !== undefined) return fallback === '' ? 'empty' : code(fallback);
  return variable.whenUnset === undefined ? 'unset' : `unset: ${variable.whenUnset}`;
}

// --- The two texts ----------------------------------------------------------------

const cell = (markdown: string) => markdown.replace(/\|/g, '\\|');

/** A Markdown table with its columns padded, as Prettier prints one, so formatting the README leaves it alone. */
function table(header: string[], rows: string[][]): string[] {
  const width = (text: string) => [...text].length;
  const widths = header.map((title, column) => Math.max(3, width(title), ...rows.map((row) => width(row[column]!))));
  const line = (cells: string[]) => `| ${cells.map((text, column) => text + ' '.repeat(widths[column]! - width(text))).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** The README's configuration block, markers included. */
export function renderReadmeBlock(): string {
  const rows = entries().map(([name, variable]) =>
    [code(name) + (variable.secret ? ' (secret)' : ''), defaultText(name, variable), detailsOf(name, variable)].map(cell),
  );
  return [START, '', ...table(['variable', 'default', 'meaning'], rows), '', END].join('\n');
}

/** A value as dotenv reads it back unchanged. */
const envValue = (value: string) => (/[\s#"'`\\]/.test(value) ? JSON.stringify(value) : value);

const sentence = (markdown: string) => {
  const text = markdown.startsWith('`') ? markdown : markdown.charAt(0).toUpperCase() + markdown.slice(1);
  return plain(text) + '.';
};

/** The whole of `.env.example`: every variable, commented out, with its meaning and default. */
export function renderEnvExample(): string {
  const lines = [
    '# Gatehouse configuration. Copy to .env, then uncomment and change what you need; real environment',
    '# variables win. Each variable shows its default; durations are whole seconds. Never commit a .env',
    '# that holds secrets.',
    '# Generated from src/config.ts by `npm run docs:config`: edit the variables there, not this file.',
  ];
  let group: string | undefined;
  for (const [name, variable] of entries()) {
    if (variable.group !== group) {
      group = variable.group;
      lines.push('', `# --- ${group} `.padEnd(80, '-'));
    }
    const fallback = defaultOf(variable.schema);
    const comment = [sentence(detailsOf(name, variable))];
    if (variable.defaultFrom) comment.push(`Default: ${plain(defaultText(name, variable))}.`);
    else if (fallback === undefined && variable.whenUnset !== undefined) comment.push(`Unset: ${plain(variable.whenUnset)}.`);
    if (variable.secret) comment.push('Secret: give it in the environment or an uncommitted .env, never here.');
    lines.push(`# ${comment.join(' ')}`, `# ${name}=${variable.secret || fallback === undefined ? '' : envValue(fallback)}`);
  }
  return lines.join('\n') + '\n';
}

/** README.md with its configuration block replaced by {@link renderReadmeBlock}; nothing else changes. */
export function replaceReadmeBlock(readme: string): string {
  const lines = readme.split('\n');
  const starts = lines.flatMap((line, index) => (line.startsWith(START_PREFIX) ? [index] : []));
  const ends = lines.flatMap((line, index) => (line.trim() === END ? [index] : []));
  const [start] = starts;
  const [end] = ends;
  if (starts.length !== 1 || ends.length !== 1 || start === undefined || end === undefined || end < start) {
    throw new CliError(
      `README.md needs exactly one "${START_PREFIX} -->" line followed by one "${END}" line around its configuration table`,
    );
  }
  return [...lines.slice(0, start), renderReadmeBlock(), ...lines.slice(end + 1)].join('\n');
}

export interface ConfigDocs {
  /** The whole of `.env.example`. */
  envExample: string;
  /** The whole of README.md. */
  readme: string;
}

/** Both texts derived from the declaration in src/config.ts; `readme` is the current README.md. */
export function renderConfigDocs(readme: string): ConfigDocs {
  return { envExample: renderEnvExample(), readme: replaceReadmeBlock(readme) };
}

// --- The command ------------------------------------------------------------------

/** `npm run docs:config [-- --check]` on the checkout at `root`. */
export async function main(argv: string[], root = ROOT, log: (line: string) => void = console.log): Promise<void> {
  const args = parseCommandLine({ name: 'docs:config', help: HELP, options: { check: { type: 'boolean' } } }, argv);
  if (!args) return;
  const files = { readme: path.join(root, 'README.md'), envExample: path.join(root, '.env.example') };
  const current: ConfigDocs = {
    readme: await fs.readFile(files.readme, 'utf8'),
    envExample: await fs.readFile(files.envExample, 'utf8').catch(() => ''),
  };
  const rendered = renderConfigDocs(current.readme);
  const stale = (Object.keys(files) as (keyof ConfigDocs)[]).filter((key) => current[key] !== rendered[key]);
  const names = stale.map((key) => path.basename(files[key]));

  if (args.values.check) {
    if (stale.length > 0) throw new CliError(`${names.join(' and ')} differ from src/config.ts: run \`npm run docs:config\``);
    log('.env.example and README.md match src/config.ts');
    return;
  }
  for (const key of stale) await fs.writeFile(files[key], rendered[key]);
  log(stale.length > 0 ? `wrote ${names.join(' and ')}` : '.env.example and README.md were up to date');
}

if (require.main === module) runScript('docs:config', () => main(process.argv.slice(2)));
