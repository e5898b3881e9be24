/** The SQLSTATE and constraint a write fails with; undefined when it succeeds. */
export async function violationOf(write: Promise<unknown>): Promise<{ code: unknown; constraint: unknown } | undefined> {
  try {
    await write;
    return undefined;
  } catch (error) {
    const { code, constraint } = error as { code?: unknown; constraint?: unknown };
    return { code, constraint };
  }
}
