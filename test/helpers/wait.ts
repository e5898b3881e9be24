/**
 * Polls a condition the test cannot be told of (what a server's backends are doing, whether a
 * restarted store answers yet), bounded, so a wrong guess fails with `what` rather than hanging.
 */
export async function waitUntil(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting (${timeoutMs} ms) until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
