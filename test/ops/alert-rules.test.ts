import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { APP_ROUTES } from '../../src/app.routes';
import { createHarness, type Harness } from '../helpers/harness';

// The alerting rules operators load (ops/prometheus): promtool checks their syntax and runs
// their unit tests on synthetic series, and every metric and label they read must be one the
// service exports, so that renaming a metric breaks this suite instead of silencing an alert.

const RULES_DIR = path.resolve(__dirname, '../../ops/prometheus');
const RULES = path.join(RULES_DIR, 'gatehouse.rules.yml');
const RULE_TESTS = path.join(RULES_DIR, 'gatehouse.rules.test.yml');
const PROMTOOL = process.env.PROMTOOL ?? 'promtool';

const promtoolFound = spawnSync(PROMTOOL, ['--version'], { stdio: 'ignore' }).error === undefined;
const REQUIRED = (process.env.GATEHOUSE_REQUIRE_SUITES ?? '')
  .split(',')
  .map((name) => name.trim())
  .includes('promtool');
const SKIP_REASON =
  promtoolFound || REQUIRED
    ? undefined
    : `${PROMTOOL} not found (Debian's prometheus package; GATEHOUSE_REQUIRE_SUITES=promtool fails instead)`;
if (SKIP_REASON) process.stderr.write(`alert rules suite skipped: ${SKIP_REASON}\n`);
const describeIfPromtool = SKIP_REASON ? describe.skip : describe;

/** Runs promtool; its whole output goes into a failure's message. */
function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync(PROMTOOL, args, { cwd: RULES_DIR, encoding: 'utf8', timeout: 60_000 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const rulesText = readFileSync(RULES, 'utf8');
const testsText = readFileSync(RULE_TESTS, 'utf8');
const alertNames = [...rulesText.matchAll(/^\s*- alert: (\w+)$/gm)].map((match) => match[1]!);
/** The PromQL of every rule: the block scalar or the one line after `expr:`. */
const expressions = [...rulesText.matchAll(/^( *)expr: (?:\|\n((?:\1 {2}.*\n)+)|(.+)\n)/gm)].map((match) => match[2] ?? match[3]!);

/** Labels Prometheus adds (target labels) or a histogram's buckets carry, not the service. */
const NOT_EXPORTED_LABELS = new Set(['job', 'instance', 'le']);
/** Series Prometheus makes itself for every target. */
const PROMETHEUS_SERIES = new Set(['up']);

/** Every series name of a scrape, with the label names its samples carry. */
function seriesOf(text: string): Map<string, Set<string>> {
  const series = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    // A labelled metric nothing has observed yet has its TYPE line but no series.
    const declared = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) /.exec(line);
    if (declared && !series.has(declared[1]!)) series.set(declared[1]!, new Set<string>());
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? \S+$/.exec(line);
    if (!match) continue;
    const labels = series.get(match[1]!) ?? new Set<string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_]\w*)="/g)) labels.add(pair[1]!);
    series.set(match[1]!, labels);
  }
  return series;
}

describeIfPromtool(`alert rules in ops/prometheus${SKIP_REASON ? ` (skipped: ${SKIP_REASON})` : ''}`, () => {
  beforeAll(() => {
    if (!promtoolFound) throw new Error(`GATEHOUSE_REQUIRE_SUITES includes promtool, but ${PROMTOOL} is missing`);
  });

  it('when promtool checks the rules, then every rule is valid', () => {
    const { status, output } = promtool('check', 'rules', RULES);
    expect({ status, output }).toEqual({
      status: 0,
      output: expect.stringContaining(`SUCCESS: ${alertNames.length} rules found`) as string,
    });
  });

  it("when promtool runs the rules' unit tests, then they pass", () => {
    const { status, output } = promtool('test', 'rules', RULE_TESTS);
    expect({ status, output }).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') as string });
  });

  it('when the unit tests are read, then each alert has a case where it fires and one where it stays silent', () => {
    expect(alertNames.length).toBeGreaterThan(0);
    // Each `alertname:` line is followed by its `exp_alerts:`, either `[]` or a list.
    const cases = [...testsText.matchAll(/alertname: (\w+)\n\s+exp_alerts:(.*)\n/g)].map((match) => ({
      alert: match[1]!,
      fires: match[2]!.trim() !== '[]',
    }));
    for (const alert of alertNames) {
      expect({ alert, fires: cases.some((c) => c.alert === alert && c.fires) }).toEqual({ alert, fires: true });
      expect({ alert, silent: cases.some((c) => c.alert === alert && !c.fires) }).toEqual({ alert, silent: true });
    }
    // And no case tests an alert that does not exist.
    expect(cases.map((c) => c.alert).filter((alert) => !alertNames.includes(alert))).toEqual([]);
  });

  describe('against the metrics the service exports', () => {
    let h: Harness;
    let exported: Map<string, Set<string>>;

    beforeAll(async () => {
      h = await createHarness({ env: { HMAC_CLIENTS: `app:${'s'.repeat(32)}` } });
      // Give the labelled metrics a series each: a login, a refused signature.
      await request(h.app).post('/auth/login').send({ email: 'nobody@example.com', password: 'not the password' });
      await request(h.app)
        .get('/users/me')
        .set({ 'X-Client-Id': 'app', 'X-Timestamp': '1', 'X-Nonce': 'n'.repeat(16), 'X-Signature': `sha256=${'0'.repeat(64)}` });
      const res = await request(h.app).get('/metrics').expect(200);
      exported = seriesOf(res.text);
    });
    afterAll(async () => {
      await h.close();
    });

    it('when the rules name a gatehouse metric, in expressions or guidance, then the service exports it', () => {
      const named = new Set([...rulesText.matchAll(/\bgatehouse_[a-z0-9_]+/g)].map((match) => match[0]));
      expect(named.size).toBeGreaterThan(5);
      expect([...named].filter((name) => !exported.has(name))).toEqual([]);
    });

    it('when an expression selects a series, then the metric is exported with every label it matches on', () => {
      expect(expressions).toHaveLength(alertNames.length);
      const selectors = expressions.flatMap((expr) => [...expr.matchAll(/\b([a-z_][a-z0-9_]*)\{([^}]*)\}/g)]);
      expect(selectors.length).toBeGreaterThan(0);
      const unknown: string[] = [];
      for (const [, name, matchers] of selectors) {
        if (PROMETHEUS_SERIES.has(name!)) continue;
        const labels = exported.get(name!);
        if (!labels) {
          unknown.push(name!);
          continue;
        }
        for (const [, label] of matchers!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) {
          if (!NOT_EXPORTED_LABELS.has(label!) && !labels.has(label!)) unknown.push(`${name}{${label}}`);
        }
      }
      expect(unknown).toEqual([]);
    });

    it('when an expression names a route, then it is a declared route template', () => {
      const declared = new Set(
        Object.values(APP_ROUTES).flatMap((tables) =>
          Object.values(tables).flatMap((table) => table.map((route: { path: string }) => route.path)),
        ),
      );
      const named = expressions.flatMap((expr) =>
        [...expr.matchAll(/route(?:=|!=|=~|!~)"([^"]*)"/g)].flatMap((match) => match[1]!.split('|')),
      );
      expect(named).toContain('/auth/login');
      expect(named.filter((route) => !declared.has(route))).toEqual([]);
    });
  });
});
