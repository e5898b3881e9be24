import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildOpenApiDocument } from '../src/openapi/openapi.document';
import { CliError, lineWriter, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';

const HELP = `
Usage: npm run lint:api
   or: tsx scripts/lint-api.ts

Lints the OpenAPI document the service serves at /openapi.json (built from the route
declarations, as src/openapi/openapi.document.ts builds it) with Redocly CLI and the committed
redocly.yaml: Redocly's recommended rules, every warning an error, and the rules turned off
there with their reasons. Prints one line when the document is clean; otherwise each problem,
with its place in the document as a JSON pointer, and exits non-zero.

Options:
  -h, --help   print this help
`;

const ROOT = path.resolve(__dirname, '..');

/** What `redocly lint --format json` prints, as far as it is read here. */
interface LintReport {
  totals: { errors: number; warnings: number };
  problems: { ruleId: string; severity: string; message: string; location: { pointer?: string }[] }[];
}

export interface LintApiOptions {
  /** The checkout whose redocly.yaml is used. */
  root?: string;
  /** The document to lint; by default the service's. */
  document?: () => unknown;
}

/** `npm run lint:api`: exit 0 when Redocly finds nothing in the document, 1 otherwise. */
export function main(argv: string[], io: ScriptIo, options: LintApiOptions = {}): Promise<number> {
  return runCommand('lint:api', io, () => run(argv, io, options));
}

async function run(argv: string[], io: ScriptIo, { root = ROOT, document = buildOpenApiDocument }: LintApiOptions): Promise<void> {
  if (!parseCommandLine({ name: 'lint:api', help: HELP, options: {} }, argv, io.stdout)) return;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-lint-api-'));
  try {
    const file = path.join(dir, 'openapi.json');
    await fs.writeFile(file, JSON.stringify(document(), null, 2));
    const report = await redoclyLint(file, path.join(root, 'redocly.yaml'));
    if ('failure' in report) {
      io.stderr.write(`${report.failure}\n`);
      throw new CliError('redocly lint did not run (its output is above)');
    }
    const { errors, warnings } = report.totals;
    if (errors + warnings === 0) {
      lineWriter(io.stdout)('openapi.json: Redocly finds no problem (redocly.yaml)');
      return;
    }
    const print = lineWriter(io.stderr);
    for (const { ruleId, severity, message, location } of report.problems) {
      print(`${location[0]?.pointer ?? '#'}: ${severity} ${ruleId}: ${message}`);
    }
    throw new CliError(`openapi.json: ${errors} errors and ${warnings} warnings (redocly.yaml says which rules apply)`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/**
 * Runs Redocly CLI's `lint` on `file`, in a process of its own (the CLI is an ES module and
 * its API is internal), and returns its JSON report. Its exit status is not read: a warning
 * leaves it 0, and the report counts both. Its stderr (progress, and on Node 20 a deprecation
 * banner no option silences) is kept back, and shown only when no report comes.
 */
async function redoclyLint(file: string, config: string): Promise<LintReport | { failure: string }> {
  const cli = path.join(path.dirname(require.resolve('@redocly/cli/package.json')), 'bin', 'cli.js');
  // --lint-config error: a mistake in redocly.yaml (a misspelt rule) fails the lint instead of a warning nobody reads.
  const args = [cli, 'lint', file, '--config', config, '--lint-config', 'error', '--format', 'json'];
  const { stdout, stderr } = await promisify(execFile)(process.execPath, args, { maxBuffer: 64 * 1024 * 1024 }).catch(
    (error: { stdout?: string; stderr?: string }) => ({ stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
  );
  try {
    return JSON.parse(stdout) as LintReport;
  } catch {
    return { failure: withoutBanner(stderr) };
  }
}

/** Redocly's stderr without the box it draws around its Node 20 deprecation notice. */
const withoutBanner = (text: string) =>
  text
    .split('\n')
    .filter((line) => !/^\s*[╔║╚]/.test(line))
    .join('\n')
    .trim();

if (require.main === module) runMain(main);
