/** `openEngine` for http resources: resolve the injected headers and TLS material, build the engine. */
import type { HttpResource } from '../../config/types.js';
import type { EngineFactoryOptions, OpenedEngine } from '../engine-factory.js';
import { HttpEngine, type HttpEngineOptions } from './engine.js';

export type { HttpEngineOptions } from './engine.js';
export { HttpEngine } from './engine.js';

/** Tuning the CLI does not set (timeouts, caps); tests and benchmarks pass them. */
export type HttpEngineTuning = Pick<HttpEngineOptions, 'connectTimeoutMs' | 'headersTimeoutMs' | 'bodyTimeoutMs' | 'clientHeadersTimeoutMs' | 'inspectCapBytes' | 'recordBodyChars' | 'now'>;

export async function createHttpEngine(o: EngineFactoryOptions<HttpResource>, tuning: HttpEngineTuning = {}): Promise<OpenedEngine & { engine: HttpEngine }> {
  const r = o.resource;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(r.headers)) headers[name] = await o.resolve(value);
  const ca = r.tls?.ca ? await o.resolve(r.tls.ca) : undefined;
  const serverTls = r.serverTls ? { cert: await o.resolve(r.serverTls.cert), key: await o.resolve(r.serverTls.key) } : undefined;
  const engine = new HttpEngine({
    resource: r,
    headers,
    ...(ca ? { ca } : {}),
    ...(serverTls ? { serverTls } : {}),
    policies: o.policies,
    store: o.store,
    identity: o.identity,
    ...(o.reason ? { reason: o.reason } : {}),
    customDetectors: o.config.detectors,
    ...(o.onApprovalPending ? { onApprovalPending: o.onApprovalPending } : {}),
    ...tuning,
  });
  const t = new URL(r.target);
  return {
    engine,
    clientTls: Boolean(serverTls),
    childEnv: (a, secret) => engine.childEnv(a, secret),
    describe: `http → ${t.origin}${t.pathname === '/' ? '' : t.pathname}`,
    // The token is the tunnel's own credential (like the password in a PostgreSQL tunnel's URL), never the
    // injected one: without it on stdout, a tunnel opened without a command could not be used at all.
    connectHelp: (_a, url, secret) => ({
      stdout: [url, secret],
      hint: `send requests to the URL with the token (the second line): curl -H "Authorization: Bearer $TOKEN" ${url}/…`,
    }),
    close: () => engine.close(),
  };
}
