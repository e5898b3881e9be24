/** Just enough of the Prometheus text format (0.0.4) to read Gatehouse's /metrics. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition; comments, blank and malformed lines are skipped. */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/.exec(line);
    if (!match) continue;
    const value = parseValue(match[3]!);
    if (value === undefined) continue;
    samples.push({ name: match[1]!, labels: parseLabels(match[2] ?? ''), value });
  }
  return samples;
}

function parseValue(text: string): number | undefined {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  const value = Number(text);
  return Number.isNaN(value) ? undefined : value;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const match of text.matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

/** The first sample of `name` (without labels, or with any), if present. */
export function sampleValue(samples: readonly Sample[], name: string): number | undefined {
  return samples.find((sample) => sample.name === name)?.value;
}

/** What one scrape of /metrics says about the process that answered it. */
export interface ProcessMemory {
  /**
   * Which process answered: its start time (`process_start_time_seconds`). Under
   * WEB_CONCURRENCY each scrape reaches one worker, and this tells the workers apart.
   */
  instance: string;
  /** `process_resident_memory_bytes`. */
  residentBytes: number;
}

/** The resident memory of the process that answered, or undefined when /metrics does not have it. */
export function processMemory(samples: readonly Sample[]): ProcessMemory | undefined {
  const residentBytes = sampleValue(samples, 'process_resident_memory_bytes');
  if (residentBytes === undefined) return undefined;
  const started = sampleValue(samples, 'process_start_time_seconds');
  return { instance: started === undefined ? 'the server' : String(started), residentBytes };
}

/** The sizes of the server's in-process stores, when /metrics exposes them. */
export interface StoreSizes {
  /** Live nonces held, summed over the samples of the metric. */
  nonces?: { metric: string; entries: number };
  /** Rate-limit keys held, summed over limiters. */
  limiterKeys?: { metric: string; entries: number };
}

/**
 * Gauges of the in-process stores, found by name: a `gatehouse_…nonce…` gauge for the nonce
 * store, a `gatehouse_rate_limit_…(keys|entries|clients)` gauge for the limiters' counters.
 * Counters (`…_total`) are not sizes and are skipped.
 */
export function storeSizes(samples: readonly Sample[]): StoreSizes {
  const sum = (pattern: RegExp) => {
    const matching = samples.filter((sample) => pattern.test(sample.name) && !sample.name.endsWith('_total'));
    if (matching.length === 0) return undefined;
    return { metric: matching[0]!.name, entries: matching.reduce((total, sample) => total + sample.value, 0) };
  };
  const nonces = sum(/^gatehouse_\w*nonce\w*$/);
  const limiterKeys = sum(/^gatehouse_rate_limit\w*_(keys|entries|clients)$/);
  return { ...(nonces ? { nonces } : {}), ...(limiterKeys ? { limiterKeys } : {}) };
}
