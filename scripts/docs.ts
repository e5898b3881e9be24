import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { APP_ROUTES, SIGNED_PREFIXES } from '../src/app.routes';
import { configRules, configVariables, type ConfigVariable } from '../src/config';
import { expressPath, type RouteSpec, type Stage, type SuccessResponse } from '../src/http/route';
import type { StagedRoutes } from '../src/http/router';
import { codesOf, RETRY_AFTER_CODES, STAGES, TOKEN_CODES } from '../src/openapi/edge';
import { type ProblemCode, PROBLEMS } from '../src/problems/catalogue';
import { CliError, lineWriter, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';

const HELP = `
Usage: npm run docs [-- --check]
   or: tsx scripts/docs.ts [--check]

Writes what the documents repeat of a declaration, from that declaration, its one source:
  - .env.example and the README's configuration table, from src/config.ts;
  - the README's endpoints table, from the route declarations (APP_ROUTES in src/app.routes.ts);
  - the README's error-code table, from the problem catalogue (src/problems/catalogue.ts).
Each README table lies between a <!-- NAME:start … --> and a <!-- NAME:end --> line
(NAME: config, routes, problems); nothing else of the README changes. Edit the
declaration, then run this.

Options:
      --check  write nothing; exit non-zero when a file differs from the declarations
  -h, --help   print this help
`;

const ROOT = path.resolve(__dirname, '..');

// --- Words ----------------------------------------------------------------------

const code = (text: string | number) => `\`${text}\``;

const listWith = (conjunction: string) => (items: string[]) =>
  items.length > 1 ? `${items.slice(0, -1).join(', ')} ${conjunction} ${items.at(-1)}` : (items[0] ?? '');
const orList = listWith('or');
const andList = listWith('and');

/** Rule messages name variables in plain capitals (they are error messages too); Markdown shows them as code. */
const markVariables = (text: string) =>
  text.replace(/\b[A-Z][A-Z0-9_]*[A-Z0-9]\b/g, (word) => (Object.hasOwn(configVariables, word) ? code(word) : word));

/** `.env.example` is plain text: the same words without Markdown's backticks. */
const plain = (markdown: string) => markdown.replace(/`/g, '');

/** A table cell is one line, and a `|` in it is text, not a column. */
const cell = (markdown: string) => markdown.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');

/** A Markdown table with its columns padded, as Prettier prints one, so formatting the README leaves it alone. */
function table(header: string[], rows: string[][]): string[] {
  const width = (text: string) => [...text].length;
  const cells = rows.map((row) => row.map(cell));
  const widths = header.map((title, column) => Math.max(3, width(title), ...cells.map((row) => width(row[column]!))));
  const line = (texts: string[]) => `| ${texts.map((text, column) => text + ' '.repeat(widths[column]! - width(text))).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)];
}

// --- Reading zod schemas back ---------------------------------------------------

