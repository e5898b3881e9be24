import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'dotenv';
import { format, resolveConfig } from 'prettier';
import { SIGNED_PREFIXES } from '../src/app.routes';
import { configRules, configVariables, type ConfigVariable, loadConfig } from '../src/config';
import { expressPath } from '../src/http/route';
import { codesOf, RETRY_AFTER_CODES } from '../src/openapi/edge';
import { type ProblemCode, PROBLEMS } from '../src/problems/catalogue';
import { CliError, type ScriptIo } from '../scripts/cli';
import {
  type BlockName,
  defaultOf,
  documentedRoutes,
  main,
  ownErrorsOf,
  README_BLOCKS,
  readBlock,
  renderBlock,
  renderDocs,
  renderEnvExample,
  type StagedRoute,
} from '../scripts/docs';

const ROOT = path.resolve(__dirname, '..');
const FIX = 'run `npm run docs` and commit the result';
const BLOCK_NAMES = README_BLOCKS.map((block) => block.name);

const variables = Object.entries(configVariables) as [string, ConfigVariable][];

/** The first line where `actual` and `expected` differ, for a message shorter than a diff of the whole file. */
function firstDifference(actual: string, expected: string, labels: [actual: string, expected: string]): string {
  const had = actual.split('\n');
  const wants = expected.split('\n');
  const line = wants.findIndex((text, index) => text !== had[index]);
  const at = line === -1 ? wants.length : line;
  const width = Math.max(labels[0].length, labels[1].length) + 1;
  return (
    `First difference, line ${at + 1}:\n` +
    `  ${`${labels[0]}:`.padEnd(width)} ${had[at] ?? '(end of file)'}\n  ${`${labels[1]}:`.padEnd(width)} ${wants[at] ?? '(end of file)'}`
  );
}

/** Fails with the first differing line and the command that fixes it. */
function expectUpToDate(what: string, committed: string, rendered: string): void {
  if (committed === rendered) return;
  throw new Error(`${what} differs from its declaration: ${FIX}.\n${firstDifference(committed, rendered, ['committed', 'declared'])}`);
}

/** The rows (cells trimmed, header and rule left out) of the table in `markdown` whose first column is `first`. */
function rowsOf(markdown: string, first: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => new RegExp(`^\\| ${first} +\\|`).test(line));
  if (start < 0) throw new Error(`no table headed "${first}"`);
  const end = lines.findIndex((line, index) => index > start && !line.startsWith('|'));
  return lines.slice(start + 2, end < 0 ? undefined : end).map((line) =>
    line
      .split(/(?<!\\)\|/)
      .slice(1, -1)
      .map((cell) => cell.trim().replace(/\\\|/g, '|')),
  );
}

const code = (text: string) => `\`${text}\``;
const statusAndCode = (problem: ProblemCode) => `${PROBLEMS[problem].status} ${code(problem)}`;

const routeName = ({ route }: StagedRoute) => `${route.method.toUpperCase()} ${route.path}`;

/** The endpoints table's row of a route: its first cell starts with its method and path. */
function rowOf(rows: string[][], { route }: StagedRoute): string[][] {
  const request = code(`${route.method.toUpperCase()} ${expressPath(route.path)}`).slice(0, -1);
  return rows.filter(([first]) => first!.startsWith(request + '`') || first!.startsWith(request + '?'));
}

describe('npm run docs: the committed files', () => {
  it('when .env.example is read, then it is what src/config.ts renders', async () => {
    const committed = await fs.readFile(path.join(ROOT, '.env.example'), 'utf8');
    expectUpToDate('.env.example', committed, renderEnvExample());
  });

  it.each(BLOCK_NAMES)('when README.md is read, then its %s block is what its declaration renders', async (name) => {
    const committed = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
    expectUpToDate(`README.md's ${name} block`, readBlock(committed, name), renderBlock(name));
  });

  it('when README.md is rendered afresh, then nothing of it changes', async () => {
    const committed = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
    expectUpToDate('README.md', committed, renderDocs(committed).readme);
  });

  it('when the rendered blocks are formatted by Prettier with the repository settings, then they are unchanged', async () => {
    const options = await resolveConfig(path.join(ROOT, 'README.md'));
    const markdown = BLOCK_NAMES.map(renderBlock).join('\n\n') + '\n';

    const formatted = await format(markdown, { ...options, parser: 'markdown' });

    if (formatted !== markdown) {
      throw new Error(
        'Prettier would reformat the generated blocks, so `npm run lint` and `npm run docs -- --check` would disagree: ' +
          `make scripts/docs.ts print them as Prettier does.\n${firstDifference(formatted, markdown, ['Prettier', 'rendered'])}`,
      );
    }
  });
});

