/**
 * The renewal lock (src/identity/refresh-lock.ts): renewals of one login run one at a time, a lock left by
 * a process that is gone or by one that stopped long ago is taken over, a live holder makes a waiter give
 * up with a message naming the file, and where no lock can be created the renewal still runs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, utimes, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DlpctlError } from '../../src/errors.js';
import { withRefreshLock } from '../../src/identity/refresh-lock.js';

const ISSUER = 'https://idp.example';

async function lockFile(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.lock'));
  expect(names).toHaveLength(1);
  return path.join(dir, names[0]!);
}

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

describe('refresh lock', () => {
  it('runs renewals of one issuer one at a time, and removes its file afterwards', async () => {
    const dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'dlpctl-lock-')), 'state');
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        withRefreshLock(dir, ISSUER, async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 30));
          order.push(i);
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(order.sort()).toEqual([0, 1, 2, 3]);
    expect((await readdir(dir)).filter((n) => n.endsWith('.lock'))).toEqual([]);
  });

  it('takes over a lock whose process is gone, and one older than the stale limit', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-lock-'));
    const file = await withRefreshLock(dir, ISSUER, async () => lockFile(dir)); // learn the file's name
    await writeFile(file, `${deadPid()} planted`);
    expect(await withRefreshLock(dir, ISSUER, async () => 'dead owner taken over', { timeoutMs: 2000 })).toBe('dead owner taken over');
    await writeFile(file, `${process.pid} planted by a live process`);
    const old = new Date(Date.now() - 60_000);
    await utimes(file, old, old);
    expect(await withRefreshLock(dir, ISSUER, async () => 'stale lock taken over', { timeoutMs: 2000 })).toBe('stale lock taken over');
  });

  it('gives up on a live holder after the timeout, naming the file to remove', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-lock-'));
    let file = '';
    const err = await withRefreshLock(dir, ISSUER, async () => {
      file = await lockFile(dir);
      return withRefreshLock(dir, ISSUER, async () => 'never', { timeoutMs: 300 }).catch((e: unknown) => e);
    });
    expect(err).toBeInstanceOf(DlpctlError);
    expect((err as DlpctlError).message).toContain(`pid ${process.pid}`);
    expect((err as DlpctlError).message).toContain(file);
    expect((err as DlpctlError).exitCode).toBe(3);
  });

  it('runs unlocked where no lock file can be created', async () => {
    if (process.getuid?.() === 0) {
      // root writes into a read-only directory anyway: use a path under a regular file instead
      const base = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-lock-'));
      await writeFile(path.join(base, 'file'), '');
      expect(await withRefreshLock(path.join(base, 'file', 'state'), ISSUER, async () => 'ran')).toBe('ran');
      return;
    }
    const base = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-lock-'));
    await chmod(base, 0o500);
    expect(await withRefreshLock(path.join(base, 'state'), ISSUER, async () => 'ran')).toBe('ran');
    expect(await readFile(path.join(base, 'state'), 'utf8').catch(() => 'absent')).toBe('absent');
  });
});
