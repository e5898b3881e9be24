#!/usr/bin/env node
// @ts-check
'use strict';

/**
 * Runs an operator script: `node bin/gatehouse-script.cjs <script> [arguments…]`, e.g.
 * `node bin/gatehouse-script.cjs migrate up`. The npm scripts (`npm run migrate`, `keys:*`,
 * `user:*`, `prune`, …) are this line, so they work wherever the service runs:
 *
 * - In a development checkout (`scripts/<script>.ts` is here and tsx is installed) it runs
 *   the TypeScript source through tsx, so a change is live at once and a stale `dist/` is
 *   never what runs.
 * - In a production install (the Docker image: compiled `dist/`, `npm ci --omit=dev`, no
 *   sources, no tsx) it runs `dist/scripts/<script>.js`.
 *
 * Plain JavaScript on purpose: it must run before anything is compiled and without any
 * development dependency. It runs the script in this process (no child to relay signals
 * and exit codes to), through the script's exported `main(argv, io)` and `runMain` of
 * `scripts/cli`, exactly as the script does when its own file is run directly.
 */

const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const USAGE = 'usage: node bin/gatehouse-script.cjs <script> [arguments…], e.g. `migrate up`; <script> names scripts/<script>.ts';

/** @param {string} message */
function fail(message) {
  process.stderr.write(`gatehouse-script: ${message}\n`);
  process.exitCode = 1;
}

/** tsx's in-process CommonJS hook, or undefined where tsx is not installed (a production install). */
function tsxRegister() {
  let resolved;
  try {
    resolved = require.resolve('tsx/cjs/api', { paths: [ROOT] });
  } catch {
    return undefined;
  }
  return /** @type {{ register: () => () => void }} */ (require(resolved)).register;
}

/**
 * Which file runs: the TypeScript source through tsx in a checkout with its development
 * dependencies, else the compiled JavaScript.
 * @param {string} name
 * @returns {{ file: string, register?: () => () => void, note?: string } | { error: string }}
 */
function locate(name) {
  const source = path.join(ROOT, 'scripts', `${name}.ts`);
  const compiled = path.join(ROOT, 'dist', 'scripts', `${name}.js`);
  const hasSource = fs.existsSync(source);
  const hasCompiled = fs.existsSync(compiled);
  if (hasSource) {
    const register = tsxRegister();
    if (register) return { file: source, register };
    if (hasCompiled) {
      // A checkout installed without development dependencies: the build is all there is.
      const note = `tsx is not installed, so this runs the compiled ${path.relative(ROOT, compiled)} (run \`npm run build\` after changing scripts/)`;
      return { file: compiled, note };
    }
    return { error: `scripts/${name}.ts needs tsx (\`npm ci\`), or a build (\`npm run build\`) to run from dist/` };
  }
  if (hasCompiled) return { file: compiled };
  return { error: `no operator script "${name}": neither scripts/${name}.ts nor dist/scripts/${name}.js is here` };
}

function run() {
  const [name, ...args] = process.argv.slice(2);
  // A plain file name: nothing that climbs out of scripts/.
  if (name === undefined || !/^[a-z][a-z0-9-]*$/.test(name)) {
    fail(USAGE);
    return;
  }
  const found = locate(name);
  if ('error' in found) {
    fail(found.error);
    return;
  }
  if (found.note) process.stderr.write(`gatehouse-script: ${found.note}\n`);
  found.register?.();

  /** @type {{ main?: unknown }} */
  const script = require(found.file);
  if (typeof script.main !== 'function') {
    fail(`${path.relative(ROOT, found.file)} exports no main(argv, io): it is not an operator script`);
    return;
  }
  // The script sees the command line it would see when run directly: `node <file> <args…>`.
  process.argv.splice(1, 2, found.file);
  /** @type {{ runMain: (main: unknown) => void }} */
  const cli = require(path.join(path.dirname(found.file), 'cli'));
  cli.runMain(script.main);
}

run();
