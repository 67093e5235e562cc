/**
 * The validated shape of `dlpctl.yaml` (DESIGN §3). The loader produces these values; everything else in
 * dlpctl reads them. Strings that may hold a secret reference (`${env:…}`, `${file:…}`, `${keychain:…}`)
 * are kept as `SecretString`: the raw text with its references unresolved, resolved only when a tunnel opens.
 */

/** Where a value came from in the config file, for error messages (1-based line and column). */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

/** A string from the config that may contain secret references. `raw` never leaves the process unresolved-or-not in output. */
export interface SecretString {
  readonly raw: string;
  /** The references inside `raw`, e.g. `{ kind: 'env', name: 'PROD_DB_PASSWORD' }`. */
  readonly refs: readonly SecretRef[];
}

export type SecretRefKind = 'env' | 'file' | 'keychain';
export interface SecretRef {
  kind: SecretRefKind;
  name: string;
  /** The exact text of the reference, e.g. `${env:PROD_DB_PASSWORD}`. */
  text: string;
}

export type Duration = number; // milliseconds
export type ByteSize = number; // bytes

export type RuleAction = 'allow' | 'deny' | 'approve' | 'mask' | 'limit';
export type MaskerName = 'redact' | 'partial' | 'hash' | 'null' | 'pseudonymize';

export const SQL_STATEMENT_KINDS = [
  'select', 'insert', 'update', 'delete', 'merge', 'copy_to', 'copy_to_program', 'copy_from', 'create', 'alter',
  'drop', 'truncate', 'grant', 'revoke', 'set', 'transaction', 'prepare', 'call', 'unknown',
] as const;
export type SqlStatementKind = (typeof SQL_STATEMENT_KINDS)[number];

export const SSH_CHANNEL_KINDS = ['exec', 'shell', 'sftp', 'forward'] as const;
export type SshChannelKind = (typeof SSH_CHANNEL_KINDS)[number];

export interface IdentityCondition {
  groups?: string[];
  subjects?: string[];
  kind?: 'human' | 'machine';
}

export interface SqlCondition {
  statements?: SqlStatementKind[];
  tables?: string[];
  functions?: string[];
  /** Regular expression source matched against the statement text. */
  text?: string;
  /** Matches UPDATE/DELETE statements without a WHERE clause when true. */
  noWhere?: boolean;
}

export interface HttpCondition {
  methods?: string[];
  /** Globs over the request path (`*` within a segment, `**` across segments). */
  paths?: string[];
  /** Regular expression source matched against headers and body text. */
  text?: string;
}

export interface SshCondition {
  /** Regular expression source matched against the command line. */
  command?: string;
  channels?: SshChannelKind[];
  /** Globs over the paths of files read by a download (sftp open for reading, scp -f sources). */
  paths?: string[];
}

export interface RuleCondition {
  identity?: IdentityCondition;
  sql?: SqlCondition;
  http?: HttpCondition;
  ssh?: SshCondition;
  /** Entity names (or the group `secrets`) that must be present in the content. */
  entities?: string[];
}

export interface Rule {
  name: string;
  when?: RuleCondition;
  action: RuleAction;
  message?: string;
  /** approve */
  approvers?: string[];
  minApprovals?: number;
  timeout?: Duration;
  /** mask */
  columns?: string[];
  entities?: string[];
  with?: MaskerName;
  keep?: number;
  restore?: boolean;
  /** limit */
  maxRows?: number;
  maxBytes?: ByteSize;
  maxBodyBytes?: ByteSize;
  ratePerMinute?: number;
  /** Where the rule was defined, for lint and error messages. */
  pos?: SourcePos;
}

export interface Policy {
  name: string;
  rules: Rule[];
  builtin?: boolean;
}

export type TlsMode = 'disable' | 'require' | 'verify-full';

