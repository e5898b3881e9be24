import { rmSync } from 'node:fs';
import { PGLITE_TEMPLATES_ENV } from '../helpers/databases';

/** Removes the embedded database templates global setup made. */
export default function globalTeardown(): void {
  const dir = process.env[PGLITE_TEMPLATES_ENV];
  if (dir) rmSync(dir, { recursive: true, force: true });
}
