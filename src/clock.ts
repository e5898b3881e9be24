/** The current time. Injected wherever time decides an outcome, so tests freeze it instead of sleeping. */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();

/** Whole seconds from `from` until `to`, never below zero. */
export function secondsUntil(to: Date, from: Date): number {
  return Math.max(0, Math.ceil((to.getTime() - from.getTime()) / 1000));
}

export function addSeconds(date: Date, seconds: number): Date {
  return new Date(date.getTime() + seconds * 1000);
}