interface ResourceBase {
  name: string;
  listen?: { host: string; port: number };
  /** `group:NAME`, `subject:SUB` or `user:NAME` entries; absent means anyone with a valid identity. */
  allow?: string[];
  policies: string[];
  default: 'allow' | 'deny';
  enforce: boolean;
  /** TLS toward the local clients (required when binding a non-loopback address). */
  serverTls?: { cert: SecretString; key: SecretString };
  access?: { approvers: string[]; maxDuration: Duration };
  pos?: SourcePos;
}

export interface PostgresResource extends ResourceBase {
  kind: 'postgres';
  /** postgres://user@host:port/db — never with a password (that goes in `password`). */
  target: string;
  password?: SecretString;
  tls: { mode: TlsMode; ca?: SecretString };
  /** Functions and procedures (globs over `name` or `schema.name`) known to be safe to call through the tunnel. */
  safeFunctions?: string[];
  /** What the store keeps of executions and results (defaults: 100 rows, 64 KiB per result, parameters kept). */
  record?: { rows?: number; bytes?: number; parameters?: boolean };
}

export interface HttpResource extends ResourceBase {
  kind: 'http';
  target: string;
  headers: Record<string, SecretString>;
  env: Record<string, string>;
  tls?: { ca?: SecretString; verify?: boolean };
}

export interface SshResource extends ResourceBase {
  kind: 'ssh';
  target: string;
  privateKey?: SecretString;
  password?: SecretString;
  hostKey?: string;
  /** Channels that share one upstream log-in (default 8; 1: one each). */
  shareUpstream?: number;
}

export type Resource = PostgresResource | HttpResource | SshResource;
export type ResourceKind = Resource['kind'];

export interface IdentityConfig {
  issuer: string;
  clientId: string;
  clientSecret?: SecretString;
  /** Sent by the device flow, refresh and revocation when the provider requires it of device clients (Google). */
  loginClientSecret?: SecretString;
  audience?: string;
  groupsClaim: string;
  scopes?: string[];
  algorithms?: string[];
  /** Milliseconds: a session ends this long after it started, whatever its credential says. */
  maxSessionDuration?: number;
  /** Milliseconds between two re-checks of an open tunnel's identity. */
  recheckInterval?: number;
  /** How the CI job's own OIDC token is found when none is given (identity/ci.ts). */
  workload?: WorkloadDetectConfig;
}

export interface WorkloadDetectConfig {
  /** false: never look for a CI token (only DLPCTL_TOKEN, --token-file, a login, client credentials). */
  detect: boolean;
  /** GitLab CI: the `id_tokens:` variable holding the job's token. */
  gitlabVariable?: string;
  /** Kubernetes: the projected service-account token file (relative paths: from the config's directory). */
  kubernetesTokenFile?: string;
}

export interface CustomDetector {
  name: string;
  pattern: string;
  validator?: string;
  context?: string[];
}

export interface PolicyTestCase {
  name: string;
  resource: string;
  as: { subject?: string; groups?: string[]; kind?: 'human' | 'machine' };
  sql?: string;
  http?: { method: string; path: string; headers?: Record<string, string>; body?: string };
  ssh?: { command?: string; channel?: SshChannelKind };
  expect: 'allow' | 'deny' | 'approve';
  rule?: string;
  /** Optional expected masked output of a sample. */
  sample?: string;
  masked?: string;
  pos?: SourcePos;
}

/** `audit:` in dlpctl.yaml: signed checkpoints of the session chains. */
export interface AuditConfig {
  signingKey?: SecretString;
  /** Milliseconds (default 60 s). */
  checkpointInterval?: number;
  checkpointFile?: string;
  checkpointWebhook?: SecretString;
}

export interface Config {
  version: 1;
  /** Absolute path of the file this config came from (or '<default>'). */
  file: string;
  identity?: IdentityConfig;
  store?: string;
  resources: Record<string, Resource>;
  policies: Record<string, Policy>;
  detectors: CustomDetector[];
  approvals?: { webhook?: SecretString };
  audit?: AuditConfig;
  tests: PolicyTestCase[];
}
