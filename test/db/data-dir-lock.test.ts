import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataDirInUseError, lockDataDir } from '../../src/db/data-dir-lock';

describe('lockDataDir', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-lock-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('when the folder is free, then it is locked with our pid and released on demand', async () => {
    const release = lockDataDir(dir);
    expect(await fs.readFile(path.join(dir, 'gatehouse.lock'), 'utf8')).toBe(String(process.pid));
    release();
    await expect(fs.stat(path.join(dir, 'gatehouse.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('when another live process holds it, then it refuses with a message naming that process', async () => {
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      await fs.writeFile(path.join(dir, 'gatehouse.lock'), String(other.pid));
      expect(() => lockDataDir(dir)).toThrow(DataDirInUseError);
      expect(() => lockDataDir(dir)).toThrow(new RegExp(`in use by process ${other.pid}`));
    } finally {
      other.kill();
      await once(other, 'exit');
    }
  });

  it('when the process that held it has died, then the stale lock is taken over', async () => {
    const other = spawn(process.execPath, ['-e', '']);
    await once(other, 'exit');
    await fs.writeFile(path.join(dir, 'gatehouse.lock'), String(other.pid));
    const release = lockDataDir(dir);
    expect(await fs.readFile(path.join(dir, 'gatehouse.lock'), 'utf8')).toBe(String(process.pid));
    release();
  });
});