describe('npm run docs: the configuration', () => {
  it('when rendered, then every declared variable is in both texts, once', () => {
    const envExample = renderEnvExample();
    const block = renderBlock('config');
    for (const [name] of variables) {
      expect(envExample.match(new RegExp(`^# ${name}=`, 'gm'))).toHaveLength(1);
      expect(block.match(new RegExp(`^\\| \`${name}\``, 'gm'))).toHaveLength(1);
    }
  });

  it('when every value .env.example shows is set, then the configuration is the one of an empty environment', () => {
    const uncommented = renderEnvExample()
      .split('\n')
      .filter((line) => /^# [A-Z][A-Z0-9_]*=./.test(line))
      .map((line) => line.slice(2))
      .join('\n');

    const shown = parse(uncommented);

    expect(Object.keys(shown).length).toBeGreaterThan(0);
    expect(loadConfig(shown)).toEqual(loadConfig({}));
  });

  it('when a variable is a secret, then it has no default and no document shows a value for it', () => {
    const secrets = variables.filter(([, variable]) => variable.secret);
    const envExample = renderEnvExample();
    const block = renderBlock('config');

    expect(secrets.map(([name]) => name)).toEqual(expect.arrayContaining(['HMAC_CLIENTS', 'JWT_PRIVATE_KEY']));
    for (const [name, variable] of secrets) {
      expect({ name, default: defaultOf(variable.schema), defaultFrom: variable.defaultFrom }).toEqual({
        name,
        default: undefined,
        defaultFrom: undefined,
      });
      expect(envExample).toMatch(new RegExp(`^# ${name}=$`, 'm'));
      expect(block).toMatch(new RegExp(`^\\| \`${name}\` \\(secret\\) +\\| unset`, 'm'));
    }
  });

  it('when the declaration is read, then properties are unique and a dependent default follows what it depends on', () => {
    const properties = variables.map(([, variable]) => variable.property);
    expect(new Set(properties).size).toBe(properties.length);

    const names = variables.map(([name]) => name);
    for (const [name, variable] of variables) {
      if (variable.defaultFrom) expect(names.indexOf(variable.defaultFrom.variable)).toBeLessThan(names.indexOf(name));
    }
    for (const rule of configRules) expect(names).toContain(rule.variable);
  });

  it('when loaded, then the configuration has exactly the declared properties and the derived isProduction', () => {
    const properties = variables.map(([, variable]) => variable.property);
    expect(Object.keys(loadConfig({})).sort()).toEqual([...properties, 'isProduction'].sort());
  });

  it('when a rule between variables exists, then the docs list it under its variable', () => {
    const block = renderBlock('config');
    for (const rule of configRules) {
      const row = block.split('\n').find((line) => line.startsWith(`| \`${rule.variable}\``));
      expect(row?.replace(/`/g, '')).toContain(rule.message);
    }
  });
});

describe('npm run docs: the endpoints', () => {
  const routes = documentedRoutes();
  const block = renderBlock('routes');
  const rows = rowsOf(block, 'method and path');

  it('when rendered, then every declared route has exactly one row, and nothing else does', () => {
    expect(routes.length).toBeGreaterThan(0);
    for (const staged of routes)
      expect({ route: routeName(staged), rows: rowOf(rows, staged).length }).toEqual({ route: routeName(staged), rows: 1 });
    expect(rows).toHaveLength(routes.length);
  });

  it('when rendered, then a row says whether its route is signed, takes a Bearer token and needs a permission', () => {
    for (const staged of routes) {
      const { route } = staged;
      const [, auth] = rowOf(rows, staged)[0]!;
      const signed = SIGNED_PREFIXES.some((prefix) => route.path.startsWith(`${prefix}/`));

      expect({ route: routeName(staged), auth }).toEqual({
        route: routeName(staged),
        auth: [signed ? 'signed' : 'none', ...(route.bearer ? ['Bearer'] : []), ...(route.permission ? [code(route.permission)] : [])].join(
          ', ',
        ),
      });
    }
  });

  it('when rendered, then a row has its route summary, its success status and every error it declares', () => {
    for (const staged of routes) {
      const [, , summary, success, errors] = rowOf(rows, staged)[0]!;

      expect(summary).toBe(staged.route.summary);
      expect(success).toMatch(new RegExp(`^${staged.route.response.status}\\b`));
      for (const problem of staged.route.errors) expect(errors).toContain(statusAndCode(problem));
    }
  });

  it.each([
    ['POST /auth/register', '`POST /auth/register` `{email, password, username?}`'],
    ['POST /auth/login', '`POST /auth/login` `{email, password}`'],
    ['POST /auth/refresh', '`POST /auth/refresh` `{refreshToken?}` or cookie `refresh_token`'],
    ['POST /users/me/password', '`POST /users/me/password` `{currentPassword, newPassword}`'],
    ['PUT /admin/users/{id}/roles', '`PUT /admin/users/:id/roles` `{roles}`'],
    ['GET /admin/users', '`GET /admin/users?limit&cursor`'],
  ])('when %s is rendered, then its request names the fields of its schemas, optional ones with ?', (name, request) => {
    const staged = routes.find((each) => routeName(each) === name)!;
    expect(rowOf(rows, staged)[0]![0]).toBe(request);
  });

  it('when a route is answered, then each code is its own or one the middleware adds, as the errors table lists them', () => {
    const chain = new Set(rowsOf(renderBlock('problems'), 'routes').flatMap(([, codes]) => codes!.match(/[A-Z_]{3,}/g) ?? []));
    for (const staged of routes) {
      const own = ownErrorsOf(staged);
      const unlisted = codesOf(staged.route, staged.stage).filter((problem) => !own.includes(problem) && !chain.has(problem));
      expect({ route: routeName(staged), unlisted }).toEqual({ route: routeName(staged), unlisted: [] });
    }
  });

  it('when a shape is named in the table, then the shapes table spells out its fields', () => {
    const shapes = rowsOf(block, 'shape');
    const spelled = new Set(shapes.map(([name]) => name!.replace(/`/g, '')));
    const used = [...rows.map((row) => row[3]!), ...shapes.map((row) => row[1]!)].flatMap((text) =>
      [...text.matchAll(/(?:`|: )([A-Z][A-Za-z]+)(?:\[\])?(?=[`,}])/g)].map((match) => match[1]!),
    );

    expect(used).toEqual(expect.arrayContaining(['AuthResult', 'User', 'Session']));
    for (const name of used) expect(spelled).toContain(name);
    expect(shapes.find(([name]) => name === '`AuthResult`')?.[1]).toBe(
      '`{user: User, accessToken, refreshToken, tokenType: "Bearer", expiresIn}`',
    );
  });
});

