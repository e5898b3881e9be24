import { allPassed, type Check } from './checks';
import { percentile, type Stats } from './stats';

const MARK = { pass: '✓', fail: '✗', skip: '–' } as const;

/** `201×12 401×1`: the statuses of one kind, in order; `0` is shown as "no answer". */
export function formatStatuses(statuses: ReadonlyMap<number, number>): string {
  return [...statuses]
    .sort((a, b) => a[0] - b[0])
    .map(([status, count]) => `${status === 0 ? 'no answer' : status}×${count}`)
    .join(' ');
}

function ms(value: number): string {
  if (Number.isNaN(value)) return '–';
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

/** The requests table: one row per kind (in the order first sent), then all together. */
export function renderRequests(stats: Stats): string[] {
  const rows: string[][] = [['request', 'count', 'p50 ms', 'p99 ms', 'statuses']];
  const all: number[] = [];
  for (const [kind, { statuses, latencies }] of stats.kinds) {
    // Not all.push(...latencies): a long soak has more latencies than a call takes arguments.
    for (const latency of latencies) all.push(latency);
    rows.push([kind, String(latencies.length), ms(percentile(latencies, 50)), ms(percentile(latencies, 99)), formatStatuses(statuses)]);
  }
  rows.push(['all', String(all.length), ms(percentile(all, 50)), ms(percentile(all, 99)), '']);
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === 0 || column === row.length - 1 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** One line per check (`✓ title: numbers`), its failures indented below it. */
export function renderChecks(checks: readonly Check[]): string[] {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${MARK[c.status]} ${c.title}: ${c.detail}`);
    for (const more of c.more ?? []) lines.push(`    ${more}`);
  }
  return lines;
}

/** The whole report: what ran, the requests, the notes, the checks and the verdict. */
export function renderReport(input: { heading: string[]; stats: Stats; notes: string[]; checks: readonly Check[] }): string {
  const failed = input.checks.filter((c) => c.status === 'fail').length;
  const verdict = allPassed(input.checks)
    ? 'soak passed: every check held'
    : `soak FAILED: ${failed} check${failed === 1 ? '' : 's'} failed`;
  return [
    ...input.heading,
    '',
    ...renderRequests(input.stats),
    ...(input.notes.length > 0 ? ['', ...input.notes.map((note) => `note: ${note}`)] : []),
    '',
    'checks',
    ...renderChecks(input.checks),
    '',
    verdict,
  ].join('\n');
}
