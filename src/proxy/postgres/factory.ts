/** `openEngine` for postgres resources: resolve the credential and TLS material, build the engine. */
import type { PostgresResource } from '../../config/types.js';
import type { EngineFactoryOptions, OpenedEngine } from '../engine-factory.js';
import { PostgresEngine } from './engine.js';
import { parseTargetUrl } from './upstream.js';

export async function createPostgresEngine(o: EngineFactoryOptions<PostgresResource>): Promise<OpenedEngine> {
  const r = o.resource;
  const password = r.password ? await o.resolve(r.password) : undefined;
  const ca = r.tls.ca ? await o.resolve(r.tls.ca) : undefined;
  const serverTls = r.serverTls ? { cert: await o.resolve(r.serverTls.cert), key: await o.resolve(r.serverTls.key) } : undefined;
  const t = parseTargetUrl(r.target);
  const engine = new PostgresEngine({
    resource: r,
    target: { ...t, ...(password !== undefined ? { password } : {}), tls: { mode: r.tls.mode, ...(ca ? { ca } : {}) } },
    policies: o.policies,
    store: o.store,
    identity: o.identity,
    ...(o.reason ? { reason: o.reason } : {}),
    ...(serverTls ? { serverTls } : {}),
    customDetectors: o.config.detectors,
    ...(o.onApprovalPending ? { onApprovalPending: o.onApprovalPending } : {}),
  });
  return {
    engine,
    clientTls: Boolean(serverTls),
    childEnv: (a, secret) => engine.childEnv(a, secret),
    describe: `postgres → ${t.host}:${t.port}/${t.database}`,
    connectHelp: (_a, url) => ({ stdout: [url], hint: 'connect with: psql "$URL"' }),
    close: () => engine.close(),
  };
}