describe('npm run docs: the error codes', () => {
  const block = renderBlock('problems');
  const rows = rowsOf(block, 'status');

  it('when rendered, then every code of the catalogue has one row with its status and title, by status', () => {
    const codes = Object.keys(PROBLEMS) as ProblemCode[];
    expect(rows).toHaveLength(codes.length);
    for (const problem of codes) {
      expect(rows.filter(([, name]) => name === code(problem)).map(([status, , title]) => [Number(status), title])).toEqual([
        [PROBLEMS[problem].status, PROBLEMS[problem].title],
      ]);
    }
    const statuses = rows.map(([status]) => Number(status));
    expect(statuses).toEqual([...statuses].sort((a, b) => a - b));
  });

  it('when a code comes with Retry-After, then its row says so', () => {
    for (const [, name, , headers] of rows) {
      expect({ name, retryAfter: headers!.includes('Retry-After') }).toEqual({
        name,
        retryAfter: RETRY_AFTER_CODES.includes(name!.replace(/`/g, '') as ProblemCode),
      });
    }
  });
});

describe('npm run docs: replacing the README blocks', () => {
  const markers = (name: BlockName, inside = 'stale') => [`<!-- ${name}:start -->`, inside, `<!-- ${name}:end -->`];
  const readme = ['# Title', '', 'before', ...BLOCK_NAMES.flatMap((name) => [...markers(name), `after ${name}`]), ''].join('\n');

  it('when the README is rendered, then only the blocks change, and rendering again changes nothing', () => {
    const rendered = renderDocs(readme).readme;

    expect(rendered.startsWith('# Title\n\nbefore\n')).toBe(true);
    for (const name of BLOCK_NAMES) {
      expect(readBlock(rendered, name)).toBe(renderBlock(name));
      expect(rendered).toContain(`${renderBlock(name)}\nafter ${name}\n`);
    }
    expect(rendered).not.toContain('stale');
    expect(renderDocs(rendered).readme).toBe(rendered);
  });

  it.each(
    BLOCK_NAMES.flatMap((name) => [
      [name, 'no markers', readme.replace(markers(name).join('\n'), '')],
      [name, 'no end marker', readme.replace(`<!-- ${name}:end -->`, '')],
      [name, 'two blocks', readme + markers(name).join('\n') + '\n'],
      [name, 'the end before the start', readme.replace(markers(name).join('\n'), [...markers(name)].reverse().join('\n'))],
    ]),
  )('when the %s block has %s, then rendering refuses with a CliError naming it', (name, _case, broken) => {
    expect(() => renderDocs(broken)).toThrow(CliError);
    expect(() => renderDocs(broken)).toThrow(`<!-- ${name}:start`);
  });
});

describe('npm run docs: the command', () => {
  let root: string;
  let stdout: string;
  let stderr: string;
  const io: ScriptIo = {
    env: {},
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  };
  const stale = ['intro', ...BLOCK_NAMES.flatMap((name) => [`<!-- ${name}:start -->`, 'old', `<!-- ${name}:end -->`]), 'rest', ''].join(
    '\n',
  );

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-docs-'));
    await fs.writeFile(path.join(root, 'README.md'), stale);
    await fs.writeFile(path.join(root, '.env.example'), 'PORT=1\n');
    stdout = '';
    stderr = '';
  });

  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('when --check finds stale files, then it exits 1 naming them, their stale blocks and the command, and writes nothing', async () => {
    await expect(main(['--check'], io, root)).resolves.toBe(1);

    expect(stderr).toMatch(/^docs: README\.md \(routes, problems, config\) and \.env\.example differ .*`npm run docs`\n$/);
    expect(await fs.readFile(path.join(root, 'README.md'), 'utf8')).toBe(stale);
    expect(await fs.readFile(path.join(root, '.env.example'), 'utf8')).toBe('PORT=1\n');
  });

  it('when run, then it writes both files, after which --check passes and another run writes nothing', async () => {
    await expect(main([], io, root)).resolves.toBe(0);

    expect(await fs.readFile(path.join(root, '.env.example'), 'utf8')).toBe(renderEnvExample());
    const readme = await fs.readFile(path.join(root, 'README.md'), 'utf8');
    expect(readme).toBe(['intro', ...BLOCK_NAMES.map(renderBlock), 'rest', ''].join('\n'));
    await expect(main(['--check'], io, root)).resolves.toBe(0);
    await expect(main([], io, root)).resolves.toBe(0);
    expect(stdout.trim().split('\n')).toEqual([
      'wrote README.md (routes, problems, config) and .env.example',
      '.env.example and README.md match the declarations',
      '.env.example and README.md were up to date',
    ]);
    expect(stderr).toBe('');
  });

  it('when asked for --help, then it prints its usage and changes nothing', async () => {
    await expect(main(['--help'], io, root)).resolves.toBe(0);

    expect(stdout).toMatch(/^Usage: npm run docs \[-- --check\]/);
    expect(await fs.readFile(path.join(root, 'README.md'), 'utf8')).toBe(stale);
  });

  it('when given an unknown option, then it exits 1 and changes nothing', async () => {
    await expect(main(['--force'], io, root)).resolves.toBe(1);

    expect(stderr).toMatch(/^docs: .*--force/);
    expect(await fs.readFile(path.join(root, 'README.md'), 'utf8')).toBe(stale);
  });
});
