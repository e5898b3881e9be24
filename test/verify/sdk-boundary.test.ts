import { builtinModules } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

// The published SDKs (package.json "exports") ship to other services: whatever they import,
// however indirectly, must not drag in the server (Express at run time, the database, config,
// jsonwebtoken). Written down here so the rule is held by a test, not by memory.

const ROOT = path.resolve(__dirname, '../..');

interface Boundary {
  entry: string;
  /** Packages it may load at run time (besides node built-ins). */
  runtime: string[];
  /** Packages whose types only it may name. */
  typesOnly: string[];
}

const SDKS: Record<string, Boundary> = {
  'gatehouse/verify': { entry: 'src/verify/index.ts', runtime: ['jose'], typesOnly: ['express'] },
  'gatehouse/client': { entry: 'src/client/client.ts', runtime: [], typesOnly: [] },
  'gatehouse/signer': { entry: 'src/signature/signer.ts', runtime: [], typesOnly: [] },
};

interface ImportOf {
  specifier: string;
  typeOnly: boolean;
}

function importsOf(file: string): ImportOf[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const found: ImportOf[] = [];
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier)) {
      const clause = statement.importClause;
      const named = clause?.namedBindings && ts.isNamedImports(clause.namedBindings) ? clause.namedBindings.elements : undefined;
      // Elided on emit: `import type …`, or `import { type A, type B }` with nothing else.
      const typeOnly = !!clause && (clause.isTypeOnly || (!clause.name && !!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
      found.push({ specifier: statement.moduleSpecifier.text, typeOnly });
    } else if (ts.isExportDeclaration(statement) && statement.moduleSpecifier && ts.isStringLiteral(statement.moduleSpecifier)) {
      const named = statement.exportClause && ts.isNamedExports(statement.exportClause) ? statement.exportClause.elements : undefined;
      const typeOnly = statement.isTypeOnly || (!!named && named.length > 0 && named.every((e) => e.isTypeOnly));
      found.push({ specifier: statement.moduleSpecifier.text, typeOnly });
    }
  }
  // A require() or import() would escape this reading: there must be none.
  if (/\brequire\s*\(|\bimport\s*\(/.test(source.text)) found.push({ specifier: '<dynamic import>', typeOnly: false });
  return found;
}

function resolveRelative(from: string, specifier: string): string {
  const base = path.resolve(path.dirname(from), specifier);
  const candidate = [`${base}.ts`, path.join(base, 'index.ts')].find((file) => existsSync(file));
  if (!candidate) throw new Error(`${path.relative(ROOT, from)}: cannot resolve ${specifier}`);
  return candidate;
}

const isBuiltin = (specifier: string) => specifier.startsWith('node:') || builtinModules.includes(specifier);
const packageOf = (specifier: string) =>
  specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;

/** Every source file the entry reaches and every package import outside its boundary, as `file → package`. */
function walk(boundary: Boundary): { files: string[]; violations: string[] } {
  const seen = new Set<string>();
  const violations: string[] = [];
  const queue = [path.join(ROOT, boundary.entry)];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const { specifier, typeOnly } of importsOf(file)) {
      if (specifier.startsWith('.')) {
        queue.push(resolveRelative(file, specifier));
        continue;
      }
      if (isBuiltin(specifier)) continue;
      const pkg = packageOf(specifier);
      const allowed = boundary.runtime.includes(pkg) || (typeOnly && boundary.typesOnly.includes(pkg));
      if (!allowed) violations.push(`${path.relative(ROOT, file)} → ${specifier}${typeOnly ? ' (types)' : ''}`);
    }
  }
  return { files: [...seen].map((file) => path.relative(ROOT, file)).sort(), violations };
}

describe.each(Object.entries(SDKS))('the published SDK %s', (_name, boundary) => {
  it('when every import it reaches is followed, then none leaves its allowed dependencies', () => {
    const { violations } = walk(boundary);

    expect(violations).toEqual([]);
  });

  it('when every import it reaches is followed, then it reaches no server folder', () => {
    const { files } = walk(boundary);

    // Shared, dependency-free modules are fine wherever they live; these folders are the server.
    const server = files.filter(
      (file) =>
        /^src\/(http|db|auth|access|admin|users|sessions|roles|audit|health|maintenance|metrics|openapi|passwords)\//.test(file) ||
        /^src\/(app|server|config|logger|redis)\.ts$/.test(file),
    );
    expect(server).toEqual([]);
  });
});
