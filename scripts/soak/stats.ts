/** What the soak sent and what came back, by kind of request. */

/** One kind of request's tally. */
export interface KindStats {
  /** Answers by status; `0` is no answer (connection refused or reset, timeout). */
  statuses: Map<number, number>;
  /** Latencies in ms of every answer and of every attempt that got none. */
  latencies: number[];
}

/** Of `total` things that should have held, how many did (`same`). */
export interface Tally {
  same: number;
  total: number;
}

/** An answer that was not one the soak expected, kept for the report. */
export interface Unexpected {
  kind: string;
  status: number;
  /** The problem `code`, or what went wrong without an answer. */
  code: string;
}

/** The nearest-rank percentile `p` (0–100) of `values`, which need not be sorted; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export class Stats {
  readonly kinds = new Map<string, KindStats>();
  readonly unexpected: Unexpected[] = [];
  /** Times (ms) at which a signed request was sent: how many nonces the server may hold now. */
  readonly signedAt: number[] = [];

  record(kind: string, status: number, latencyMs: number): void {
    let stats = this.kinds.get(kind);
    if (stats === undefined) this.kinds.set(kind, (stats = { statuses: new Map(), latencies: [] }));
    stats.statuses.set(status, (stats.statuses.get(status) ?? 0) + 1);
    stats.latencies.push(latencyMs);
  }

  /** An answer the soak did not expect (a 5xx, a lost session, a wrong user…). */
  recordUnexpected(kind: string, status: number, code: string): void {
    this.unexpected.push({ kind, status, code });
  }

  get total(): number {
    let total = 0;
    for (const stats of this.kinds.values()) for (const count of stats.statuses.values()) total += count;
    return total;
  }

  /** Answers with a status from 500 to 599, by kind. */
  serverErrors(): Map<string, number> {
    const errors = new Map<string, number>();
    for (const [kind, stats] of this.kinds) {
      let count = 0;
      for (const [status, n] of stats.statuses) if (status >= 500) count += n;
      if (count > 0) errors.set(kind, count);
    }
    return errors;
  }

  /** How many answers had `status`, over every kind. */
  countOf(status: number): number {
    let count = 0;
    for (const stats of this.kinds.values()) count += stats.statuses.get(status) ?? 0;
    return count;
  }

  /** Signed requests sent at or after `since` (ms). */
  signedSince(since: number): number {
    let count = 0;
    for (let i = this.signedAt.length - 1; i >= 0 && this.signedAt[i]! >= since; i--) count++;
    return count;
  }
}

/** An answer as the report names it: `401 SESSION_REVOKED`, or `no answer` for status 0. */
export function answerLabel(status: number, code: string | undefined): string {
  return `${status === 0 ? 'no answer' : status}${code ? ` ${code}` : ''}`;
}

/** `unexpected` grouped: `me 401 SESSION_REVOKED ×3`, most frequent first. */
export function summarizeUnexpected(unexpected: readonly Unexpected[], max = 6): string[] {
  const counts = new Map<string, number>();
  for (const { kind, status, code } of unexpected) {
    const key = `${kind} ${answerLabel(status, code)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const lines = [...counts].sort((a, b) => b[1] - a[1]).map(([key, count]) => `${key} ×${count}`);
  return lines.length > max ? [...lines.slice(0, max), `… and ${lines.length - max} more`] : lines;
}
