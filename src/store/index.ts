/**
 * The session store (DESIGN §5): `openStore(url)` returns a `SessionStore` backed by SQLite (`sqlite:PATH`)
 * or PostgreSQL (`postgres://…`). The PostgreSQL engine and the `pg` module load lazily, so commands that
 * never touch a shared store start fast.
 */
import os from 'node:os';
import { parseStoreUrl } from './url.js';
import { SqliteStore } from './sqlite.js';
import type { OpenStoreOptions, SessionStore } from './types.js';

export type * from './types.js';
export { MAINTENANCE_SESSION_ID, zeroCounters } from './types.js';
export { canonicalJson, chainHash, GENESIS_HASH } from './chain.js';
export { defaultStoreUrl, parseStoreUrl, redactStoreUrl } from './url.js';
export { APPROVAL_ID_ALPHABET, newApprovalId, newSessionId, normalizeApprovalId } from './ids.js';

/**
 * Opens (and by default migrates) the store at `url`. Throws DlpctlError STORE_URL for an unsupported URL,
 * and the other STORE_* codes when the store cannot be opened.
 */
export async function openStore(url: string, opts: OpenStoreOptions & { homedir?: string } = {}): Promise<SessionStore> {
  const parsed = parseStoreUrl(url, opts.homedir ?? os.homedir());
  let store: SessionStore;
  if (parsed.engine === 'sqlite') {
    store = SqliteStore.open(parsed.path, parsed.display, {
      ...opts,
      sqliteSynchronous: opts.sqliteSynchronous ?? parsed.synchronous ?? 'normal',
      ...(opts.timeoutMs === undefined && parsed.timeoutMs !== undefined ? { timeoutMs: parsed.timeoutMs } : {}),
    });
  } else {
    const { PostgresStore } = await import('./postgres.js');
    store = await PostgresStore.open(parsed.url, parsed.display, {
      ...opts,
      ...(opts.timeoutMs === undefined && parsed.timeoutMs !== undefined ? { timeoutMs: parsed.timeoutMs } : {}),
    });
  }
  try {
    if (opts.migrate !== false) await store.migrate();
    if (opts.threads && opts.threads !== 'none' && store instanceof SqliteStore) await store.startThreads(opts.threads);
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}
