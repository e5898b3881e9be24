import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { signRequest } from '../../src/signature/signer';
import { type Pacer, parseRateLimitRemaining } from './pacer';
import type { Stats } from './stats';

/** A client of HMAC_CLIENTS. */
export interface SigningClient {
  id: string;
  secret: string;
}

/** What the server answered. */
export interface Answer {
  /** 0 when there was no answer; `error` then says why. */
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The parsed JSON body, or undefined. */
  body: unknown;
  /** The problem's `code`, for an error answer. */
  code: string | undefined;
  error?: string;
}

/** An answer the soak accepts for a kind of request: a status, and for an error the code. */
export interface Expected {
  status: number;
  code?: string;
}

export interface SoakRequest {
  /** How the report counts it: `me`, `refresh (retry)`… */
  kind: string;
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  /** An access token, sent as `Authorization: Bearer`. */
  token?: string;
  expect: readonly Expected[];
}

/** Routes that count against `AUTH_RATE_LIMIT_MAX` besides the global limit (CONTRACT.md section 7). */
const AUTH_LIMITED = new Set(['/auth/register', '/auth/login', '/users/me/password']);
/** Never rate limited, never signed. */
const OPEN = new Set(['/healthz', '/readyz', '/metrics']);
/** Signed (CONTRACT.md section 5). */
const SIGNED = /^\/(auth|users|admin)(\/|$)/;

/** No answer within this long is a failure of its own (the server must never hang). */
const REQUEST_TIMEOUT_MS = 30_000;
/** A 429 is waited out and sent again, at most this many times. */
const MAX_RATE_LIMITED_RETRIES = 5;

export interface SoakHttpOptions {
  base: URL;
  /** Signs every request to a signed route; unsigned when absent. */
  client: SigningClient | undefined;
  stats: Stats;
  connections: number;
}

/** The phase ended before the pacers let this request go; it was not sent. */
export class Stopped extends Error {
  override readonly name = 'Stopped';
}

