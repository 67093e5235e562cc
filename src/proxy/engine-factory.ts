/**
 * What `dlpctl connect` needs from each kind of tunnel, whatever its protocol: an engine for the shared
 * Tunnel lifecycle, the environment a child command gets, and a way to release what it holds. Each kind
 * (postgres/, http/, ssh/) exports one `create…Engine(options)` of this shape; `openEngine` picks it.
 */
import type { Config, Policy, Resource } from '../config/types.js';
import type { SessionStore, Identity } from '../store/types.js';
import type { TunnelAddress, TunnelEngine } from './tunnel.js';

export interface EngineFactoryOptions<R extends Resource = Resource> {
  resource: R;
  config: Config;
  /** The resource's policies, resolved (built-ins included). */
  policies: readonly Policy[];
  store: SessionStore;
  identity: Identity;
  reason?: string;
  /** Resolves a secret reference string of the config (never print what it returns). */
  resolve: (s: import('../config/types.js').SecretString) => Promise<string>;
  /** Called when a statement / request / command waits for approval. */
  onApprovalPending?: (id: string, text: string) => void;
  env: NodeJS.ProcessEnv;
  homedir: string;
}

export interface OpenedEngine {
  engine: TunnelEngine;
  /** Whether TLS toward local clients is configured (needed to bind a non-loopback address). */
  clientTls: boolean;
  /** Variables `connect -- cmd` gives the child. */
  childEnv(address: TunnelAddress, secret: string): Record<string, string>;
  /** One line for people: what the tunnel points at (no secrets). */
  describe: string;
  /**
   * For `connect` without a command: the lines for stdout (the URL first, then whatever else a client needs,
   * such as the HTTP tunnel's token) and a hint for people on stderr.
   */
  connectHelp(address: TunnelAddress, url: string, secret: string): { stdout: string[]; hint: string };
  close(): Promise<void>;
}

export async function openEngine(o: EngineFactoryOptions): Promise<OpenedEngine> {
  const r = o.resource;
  switch (r.kind) {
    case 'postgres': {
      const { createPostgresEngine } = await import('./postgres/factory.js');
      return createPostgresEngine({ ...o, resource: r });
    }
    case 'http': {
      const { createHttpEngine } = await import('./http/factory.js');
      return createHttpEngine({ ...o, resource: r });
    }
    case 'ssh': {
      const { createSshEngine } = await import('./ssh/factory.js');
      return createSshEngine({ ...o, resource: r });
    }
  }
}
