/**
 * One renewal of a login at a time across dlpctl processes. Providers rotate refresh tokens and treat a
 * second use of one as theft: they revoke the whole login. Two tunnels (or a tunnel and `dlpctl approve`)
 * that read the same stored refresh token and renew it at once would both be logged out. Renewals
 * therefore take a lock file next to the token file, `refresh-<issuer hash>.lock` (0600, holding the
 * owner's pid), and re-read the stored login once they hold it.
 *
 * A lock whose owner is gone (no such pid) or older than 30 s is stale and taken over. Where no lock file
 * can be created (a read-only state directory) the renewal goes ahead unlocked, as before.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DlpctlError } from '../errors.js';

export interface RefreshLockOptions {
  /** Give up waiting for another process after this long (default 20 s). */
  timeoutMs?: number;
  /** A lock older than this is stale (default 30 s; a renewal takes one round trip to the provider). */
  staleMs?: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `fn` holding the renewal lock for `issuer` in `dir`. */
export async function withRefreshLock<T>(dir: string, issuer: string, fn: () => Promise<T>, opts: RefreshLockOptions = {}): Promise<T> {
  const file = path.join(dir, `refresh-${createHash('sha256').update(issuer).digest('hex').slice(0, 16)}.lock`);
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const staleMs = opts.staleMs ?? 30_000;
  const token = `${process.pid} ${randomUUID()}`;
  const deadline = Date.now() + timeoutMs;
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch {
    return fn();
  }
  for (;;) {
    try {
      const fh = await open(file, 'wx', 0o600);
      try {
        await fh.writeFile(token);
      } finally {
        await fh.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return fn();
    }
    const [st, owner] = await Promise.all([stat(file).catch(() => null), readFile(file, 'utf8').catch(() => '')]);
    if (st === null) continue; // released meanwhile
    const pid = Number(owner.split(' ')[0]);
    if ((Number.isInteger(pid) && pid > 0 && !alive(pid)) || Date.now() - st.mtimeMs > staleMs) {
      await rm(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new DlpctlError(
        'AUTH_FAILED',
        `another dlpctl process (pid ${Number.isInteger(pid) ? pid : 'unknown'}) has been renewing the login at ${issuer} for over ${Math.round(timeoutMs / 1000)} s; if none is running, remove ${file}`,
      );
    }
    await sleep(20 + Math.floor(Math.random() * 40));
  }
  try {
    return await fn();
  } finally {
    if ((await readFile(file, 'utf8').catch(() => '')) === token) await rm(file, { force: true });
  }
}
