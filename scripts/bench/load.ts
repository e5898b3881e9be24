import http from 'node:http';
import { inspect } from 'node:util';
import autocannon from 'autocannon';

/** What one autocannon run measured. */
export interface LoadResult {
  /** Mean of autocannon's per-second samples, all responses counted. */
  perSecond: number;
  /** Latencies in ms. */
  p50: number;
  p99: number;
  /** Connection errors and timeouts. */
  errors: number;
  non2xx: number;
  /** Responses by status, e.g. `{ 200: 1234, 401: 2 }`. */
  statuses: Record<string, number>;
}

export interface LoadOptions {
  url: string;
  connections: number;
  /** Seconds. */
  duration: number;
  /** Seconds a request may take before it counts as an error (autocannon's default: 10). */
  timeout?: number;
  /** Gives each connection its requests (`client.setRequests`): per-connection state lives in its closures. */
  setupClient?: (client: autocannon.Client) => void;
}

/** Runs in flight, so that Ctrl-C can stop them. */
const active = new Set<autocannon.Instance>();

/** Stops every run in flight (its promise then resolves with what it had). */
export function stopAllLoad(): void {
  for (const instance of active) instance.stop();
}

/** One autocannon run, in this process: the servers it loads are processes of their own. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.duration,
        ...(options.timeout ? { timeout: options.timeout } : {}),
        ...(options.setupClient ? { setupClient: options.setupClient } : {}),
      },
      (error: unknown, result) => {
        active.delete(instance);
        if (error) {
          reject(error instanceof Error ? error : new Error(inspect(error)));
          return;
        }
        const statuses: Record<string, number> = {};
        for (const [status, { count }] of Object.entries(result.statusCodeStats ?? {})) statuses[status] = count ?? 0;
        resolve({
          perSecond: result.requests.average,
          p50: result.latency.p50,
          p99: result.latency.p99,
          errors: result.errors + result.mismatches,
          non2xx: result.non2xx,
          statuses,
        });
      },
    );
    active.add(instance);
  });
}

/** Whatever went wrong in a run: errors, timeouts, non-2xx answers. */
export function failures(result: LoadResult): number {
  return result.errors + result.non2xx;
}

/** The statuses that were not 2xx, e.g. `401×3, 503×1`. */
export function describeFailures(result: LoadResult): string {
  const statuses = Object.entries(result.statuses)
    .filter(([status]) => !status.startsWith('2'))
    .map(([status, count]) => `${status}×${count}`);
  if (result.errors > 0) statuses.push(`${result.errors} errors or timeouts`);
  return statuses.join(', ');
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** Closes the keep-alive sockets of {@link call}, so the process can end. */
export function closeCalls(): void {
  agent.destroy();
}

/** One request outside the measurement (set-up, readiness): status and parsed JSON body. */
export function call(
  port: number,
  method: string,
  urlPath: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent, timeout: 30_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(body);
  });
}