/** The schemas a schema is built from, outermost first. */
function* partsOf(schema: z.core.$ZodType): Generator<z.core.$ZodType> {
  yield schema;
  if (schema instanceof z.ZodPipe) {
    yield* partsOf(schema.in);
    yield* partsOf(schema.out);
  } else if (schema instanceof z.ZodDefault || schema instanceof z.ZodOptional || schema instanceof z.ZodNullable) {
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

/** The object a body, query or cookie schema takes, through `.optional()` and `.transform()`. */
function objectOf(schema: z.core.$ZodType | undefined): z.ZodObject | undefined {
  if (schema === undefined) return undefined;
  for (const part of partsOf(schema)) if (part instanceof z.ZodObject) return part;
  return undefined;
}

/** The name a schema has in the OpenAPI document (`.meta({ id })`), if it is a named shape. */
function idOf(schema: z.core.$ZodType): string | undefined {
  const id = schema instanceof z.ZodType ? schema.meta()?.id : undefined;
  return typeof id === 'string' ? id : undefined;
}

/** A field may be left out when its schema takes undefined. */
const mayBeAbsent = (schema: z.core.$ZodType) => z.safeParse(schema, undefined).success;

/** An object schema's fields, by name. */
const fieldsIn = (object: z.ZodObject) => Object.entries<z.core.$ZodType>(object.shape);

/** Field names as a reader types them: `{email, password, username?}`. */
const keysOf = (object: z.ZodObject) =>
  `{${fieldsIn(object)
    .map(([key, field]) => key + (mayBeAbsent(field) ? '?' : ''))
    .join(', ')}}`;

/**
 * What a response field holds, when a name says more than nothing: a named shape (`User`),
 * a list of one (`Session[]`), a literal (`"Bearer"`), an inline object. Named shapes met are
 * added to `named`, in the order met, for the table that spells them out.
 */
function typeOf(schema: z.core.$ZodType, named: Map<string, z.ZodObject>): string {
  let inner = schema;
  while (inner instanceof z.ZodOptional || inner instanceof z.ZodNullable || inner instanceof z.ZodDefault || inner instanceof z.ZodPipe) {
    inner = inner instanceof z.ZodPipe ? inner.in : inner.unwrap();
  }
  const id = idOf(inner);
  if (id !== undefined && inner instanceof z.ZodObject) {
    if (!named.has(id)) {
      named.set(id, inner);
      for (const [, field] of fieldsIn(inner)) typeOf(field, named);
    }
    return id;
  }
  if (inner instanceof z.ZodArray) {
    const element = typeOf(inner.element, named);
    if (element === '') return '';
    return element.startsWith('{') ? `[${element}]` : `${element}[]`;
  }
  if (inner instanceof z.ZodLiteral) return [...inner.values].map((value) => JSON.stringify(value)).join(' | ');
  if (inner instanceof z.ZodObject) return fieldsOf(inner, named);
  return '';
}

/** A response shape's fields: `{user: User, accessToken, tokenType: "Bearer"}`. */
function fieldsOf(object: z.ZodObject, named: Map<string, z.ZodObject>): string {
  const fields = fieldsIn(object).map(([key, field]) => {
    const type = typeOf(field, named);
    return `${key}${mayBeAbsent(field) ? '?' : ''}${type === '' ? '' : `: ${type}`}`;
  });
  return `{${fields.join(', ')}}`;
}

// --- Configuration: src/config.ts --------------------------------------------------

type ConfigEntry = readonly [name: string, variable: ConfigVariable];

const configEntries = (): ConfigEntry[] => Object.entries(configVariables);

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

function configTable(): string[] {
  const rows = configEntries().map(([name, variable]) => [
    code(name) + (variable.secret ? ' (secret)' : ''),
    defaultText(name, variable),
    detailsOf(name, variable),
  ]);
  return table(['variable', 'default', 'meaning'], rows);
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
    '# Generated from src/config.ts by `npm run docs`: edit the variables there, not this file.',
  ];
  let group: string | undefined;
  for (const [name, variable] of configEntries()) {
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

// --- Endpoints: the route declarations (APP_ROUTES) ---------------------------------------

export interface StagedRoute {
  readonly route: RouteSpec;
  readonly stage: Stage;
}

/**
 * Every declared route, in the order a caller reads them: the signed API first, then the
 * public keys and documents, then the probes; grouped by tag, in declaration order within it.
 */
export function documentedRoutes(): StagedRoute[] {
  const declared: StagedRoutes = APP_ROUTES;
  const stages: Stage[] = ['signed', 'limited', 'open'];
  const routes = stages.flatMap((stage) =>
    Object.values(declared[stage]).flatMap((table) => table.map((route): StagedRoute => ({ route, stage }))),
  );
  const tags = [...new Set(routes.map(({ route }) => route.tag))];
  // Array.prototype.sort is stable: declaration order holds within a tag.
  return routes.sort((a, b) => tags.indexOf(a.route.tag) - tags.indexOf(b.route.tag));
}

/** `POST /auth/refresh` `{refreshToken?}` or cookie `refresh_token`: method, path, query and body, as declared. */
function requestOf(route: RouteSpec): string {
  const query = Object.keys(objectOf(route.query)?.shape ?? {});
  const parts = [code(`${route.method.toUpperCase()} ${expressPath(route.path)}${query.length > 0 ? `?${query.join('&')}` : ''}`)];
  const body = objectOf(route.body);
  if (body) parts.push(code(keysOf(body)));
  const cookies = Object.keys(objectOf(route.cookies)?.shape ?? {});
  if (cookies.length > 0) parts.push(`or cookie ${orList(cookies.map(code))}`);
  return parts.join(' ');
}

/** Who may call: `none`, `signed`, `signed, Bearer`, `signed, Bearer` and the permission. */
function authOf({ route, stage }: StagedRoute): string {
  const parts = [STAGES[stage].signed ? 'signed' : 'none'];
  if (route.bearer) parts.push('Bearer');
  if (route.permission !== undefined) parts.push(code(route.permission));
  return parts.join(', ');
}

/** The schema of the body a response sends, when it is declared with zod. */
function bodySchemaOf(response: SuccessResponse): z.core.$ZodType | undefined {
  if ('schema' in response) return response.schema;
  if ('content' in response) {
    const [media] = Object.values(response.content);
    if (media && media.schema instanceof z.ZodType) return media.schema;
  }
  return undefined;
}

/** `201 AuthResult`, or the status and its description when no named shape says more. */
function successOf(response: SuccessResponse, named: Map<string, z.ZodObject>): string {
  const schema = bodySchemaOf(response);
  const type = schema === undefined ? '' : typeOf(schema, named);
  return /^[A-Za-z]+(\[\])?$/.test(type) ? `${response.status} ${code(type)}` : `${response.status}: ${response.description}`;
}

const byStatus = (codes: ProblemCode[]) => [...codes].sort((a, b) => PROBLEMS[a].status - PROBLEMS[b].status);

const statusAndCode = (problem: ProblemCode) => `${PROBLEMS[problem].status} ${code(problem)}`;

/**
 * The codes a route answers that not every route of its stage and kind answers: its declared
 * errors and what its permission, parameters and input add. The chain's own (signature,
 * token, body parsing, rate limit, 500, 503) are the error table's.
 */
export function ownErrorsOf({ route, stage }: StagedRoute): ProblemCode[] {
  const bare: RouteSpec = {
    ...route,
    permission: undefined,
    params: undefined,
    body: undefined,
    query: undefined,
    cookies: undefined,
    errors: [],
  };
  const chain = new Set(codesOf(bare, stage));
  return byStatus(codesOf(route, stage).filter((problem) => !chain.has(problem)));
}

function routesTables(): string[] {
  const named = new Map<string, z.ZodObject>();
  const rows = documentedRoutes().map((staged) => [
    requestOf(staged.route),
    authOf(staged),
    staged.route.summary,
    successOf(staged.route.response, named),
    ownErrorsOf(staged).map(statusAndCode).join(', '),
  ]);
  const shapes = [...named].map(([id, object]) => {
    const description = object.meta()?.description;
    return [code(id), code(fieldsOf(object, new Map())), typeof description === 'string' ? description : ''];
  });
  return [
    ...table(['method and path', 'auth', 'what it does', 'success', 'its own errors'], rows),
    '',
    'The shapes named above (`?`: may be absent):',
    '',
    ...table(['shape', 'fields', 'what'], shapes),
  ];
}

// --- Errors: the problem catalogue ----------------------------------------------------

/** The headers that come with a code, by the edge's rules (src/openapi/edge.ts). */
function headersOf(problem: ProblemCode): string {
  const headers = [
    RETRY_AFTER_CODES.includes(problem) ? 'Retry-After' : undefined,
    TOKEN_CODES.includes(problem) ? 'WWW-Authenticate' : undefined,
  ];
  return headers
    .filter((header) => header !== undefined)
    .map(code)
    .join(', ');
}

/** A route that declares nothing but its method and whether it takes a Bearer token. */
const bareRoute = (method: RouteSpec['method'], bearer: boolean): RouteSpec => ({
  method,
  path: '/',
  operationId: 'bare',
  bearer,
  response: { status: 200, description: '' },
  errors: [],
  tag: '',
  summary: '',
});

/**
 * What the middleware in front of the routes adds to their own errors, layer by layer, by
 * the edge's rules (src/openapi/edge.ts): each row the codes one more layer brings.
 */
function chainRows(): string[][] {
  const answers = (stage: Stage, method: RouteSpec['method'], bearer = false) => codesOf(bareRoute(method, bearer), stage);
  const added = (more: ProblemCode[], than: ProblemCode[]) => byStatus(more.filter((problem) => !than.includes(problem)));
  const open = Object.values(APP_ROUTES.open).flatMap((routes) => routes.map((route) => code(expressPath(route.path))));
  const signed = SIGNED_PREFIXES.map((prefix) => code(`${prefix}/*`));
  const layers: [string, ProblemCode[]][] = [
    ['any route', answers('open', 'get')],
    [`rate limited: every route but ${andList(open)}`, added(answers('limited', 'get'), answers('open', 'get'))],
    [`signed: ${andList(signed)}`, added(answers('signed', 'get'), answers('limited', 'get'))],
    ['signed, by any method but GET (a body may come)', added(answers('signed', 'post'), answers('signed', 'get'))],
    ['Bearer', added(answers('signed', 'get', true), answers('signed', 'get'))],
  ];
  // A layer that adds nothing (today: a body, which every signed route may carry, a GET's too) has no row.
  return layers.filter(([, codes]) => codes.length > 0).map(([routes, codes]) => [routes, codes.map(statusAndCode).join(', ')]);
}

function problemsTables(): string[] {
  const rows = byStatus(Object.keys(PROBLEMS) as ProblemCode[]).map((problem) => [
    String(PROBLEMS[problem].status),
    code(problem),
    PROBLEMS[problem].title,
    headersOf(problem),
  ]);
  return [
    ...table(['status', 'code', 'title', 'headers'], rows),
    '',
    'Besides the errors the endpoints table gives each route, the middleware in front of the routes answers:',
    '',
    ...table(['routes', 'may also answer'], chainRows()),
  ];
}

// --- The README's blocks --------------------------------------------------------------

export type BlockName = 'routes' | 'problems' | 'config';

interface Block {
  /** The word of its markers: `<!-- config:start … -->` … `<!-- config:end -->`. */
  readonly name: BlockName;
  /** Its start marker, saying where it comes from. */
  readonly start: string;
  readonly render: () => string[];
}

const block = (name: BlockName, source: string, edit: string, render: () => string[]): Block => ({
  name,
  start: `<!-- ${name}:start: generated from ${source} by \`npm run docs\`; edit ${edit} there -->`,
  render,
});

/** The README's generated blocks, in the order they appear in it. */
export const README_BLOCKS: readonly Block[] = [
  block('routes', 'the route declarations (APP_ROUTES, src/app.routes.ts)', 'a route', routesTables),
  block('problems', 'src/problems/catalogue.ts and src/openapi/edge.ts', 'a problem', problemsTables),
  block('config', 'src/config.ts', 'a variable', configTable),
];

const blockNamed = (name: BlockName) => README_BLOCKS.find((each) => each.name === name)!;

const startPrefix = (block: Block) => `<!-- ${block.name}:start`;
const endMarker = (block: Block) => `<!-- ${block.name}:end -->`;

/** One README block, markers included. */
export function renderBlock(name: BlockName): string {
  const block = blockNamed(name);
  return [block.start, '', ...block.render(), '', endMarker(block)].join('\n');
}

/** Where a block lies in the README's lines: its start and end marker lines. */
function locate(lines: string[], block: Block): { start: number; end: number } {
  const starts = lines.flatMap((line, index) => (line.startsWith(startPrefix(block)) ? [index] : []));
  const ends = lines.flatMap((line, index) => (line.trim() === endMarker(block) ? [index] : []));
  const [start] = starts;
  const [end] = ends;
  if (starts.length !== 1 || ends.length !== 1 || start === undefined || end === undefined || end < start) {
    throw new CliError(`README.md needs exactly one "${startPrefix(block)} -->" line followed by one "${endMarker(block)}" line`);
  }
  return { start, end };
}

/** The text of a block in `readme`, markers included. */
export function readBlock(readme: string, name: BlockName): string {
  const lines = readme.split('\n');
  const { start, end } = locate(lines, blockNamed(name));
  return lines.slice(start, end + 1).join('\n');
}

/** README.md with every generated block rendered afresh; nothing else changes. */
export function replaceReadmeBlocks(readme: string): string {
  let lines = readme.split('\n');
  for (const block of README_BLOCKS) {
    const { start, end } = locate(lines, block);
    lines = [...lines.slice(0, start), renderBlock(block.name), ...lines.slice(end + 1)];
  }
  return lines.join('\n');
}

export interface Docs {
  /** The whole of `.env.example`. */
  envExample: string;
  /** The whole of README.md. */
  readme: string;
}

/** Both files as the declarations render them; `readme` is the current README.md. */
export function renderDocs(readme: string): Docs {
  return { envExample: renderEnvExample(), readme: replaceReadmeBlocks(readme) };
}

// --- The command ------------------------------------------------------------------

/** `npm run docs [-- --check]`, on the checkout at `root`. */
export function main(argv: string[], io: ScriptIo, root = ROOT): Promise<number> {
  return runCommand('docs', io, () => run(argv, io, root));
}

async function run(argv: string[], io: ScriptIo, root: string): Promise<void> {
  const args = parseCommandLine({ name: 'docs', help: HELP, options: { check: { type: 'boolean' } } }, argv, io.stdout);
  if (!args) return;
  const print = lineWriter(io.stdout);
  const files = { readme: path.join(root, 'README.md'), envExample: path.join(root, '.env.example') };
  const current: Docs = {
    readme: await fs.readFile(files.readme, 'utf8'),
    envExample: await fs.readFile(files.envExample, 'utf8').catch(() => ''),
  };
  const rendered = renderDocs(current.readme);
  const staleBlocks = README_BLOCKS.filter((block) => readBlock(current.readme, block.name) !== renderBlock(block.name));
  const stale = (Object.keys(files) as (keyof Docs)[]).filter((key) => current[key] !== rendered[key]);
  const names = stale.map((key) =>
    key === 'readme' && staleBlocks.length > 0
      ? `README.md (${staleBlocks.map((block) => block.name).join(', ')})`
      : path.basename(files[key]),
  );

  if (args.values.check) {
    if (stale.length > 0) throw new CliError(`${names.join(' and ')} differ from the declarations: run \`npm run docs\``);
    print('.env.example and README.md match the declarations');
    return;
  }
  for (const key of stale) await fs.writeFile(files[key], rendered[key]);
  print(stale.length > 0 ? `wrote ${names.join(' and ')}` : '.env.example and README.md were up to date');
}

if (require.main === module) runMain(main);
