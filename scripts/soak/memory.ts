import type { SoakHttp } from './http';
import { parsePrometheus, type ProcessMemory, processMemory } from './prometheus';

/** A reading of /metrics, and when it was taken (ms). */
export interface TimedReading extends ProcessMemory {
  at: number;
}

/**
 * The readings taken from `from` to `to` (ms); when there are none, the last one before `to`
 * (a phase too short for a reading of its own is judged by the one just before it).
 */
export function readingsBetween(readings: readonly TimedReading[], from: number, to: number): TimedReading[] {
  const inside = readings.filter((r) => r.at >= from && r.at <= to);
  if (inside.length > 0) return inside;
  const before = readings.filter((r) => r.at <= to);
  return before.length > 0 ? [before.at(-1)!] : [];
}

/**
 * Reads the server's resident memory from /metrics once a second while the load runs. Under
 * garbage collection the resident memory of a loaded Node.js process is a sawtooth (on the
 * development machine between 150 and 210 MB, one tooth every 30-40 s): a single reading at
 * the end of a phase catches a random point of it, so the check compares the highest
 * readings over a window instead.
 */
export class MemorySampler {
  readonly readings: TimedReading[] = [];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly http: SoakHttp) {}

  start(): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), 1000);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const answer = await this.http.look('/metrics');
      if (answer.status !== 200 || typeof answer.body !== 'string') return;
      const memory = processMemory(parsePrometheus(answer.body));
      if (memory) this.readings.push({ ...memory, at: Date.now() });
    } finally {
      this.busy = false;
    }
  }
}
