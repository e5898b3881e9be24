import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { type GatehouseProcess, lineWhere, pidServing, startCluster } from '../helpers/server-process';
import { testClients } from '../helpers/signing';

// /metrics of a real Gatehouse with WEB_CONCURRENCY=2: whichever worker takes the scrape, it
// answers the whole instance's metrics, collected by the primary from both workers
// (src/metrics/cluster-metrics.ts), so counters neither jump between the workers' values nor
// go down. The IPC's edge cases are test/metrics/cluster-metrics.test.ts.

// Two workers need a shared database and Redis (config: WEB_CONCURRENCY); without both (CI sets them), skip.
const describeIfShared = process.env.DATABASE_URL && process.env.REDIS_URL ? describe : describe.skip;

const JWKS_COUNT = 'gatehouse_http_request_duration_seconds_count{route="/.well-known/jwks.json",method="GET",status="200"}';
const SCRAPE_COUNT = 'gatehouse_http_request_duration_seconds_count{route="/metrics",method="GET",status="200"}';
/** Every request below has this bound, so a hang fails with a message instead of a Jest timeout. */
const REQUEST_TIMEOUT_MS = 15_000;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/**
 * A GET on a connection of its own (no keep-alive agent): the primary hands each new
 * connection to the next worker, so consecutive requests alternate between the two.
 */
function get(baseUrl: string, urlPath: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${baseUrl}${urlPath}`, { headers, agent: false, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });
}

/** The metric families the text declares a counter or histogram: their series only grow while the instance lives. */
const counted = new Set<string>();

/** Every sample of the Prometheus text, by its series (`name{labels}`). */
function samples(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (counter|histogram)$/.exec(line);
    if (type) counted.add(type[1]!);
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

/** A counter's series, or a histogram's bucket, count or sum. */
function isCounted(series: string): boolean {
  const name = series.split('{')[0]!;
  return counted.has(name) || counted.has(name.replace(/_(bucket|count|sum)$/, ''));
}

describeIfShared('/metrics with WEB_CONCURRENCY=2', () => {
  const { hmacClients } = testClients();
  let gatehouse: GatehouseProcess;
  let workerPids: number[];
  const stopped = new Set<number>();

  async function scrape(): Promise<Map<string, number>> {
    const reply = await get(gatehouse.baseUrl, '/metrics');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toMatch(/^text\/plain/);
    return samples(reply.text);
  }

  beforeAll(async () => {
    ({ gatehouse, workerPids } = await startCluster({ hmacClients }));
  }, 90_000);

  afterAll(async () => {
    // A worker left stopped would outlive the primary.
    for (const pid of stopped) process.kill(pid, 'SIGCONT');
    await gatehouse?.dispose();
  });

  it('when N requests were served by both workers, then every scrape, whichever worker takes it, counts N and no counter goes down', async () => {
    const n = 10;
    const servedBy = new Set<number>();
    for (let i = 0; i < n; i++) {
      const requestId = `cluster-metrics-${randomUUID()}`;
      expect((await get(gatehouse.baseUrl, '/.well-known/jwks.json', { 'X-Request-Id': requestId })).status).toBe(200);
      servedBy.add(await pidServing(gatehouse, requestId));
    }
    // Each worker alone counted fewer than N: only the sum of both says N.
    expect([...servedBy].sort()).toEqual([...workerPids].sort());

    const scrapes: Array<Map<string, number>> = [];
    for (let k = 0; k < 6; k++) scrapes.push(await scrape());

    scrapes.forEach((series, k) => {
      expect({ scrape: k, jwks: series.get(JWKS_COUNT) }).toEqual({ scrape: k, jwks: n });
      // Each scrape is counted once it has finished: the earlier ones, by whichever worker took them.
      expect({ scrape: k, scrapes: series.get(SCRAPE_COUNT) ?? 0 }).toEqual({ scrape: k, scrapes: k });
      // One value per series: the workers' samples are added up, not listed side by side.
      const versions = [...series].filter(([name]) => name.startsWith('nodejs_version_info{'));
      expect(versions.map(([, value]) => value)).toEqual([1]);
    });
    for (let k = 1; k < scrapes.length; k++) {
      const decreased = [...scrapes[k - 1]!]
        .filter(([series]) => isCounted(series))
        .filter(([series, before]) => !((scrapes[k]!.get(series) ?? -1) >= before));
      expect({ scrape: k, decreased }).toEqual({ scrape: k, decreased: [] });
    }
  });

  it('when a worker does not answer, then a scrape of the other answers 503 UNAVAILABLE within the bound, and scrapes recover once it does', async () => {
    const [frozen] = workerPids as [number, number];
    const before = await scrape();

    process.kill(frozen, 'SIGSTOP');
    stopped.add(frozen);
    // Two connections at once: at least one goes to the worker that still runs (a frozen
    // worker takes at most one, as it never acknowledges it).
    const replies = [get(gatehouse.baseUrl, '/metrics'), get(gatehouse.baseUrl, '/metrics')];
    const refused = await Promise.race(replies);
    process.kill(frozen, 'SIGCONT');
    stopped.delete(frozen);
    await Promise.all(replies);

    expect(refused.status).toBe(503);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.headers['retry-after']).toBe('5');
    expect(JSON.parse(refused.text)).toMatchObject({ code: 'UNAVAILABLE', status: 503 });

    const after = await scrape();
    expect(after.get(JWKS_COUNT)).toBe(before.get(JWKS_COUNT));
    expect(after.get(SCRAPE_COUNT)!).toBeGreaterThan(before.get(SCRAPE_COUNT)!);
  });

  it('when a worker is killed and replaced, then the counts it had reported stay in the sums: no counter goes down', async () => {
    const [, victim] = workerPids as [number, number];
    const before = await scrape();

    process.kill(victim, 'SIGKILL');
    const replaced = await lineWhere(
      gatehouse,
      (l) => l.workerPid === victim && typeof l.replacementPid === 'number',
      `the death of worker ${victim}`,
    );
    await lineWhere(gatehouse, (l) => l.pid === replaced.replacementPid && l.msg === 'gatehouse listening', 'that the replacement listens');
    const scrapes = [await scrape(), await scrape()];

    for (const after of scrapes) {
      expect(after.get(JWKS_COUNT)).toBe(before.get(JWKS_COUNT));
      const decreased = [...before].filter(([series]) => isCounted(series)).filter(([series, was]) => !((after.get(series) ?? -1) >= was));
      expect(decreased).toEqual([]);
    }
  });
});
