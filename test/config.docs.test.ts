import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'dotenv';
import { configRules, configVariables, type ConfigVariable, loadConfig } from '../src/config';
import { defaultOf, main, renderConfigDocs, renderEnvExample, renderReadmeBlock } from '../scripts/config-docs';
import { CliError } from '../scripts/cli';

const ROOT = path.resolve(__dirname, '..');
const FIX = 'run `npm run docs:config` and commit the result';

const variables = Object.entries(configVariables) as [string, ConfigVariable][];

/** Fails with the first differing line and the command that fixes it, rather than a diff of the whole file. */
function expectUpToDate(file: string, committed: string, rendered: string): void {
  if (committed === rendered) return;
  const had = committed.split('\n');
  const wants = rendered.split('\n');
  const line = wants.findIndex((text, index) => text !== had[index]);
  const at = line === -1 ? wants.length : line;
  throw new Error(
    `${file} differs from the variables declared in src/config.ts: ${FIX}.\n` +
      `First difference, line ${at + 1}:\n  committed: ${had[at] ?? '(end of file)'}\n  declared:  ${wants[at] ?? '(end of file)'}`,
  );
}

describe('configuration docs', () => {
  it('when .env.example is read, then it is what src/config.ts renders', async () => {
    const committed = await fs.readFile(path.join(ROOT, '.env.example'), 'utf8');
    expectUpToDate('.env.example', committed, renderEnvExample());
  });

  it('when README.md is read, then its configuration block is what src/config.ts renders', async () => {
    const committed = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
    expectUpToDate('README.md', committed, renderConfigDocs(committed).readme);
  });

  it('when rendered, then every declared variable is in both texts, once', () => {
    const envExample = renderEnvExample();
    const block = renderReadmeBlock();
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
    const block = renderReadmeBlock();

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
    const block = renderReadmeBlock();
    for (const rule of configRules) {
      const row = block.split('\n').find((line) => line.startsWith(`| \`${rule.variable}\``));
      expect(row?.replace(/`/g, '')).toContain(rule.message);
    }
  });

  it('when the README is re-rendered, then only the configuration block changes', () => {
    const readme = ['# Title', '', 'before', '<!-- config:start -->', 'stale table', '<!-- config:end -->', 'after', ''].join('\n');

    const rendered = renderConfigDocs(readme).readme;

    expect(rendered.startsWith('# Title\n\nbefore\n<!-- config:start')).toBe(true);
    expect(rendered.endsWith('<!-- config:end -->\nafter\n')).toBe(true);
    expect(rendered).not.toContain('stale table');
    expect(renderConfigDocs(rendered).readme).toBe(rendered);
  });

  it.each([
    ['no markers', '# Title\n'],
    ['no end marker', '<!-- config:start -->\n'],
    ['two blocks', '<!-- config:start -->\n<!-- config:end -->\n<!-- config:start -->\n<!-- config:end -->\n'],
  ])('when the README has %s, then rendering refuses with a CliError', (_case, readme) => {
    expect(() => renderConfigDocs(readme)).toThrow(CliError);
  });
});

describe('npm run docs:config', () => {
  let root: string;
  const log = jest.fn();

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-config-docs-'));
    await fs.writeFile(path.join(root, 'README.md'), 'intro\n<!-- config:start -->\nold\n<!-- config:end -->\nrest\n');
    await fs.writeFile(path.join(root, '.env.example'), 'PORT=1\n');
    log.mockClear();
  });

  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('when --check finds stale files, then it fails naming them and the command, and writes nothing', async () => {
    await expect(main(['--check'], root, log)).rejects.toThrow(/README\.md and \.env\.example .*npm run docs:config/);
    expect(await fs.readFile(path.join(root, '.env.example'), 'utf8')).toBe('PORT=1\n');
  });

  it('when run, then it writes both files, after which --check passes', async () => {
    await main([], root, log);

    expect(await fs.readFile(path.join(root, '.env.example'), 'utf8')).toBe(renderEnvExample());
    const readme = await fs.readFile(path.join(root, 'README.md'), 'utf8');
    expect(readme).toBe(`intro\n${renderReadmeBlock()}\nrest\n`);
    await expect(main(['--check'], root, log)).resolves.toBeUndefined();
    await main([], root, log);
    expect(log).toHaveBeenLastCalledWith('.env.example and README.md were up to date');
  });
});