export function problemCode(body: unknown): string | undefined {
  const code = (body as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Whether `answer` is one of `expected`. */
export function isExpected(answer: Pick<Answer, 'status' | 'code'>, expected: readonly Expected[]): boolean {
  return expected.some((e) => e.status === answer.status && (e.code === undefined || e.code === answer.code));
}

/**
 * The soak's HTTP client: keep-alive connections, every request to a signed route signed
 * afresh (a new nonce even for a retry, as a real client does), paced under the server's
 * rate limits, timed and counted.
 */
export class SoakHttp {
  private readonly agent: http.Agent;
  /** Paces for the `global` and `auth` limits, once the server has told them. */
  private pacers = new Map<string, Pacer>();
  /** The last nonce sent: a Redis the server uses holds it. */
  lastNonce: string | undefined;
  /**
   * When the current phase ends (ms): a request the pacers would hold past it is not sent
   * ({@link Stopped}), so a phase ends on time however tight the limits.
   */
  stopAt = Infinity;

  constructor(private readonly options: SoakHttpOptions) {
    // A timeout makes the agent heed the server's `Keep-Alive: timeout=5` and drop an idle
    // socket a second before the server does; without one, a request sent on a socket the
    // server is closing at that instant fails with ECONNRESET (seen once in 26,000 requests).
    this.agent = new http.Agent({ keepAlive: true, maxSockets: options.connections * 2 + 4, timeout: REQUEST_TIMEOUT_MS });
  }

  get client(): SigningClient | undefined {
    return this.options.client;
  }

  setPacers(pacers: readonly Pacer[]): void {
    this.pacers = new Map(pacers.map((pacer) => [pacer.policy.name, pacer]));
  }

  pacer(name: string): Pacer | undefined {
    return this.pacers.get(name);
  }

  /** How long a register or login sent now would wait for the auth limit, in ms. */
  authWait(): number {
    return this.pacers.get('auth')?.peek(Date.now()) ?? 0;
  }

  /**
   * Sends one request and counts its answer; a 429 is counted, waited out and sent again. An
   * answer that is none of `expect` is recorded as unexpected.
   */
  async send(request: SoakRequest): Promise<Answer> {
    const route = request.path.split('?')[0]!;
    for (let attempt = 0; ; attempt++) {
      if (!OPEN.has(route)) {
        // Auth first, then global: a request waiting for the auth limit must not hold a global slot it does not use yet.
        if (AUTH_LIMITED.has(route)) await this.pace('auth');
        await this.pace('global');
      }
      const started = performance.now();
      const answer = await this.exchange(request);
      this.options.stats.record(request.kind, answer.status, performance.now() - started);
      const wait = this.heed(answer, route);
      if (answer.status === 429 && attempt < MAX_RATE_LIMITED_RETRIES) {
        if (Date.now() + wait > this.stopAt) throw new Stopped();
        if (wait > 0) await sleep(wait);
        continue;
      }
      if (!isExpected(answer, request.expect)) {
        this.options.stats.recordUnexpected(request.kind, answer.status, answer.code ?? answer.error ?? '');
      }
      // A 503 says when to come back (CONTRACT.md section 2): a client that heeds it does not
      // turn an outage into a storm of requests, and neither does the soak.
      const retryAfter = answer.status === 503 ? Number(answer.headers['retry-after']) : NaN;
      if (retryAfter > 0) await sleep(Math.max(0, Math.min(retryAfter * 1000, this.stopAt - Date.now())));
      return answer;
    }
  }

  /** An answer that was a status the soak expects but said something wrong (another user's profile…). */
  recordUnexpected(kind: string, status: number, code: string): void {
    this.options.stats.recordUnexpected(kind, status, code);
  }

  /**
   * An unpaced, uncounted GET of an open route (/metrics, /readyz): the soak's own look at
   * the server. Each on a connection of its own: under WEB_CONCURRENCY the primary hands new
   * connections to the workers in turn, so successive looks reach every worker.
   */
  async look(path: string): Promise<Answer> {
    return this.exchange({ kind: 'look', method: 'GET', path, expect: [] }, true);
  }

  /** Closes the keep-alive connections, so the process can end. */
  close(): void {
    this.agent.destroy();
  }

  private async pace(name: string): Promise<void> {
    const now = Date.now();
    const wait = this.pacers.get(name)?.reserve(now) ?? 0;
    if (now + wait > this.stopAt) throw new Stopped();
    if (wait > 0) await sleep(wait);
  }

  /**
   * Reads what the answer says of the limits: a spent window pauses its pacer until it
   * resets. Returns how long to wait before sending again when no pacer holds it back (429).
   */
  private heed(answer: Answer, route: string): number {
    if (answer.status === 0) return 0;
    const now = Date.now();
    let paused = false;
    for (const name of AUTH_LIMITED.has(route) ? ['auth', 'global'] : ['global']) {
      const left = parseRateLimitRemaining(answer.headers.ratelimit, name);
      const pacer = this.pacers.get(name);
      if (left && left.remaining === 0 && pacer) {
        pacer.pauseUntil(now + (left.reset + 1) * 1000);
        paused = true;
      }
    }
    if (answer.status !== 429 || paused) return 0;
    const retryAfter = Number(answer.headers['retry-after']);
    return (Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter + 1 : 5) * 1000;
  }

  private exchange(request: SoakRequest, raw = false): Promise<Answer> {
    const body = request.body === undefined ? undefined : JSON.stringify(request.body);
    const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': 'gatehouse-soak' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (request.token) headers.Authorization = `Bearer ${request.token}`;
    const { client, base } = this.options;
    if (client && !raw && SIGNED.test(request.path)) {
      const signed = signRequest({ clientId: client.id, secret: client.secret, method: request.method, path: request.path, body });
      Object.assign(headers, signed);
      this.lastNonce = signed['X-Nonce'];
      this.options.stats.signedAt.push(Date.now());
    }
    return new Promise((resolve) => {
      let settled = false;
      const done = (answer: Answer) => {
        if (settled) return;
        settled = true;
        resolve(answer);
      };
      const req = http.request(
        {
          host: base.hostname.replace(/^\[|\]$/g, ''),
          port: base.port || 80,
          method: request.method,
          path: request.path,
          headers,
          agent: raw ? false : this.agent,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('error', (error) => done({ status: 0, headers: {}, body: undefined, code: undefined, error: error.message }));
          res.on('end', () => {
            let json: unknown;
            if (raw) json = text;
            else if (text !== '' && /json/.test(res.headers['content-type'] ?? '')) {
              try {
                json = JSON.parse(text);
              } catch {
                json = undefined;
              }
            }
            const status = res.statusCode ?? 0;
            done({ status, headers: res.headers, body: json, code: status >= 400 ? problemCode(json) : undefined });
          });
        },
      );
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS / 1000} s`)));
      req.on('error', (error: NodeJS.ErrnoException) =>
        done({ status: 0, headers: {}, body: undefined, code: undefined, error: error.code ?? error.message }),
      );
      req.end(body);
    });
  }
}
