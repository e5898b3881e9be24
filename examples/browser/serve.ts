/**
 * Serves the browser example on its own origin: bundles app.ts (and `gatehouse/client` with it)
 * for the browser with esbuild at start, then serves index.html, style.css and app.js.
 *
 *   GATEHOUSE_URL=http://localhost:3000 PORT=5173 npx tsx examples/browser/serve.ts
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';

export interface ExampleServerOptions {
  /** Where Gatehouse answers, e.g. `http://localhost:3000`; read on every page load. */
  gatehouseUrl: string | (() => string);
  /** 0 for any free port. */
  port?: number;
  host?: string;
}

export interface ExampleServer {
  /** The address it listens on, e.g. `http://127.0.0.1:5173`. */
  address: { host: string; port: number };
  close(): Promise<void>;
}

/**
 * `gatehouse/client` signs requests with node:crypto when it has a secret; in a browser it has
 * none and never signs, so the browser bundle gets a stand-in that says so if it is ever called.
 */
const noNodeCrypto: Plugin = {
  name: 'no-node-crypto',
  setup(bundle) {
    bundle.onResolve({ filter: /^(node:)?crypto$/ }, () => ({ path: 'crypto', namespace: 'no-node-crypto' }));
    bundle.onLoad({ filter: /.*/, namespace: 'no-node-crypto' }, () => ({
      loader: 'js',
      contents: [
        "const unavailable = () => { throw new Error('HMAC signing needs a secret, which a browser cannot keep'); };",
        'export const createHash = unavailable, createHmac = unavailable, randomBytes = unavailable;',
      ].join('\n'),
    }));
  },
};

/** The app and the client, as one ES module for the browser. */
export async function bundleApp(): Promise<string> {
  const result = await build({
    entryPoints: [path.join(__dirname, 'app.ts')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    tsconfig: path.join(__dirname, 'tsconfig.json'),
    plugins: [noNodeCrypto],
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Bundles the app, then listens. Resolves once it accepts connections. */
export async function startExampleServer(options: ExampleServerOptions): Promise<ExampleServer> {
  const gatehouseUrl = typeof options.gatehouseUrl === 'string' ? () => options.gatehouseUrl as string : options.gatehouseUrl;
  const appJs = await bundleApp();
  const indexHtml = readFileSync(path.join(__dirname, 'index.html'), 'utf8');
  const styleCss = readFileSync(path.join(__dirname, 'style.css'), 'utf8');

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://example.invalid');
    const common = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...common, Allow: 'GET, HEAD' }).end();
      return;
    }
    const gatehouse = new URL(gatehouseUrl());
    const files: Record<string, [type: string, body: string]> = {
      '/': ['text/html; charset=utf-8', indexHtml.replace('%GATEHOUSE_URL%', escapeHtml(gatehouse.href.replace(/\/$/, '')))],
      '/app.js': ['text/javascript; charset=utf-8', appJs],
      '/style.css': ['text/css; charset=utf-8', styleCss],
    };
    const file = files[url.pathname === '/index.html' ? '/' : url.pathname];
    if (!file) {
      res.writeHead(404, { ...common, 'Content-Type': 'text/plain; charset=utf-8' }).end('Not found\n');
      return;
    }
    res.writeHead(200, {
      ...common,
      'Content-Type': file[0],
      // Scripts only from this origin (no inline script could read the token), calls only to Gatehouse.
      'Content-Security-Policy': `default-src 'self'; connect-src ${gatehouse.origin}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    });
    res.end(req.method === 'HEAD' ? undefined : file[1]);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? 'localhost', () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    address: { host: address, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

if (require.main === module) {
  const port = Number(process.env.PORT ?? 5173);
  const host = process.env.HOST ?? 'localhost';
  const gatehouseUrl = process.env.GATEHOUSE_URL ?? 'http://localhost:3000';
  startExampleServer({ gatehouseUrl, port, host }).then(
    () => {
      const origin = `http://localhost:${port}`;
      console.log(`Tracker example on ${origin}, calling Gatehouse at ${gatehouseUrl}`);
      console.log(`Gatehouse needs CORS_ORIGINS=${origin} HMAC_MODE=optional (and the same site: both on localhost)`);
      if (new URL(gatehouseUrl).hostname !== 'localhost') {
        console.warn(
          'GATEHOUSE_URL is not on localhost: another site, so SameSite=Strict keeps the refresh cookie out and a reload signs out',
        );
      }
    },
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exitCode = 1;
    },
  );
}
