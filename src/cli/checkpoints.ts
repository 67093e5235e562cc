/** The `audit:` settings of dlpctl.yaml turned into a Checkpointer (tunnels, and `store prune` after it prunes). */
import path from 'node:path';
import type { Checkpointer } from '../audit/checkpointer.js';
import type { ResolveSecretOptions } from '../config/index.js';
import type { Config } from '../config/types.js';
import type { SessionStore } from '../store/types.js';

/** Resolves the signing key (and checks it is an Ed25519 private key) and the copies' destinations. */
export async function configuredCheckpointer(config: Config | null, store: SessionStore, secretOpts: ResolveSecretOptions, onError: (m: string) => void): Promise<Checkpointer> {
  const [{ Checkpointer }, { resolveSecret }, { loadPrivateKey }] = await Promise.all([
    import('../audit/checkpointer.js'),
    import('../config/index.js'),
    import('../store/checkpoint.js'),
  ]);
  const a = config?.audit;
  let signingKey: string | undefined;
  if (a?.signingKey) {
    signingKey = await resolveSecret(a.signingKey, secretOpts);
    loadPrivateKey(signingKey);
  }
  const webhook = a?.checkpointWebhook ? await resolveSecret(a.checkpointWebhook, secretOpts) : undefined;
  return new Checkpointer({
    store,
    ...(signingKey !== undefined ? { signingKey } : {}),
    intervalMs: a?.checkpointInterval ?? 60_000,
    ...(a?.checkpointFile && config ? { file: path.resolve(path.dirname(config.file), a.checkpointFile) } : {}),
    ...(webhook !== undefined ? { webhook } : {}),
    onError,
  });
}
