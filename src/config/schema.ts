/**
 * The schema of dlpctl.yaml, defined once as data. The validator (`validate.ts`) walks it, and the man page
 * and Markdown reference (`docs.ts`) are rendered from it, so documentation and validation cannot drift.
 *
 * A node says what a value must be; an `object` lists its keys, a `map` has user-chosen keys, a `variant` is
 * an object whose allowed keys depend on a discriminator (`kind` of a resource). `onlyWhen` ties a key to a
 * sibling's value (`approvers` only when `action: approve`); `constraints` say which keys must appear together.
 */
import { SQL_STATEMENT_KINDS, SSH_CHANNEL_KINDS } from './types.js';
import type { RuleAction } from './types.js';

/** A key is only allowed (and its default only applied) when the sibling `key` has one of `values`. */
export interface FieldCondition {
  key: string;
  values: readonly string[];
}

interface NodeBase {
  doc: string;
  required?: boolean;
  /** Applied when the key is absent (and its `onlyWhen` holds). */
  default?: unknown;
  /** How the default is described when it is computed rather than fixed. */
  defaultDoc?: string;
  /** Never print this value in an error message (it may be or contain a credential). */
  sensitive?: boolean;
  onlyWhen?: readonly FieldCondition[];
}

export interface StringNode extends NodeBase {
  type: 'string';
  values?: readonly string[];
  /** May contain `${env:…}`/`${file:…}`/`${keychain:…}`; parsed into a `SecretString`. Implies `sensitive`. */
  secret?: boolean;
  format?: StringFormat;
  /** Applied before `values` is checked. */
  normalize?: 'upper' | 'lower';
}
export interface RegexNode extends NodeBase {
  type: 'regex';
}
export interface IntegerNode extends NodeBase {
  type: 'integer';
  min?: number;
  max?: number;
  values?: readonly number[];
}
export interface BooleanNode extends NodeBase {
  type: 'boolean';
}
export interface DurationNode extends NodeBase {
  type: 'duration';
  /** Smallest allowed value in milliseconds. */
  min?: number;
}
export interface SizeNode extends NodeBase {
  type: 'size';
  min?: number;
}
export interface ListNode extends NodeBase {
  type: 'list';
  items: SchemaNode;
  minItems?: number;
}
export interface ObjectConstraint {
  kind: 'anyOf' | 'exactlyOne';
  keys: readonly string[];
  when?: FieldCondition;
  /** The error when the constraint fails, e.g. "a mask rule needs `columns` or `entities`". */
  message: string;
}
export interface ObjectNode extends NodeBase {
  type: 'object';
  keys: Readonly<Record<string, SchemaNode>>;
  constraints?: readonly ObjectConstraint[];
}
export interface MapNode extends NodeBase {
  type: 'map';
  /** How the key is named in docs: `<name>` gives `resources.<name>.kind`. */
  keyName: string;
  keyFormat?: StringFormat;
  values: SchemaNode;
}
export interface VariantNode extends NodeBase {
  type: 'variant';
  discriminator: string;
  variants: Readonly<Record<string, ObjectNode>>;
}

export type SchemaNode =
  | StringNode
  | RegexNode
  | IntegerNode
  | BooleanNode
  | DurationNode
  | SizeNode
  | ListNode
  | ObjectNode
  | MapNode
  | VariantNode;

/** Named string formats; each has a doc line (for the man page) and a checker in `formats.ts`. */
export const STRING_FORMATS = {
  name: 'letters, digits, `_`, `.` and `-`, starting with a letter or digit',
  'issuer-url': 'an https:// URL (http:// only for localhost, 127.0.0.1 or [::1])',
  'postgres-url': '`postgres://USER@HOST[:PORT][/DATABASE]`, without a password',
  'http-url': 'an http:// or https:// URL without credentials',
  'webhook-url': 'an http:// or https:// URL; may contain secret references',
  'ssh-url': '`ssh://USER@HOST[:PORT]`',
  'store-url': '`sqlite:PATH[?sync=full][&timeout=5s]` or `postgres://USER@HOST[:PORT]/DATABASE[?timeout=5s]`; a password only as a secret reference',
  listen: '`HOST:PORT` (`[::1]:PORT` for IPv6); port 0 picks a free port',
  principal: '`group:NAME`, `subject:SUB` or `user:NAME`',
  'host-key': 'an OpenSSH fingerprint `SHA256:…` or a known_hosts line (`[HOST ]KEYTYPE BASE64`)',
  'path-glob': 'a glob over the request path starting with `/` (`*` within a segment, `**` across segments)',
  'file-glob': 'a glob over a file path on the SSH target (`*` within a segment, `**` across segments; `**/id_*` also matches relative paths)',
  column: '`[SCHEMA.]TABLE.COLUMN` or a shorter suffix; `*` matches any one part',
  'sql-name': 'a table or function name, optionally schema-qualified',
  'env-name': 'an environment variable name',
  'header-name': 'an HTTP header name',
  'env-template': 'text with the placeholders `{url}` (the tunnel URL) and `{token}` (the tunnel secret)',
  'dotted-path': 'a claim name or a dotted path into the token (`realm_access.roles`)',
  entity: 'a built-in entity name, the group `secrets`, or a custom detector name',
  'entity-name': 'lower-case letters, digits and `_`, starting with a letter',
  'http-method': 'an HTTP method (case-insensitive)',
  'non-empty': 'any non-empty text',
} as const;
export type StringFormat = keyof typeof STRING_FORMATS;

/** Policies dlpctl ships; a resource may list them without defining them (DESIGN §4). */
export const BUILTIN_POLICY_NAMES: ReadonlySet<string> = new Set(['recommended']);

/** Entity group names a rule may use besides single entity names. */
export const ENTITY_GROUP_NAMES: ReadonlySet<string> = new Set(['secrets']);

export const RULE_ACTIONS: readonly RuleAction[] = ['allow', 'deny', 'approve', 'mask', 'limit'];
export const MASKER_NAMES = ['redact', 'partial', 'hash', 'null', 'pseudonymize'] as const;
export const TLS_MODES = ['disable', 'require', 'verify-full'] as const;
export const JWS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'] as const;

// ── building blocks ─────────────────────────────────────────────────────────────────────────────────────────

const str = (doc: string, extra: Omit<StringNode, 'type' | 'doc'> = {}): StringNode => ({ type: 'string', doc, ...extra });
const secret = (doc: string, extra: Omit<StringNode, 'type' | 'doc' | 'secret'> = {}): StringNode => ({ type: 'string', doc, secret: true, sensitive: true, ...extra });
const list = (doc: string, items: SchemaNode, extra: Omit<ListNode, 'type' | 'doc' | 'items'> = {}): ListNode => ({ type: 'list', doc, items, ...extra });
const strList = (doc: string, format?: StringFormat, extra: Omit<ListNode, 'type' | 'doc' | 'items'> = {}): ListNode =>
  list(doc, format === undefined ? str('') : str('', { format }), extra);
const enumList = (doc: string, values: readonly string[], normalize?: 'upper' | 'lower'): ListNode =>
  list(doc, normalize === undefined ? str('', { values }) : str('', { values, normalize }));
const obj = (doc: string, keys: Record<string, SchemaNode>, extra: Omit<ObjectNode, 'type' | 'doc' | 'keys'> = {}): ObjectNode => ({ type: 'object', doc, keys, ...extra });

const onlyAction = (...actions: RuleAction[]): readonly FieldCondition[] => [{ key: 'action', values: actions }];

// ── resources ───────────────────────────────────────────────────────────────────────────────────────────────

const commonResourceKeys: Record<string, SchemaNode> = {
  kind: str('What the target speaks; decides which other keys are allowed.', { required: true, values: ['postgres', 'http', 'ssh'] }),
  listen: str('Local address of the tunnel.', { format: 'listen', default: '127.0.0.1:0' }),
  allow: strList('Who may open the tunnel; absent means anyone with a valid identity.', 'principal'),
  policies: strList('Policies applied to everything through the tunnel, by name (`recommended` is built in).', 'name', { default: ['recommended'] }),
  default: str('Decision when no allow/deny/approve rule matches.', { values: ['allow', 'deny'], default: 'allow' }),
  enforce: { type: 'boolean', doc: 'false: observe only; record what would have been denied, held or limited (as `observe`) and deny, hold or cut nothing. Masking still applies.', default: true },
  serverTls: obj('TLS toward local clients; required when `listen` binds a non-loopback address.', {
    cert: secret('PEM certificate chain (usually `${file:…}`).', { required: true }),
    key: secret('PEM private key (usually `${file:…}`).', { required: true }),
  }),
  access: obj('Just-in-time access: opening the tunnel needs an approval.', {
    approvers: strList('Who may approve opening the tunnel.', 'principal', { minItems: 1, required: true }),
    maxDuration: { type: 'duration', doc: 'How long an approved tunnel may stay open.', default: 3_600_000, defaultDoc: '1h', min: 1000 },
  }),
};

const postgresResource = obj('A PostgreSQL server.', {
  ...commonResourceKeys,
  target: str('The server and the user dlpctl logs in as.', { required: true, format: 'postgres-url', sensitive: true }),
  password: secret('The password injected upstream; use a secret reference.'),
  tls: obj('TLS toward the server.', {
    mode: str('Whether and how to verify TLS toward the server.', {
      values: TLS_MODES,
      defaultDoc: '`require`, or `disable` when the target host is loopback',
    }),
    ca: secret('PEM CA bundle for verify-full (usually `${file:…}`).'),
  }),
  safeFunctions: strList(
    'Functions and procedures known to be safe to call through the tunnel, as `name` or `schema.name` globs (`app.fmt_*`). ' +
      'Built-ins are safe already, except those that act beyond the statement (other sessions, configuration, server files, ' +
      'replication, statistics, setval); a user function is not until listed, and the built-in `recommended` ' +
      'policy denies calling it (rule `no-unsafe-calls`).',
    'sql-name',
  ),
  record: obj('What the session store keeps of each execution and its result, besides the masked statement text.', {
    rows: { type: 'integer', doc: 'The first rows of each result, as the client saw them (masked); 0 keeps none.', min: 0, default: 100 },
    bytes: { type: 'size', doc: 'At most this much of each result is kept (masked text); 0 keeps none.', min: 0, default: 65_536, defaultDoc: '64KiB' },
    parameters: { type: 'boolean', doc: 'Keep the bound parameters of each execution (masked by the detectors); false keeps none.', default: true },
  }),
});

const httpResource = obj('An HTTP(S) API.', {
  ...commonResourceKeys,
  target: str('Base URL of the API.', { required: true, format: 'http-url', sensitive: true }),
  headers: {
    type: 'map',
    doc: 'Headers injected into every upstream request (credentials go here).',
    keyName: '<header>',
    keyFormat: 'header-name',
    values: secret('Header value; may contain secret references.'),
    default: {},
  },
  env: {
    type: 'map',
    doc: 'Environment given to the command of `dlpctl connect … -- cmd`.',
    keyName: '<variable>',
    keyFormat: 'env-name',
    values: str('Value with `{url}`/`{token}` placeholders; never a secret reference.', { format: 'env-template' }),
    default: {},
  },
  tls: obj('TLS toward the API.', {
    ca: secret('PEM CA bundle (usually `${file:…}`).'),
    verify: { type: 'boolean', doc: 'Verify the server certificate.', default: true },
  }),
});

const sshResource = obj('An SSH server.', {
  ...commonResourceKeys,
  target: str('The server and the user dlpctl logs in as.', { required: true, format: 'ssh-url', sensitive: true }),
  privateKey: secret('Private key injected upstream (usually `${file:…}`).'),
  password: secret('Password injected upstream; use a secret reference.'),
  hostKey: str('Pinned host key; a mismatch refuses the connection.', { format: 'host-key' }),
  shareUpstream: {
    type: 'integer',
    doc: 'Channels (of any sessions) that share one log-in to the target; 1 gives each channel its own. Keep it at or under the server\'s MaxSessions (OpenSSH: 10).',
    min: 1,
    max: 64,
    default: 8,
  },
});

// ── policies ────────────────────────────────────────────────────────────────────────────────────────────────

const whenNode = obj('Conditions, all of which must match (each list inside is any-of). Without `when` the rule matches everything.', {
  identity: obj('Who is connected.', {
    groups: strList('Any of these groups.'),
    subjects: strList('Any of these subjects.'),
    kind: str('People (device login) or workloads (CI tokens).', { values: ['human', 'machine'] }),
  }),
  sql: obj('PostgreSQL statements.', {
    statements: enumList('Statement kinds, counted by their most consequential effect.', SQL_STATEMENT_KINDS),
    tables: strList('Tables read or written (case-insensitive, with or without schema).', 'sql-name'),
    functions: strList('Functions called (case-insensitive, with or without schema).', 'sql-name'),
    text: { type: 'regex', doc: 'Regular expression matched against the statement text.' },
    noWhere: { type: 'boolean', doc: 'true: UPDATE/DELETE without a WHERE clause.' },
  }),
  http: obj('HTTP requests.', {
    methods: enumList('Request methods.', HTTP_METHODS, 'upper'),
    paths: strList('Request path globs.', 'path-glob'),
    text: { type: 'regex', doc: 'Regular expression matched against headers and body.' },
  }),
  ssh: obj('SSH channels.', {
    command: {
      type: 'regex',
      doc: 'Regular expression matched against the command line and against each simple command the shell would run after quote removal (`bash -c`, `;`, `&&`, `|`, `$( )` resolved); a line that cannot be resolved statically is denied while a deny or approve rule with a command applies.',
    },
    channels: enumList('Channel kinds.', SSH_CHANNEL_KINDS),
    paths: strList('Globs over the paths of files a download reads (sftp open for reading, the sources of `scp -f`); `.` and `..` resolved. Other conditions of such a rule see the read, not the command.', 'file-glob'),
  }),
  entities: strList('The content contains any of these detected entities.', 'entity'),
});

const ruleNode = obj(
  'A rule: when it matches, its action applies.',
  {
    name: str('Unique within the policy; named in every decision.', { required: true, format: 'non-empty' }),
    when: whenNode,
    action: str('What a match does.', { required: true, values: RULE_ACTIONS }),
    message: str('Shown to the client with a denial.'),
    approvers: strList('Who may approve (approve only).', 'principal', { onlyWhen: onlyAction('approve') }),
    minApprovals: { type: 'integer', doc: 'Approvals needed (approve only).', min: 1, default: 1, onlyWhen: onlyAction('approve') },
    timeout: { type: 'duration', doc: 'How long to wait for approval before denying (approve only).', min: 1000, onlyWhen: onlyAction('approve') },
    columns: strList('Result columns to mask (mask only).', 'column', { onlyWhen: onlyAction('mask') }),
    entities: strList('Detected entities to mask wherever they appear (mask only).', 'entity', { onlyWhen: onlyAction('mask') }),
    with: str('Masker (mask only).', { values: MASKER_NAMES, default: 'redact', onlyWhen: onlyAction('mask') }),
    keep: {
      type: 'integer',
      doc: 'Characters left visible by the partial masker.',
      min: 0,
      default: 4,
      onlyWhen: [...onlyAction('mask'), { key: 'with', values: ['partial'] }],
    },
    restore: {
      type: 'boolean',
      doc: 'HTTP responses: mask them first (pseudonymize masks as redact there), then put back the originals of the placeholders this session\'s own requests were given; nothing else is restored (pseudonymize only).',
      default: false,
      onlyWhen: [...onlyAction('mask'), { key: 'with', values: ['pseudonymize'] }],
    },
    maxRows: { type: 'integer', doc: 'Rows per statement (limit only).', min: 1, onlyWhen: onlyAction('limit') },
    maxBytes: { type: 'size', doc: 'Result bytes per statement (limit only).', min: 1, onlyWhen: onlyAction('limit') },
    maxBodyBytes: { type: 'size', doc: 'HTTP body bytes (limit only).', min: 1, onlyWhen: onlyAction('limit') },
    ratePerMinute: { type: 'integer', doc: 'Statements, requests or commands per minute (limit only).', min: 1, onlyWhen: onlyAction('limit') },
  },
  {
    constraints: [
      { kind: 'anyOf', keys: ['columns', 'entities'], when: { key: 'action', values: ['mask'] }, message: 'a mask rule needs `columns` or `entities`' },
      {
        kind: 'anyOf',
        keys: ['maxRows', 'maxBytes', 'maxBodyBytes', 'ratePerMinute'],
        when: { key: 'action', values: ['limit'] },
        message: 'a limit rule needs one of `maxRows`, `maxBytes`, `maxBodyBytes`, `ratePerMinute`',
      },
    ],
  },
);

// ── tests ───────────────────────────────────────────────────────────────────────────────────────────────────

const testNode = obj(
  'A policy test case, run by `dlpctl policy test`. Exactly one of `sql`, `http`, `ssh`.',
  {
    name: str('Unique test name.', { required: true, format: 'non-empty' }),
    resource: str('The resource whose policies are tested.', { required: true }),
    as: obj('The identity the test runs as.', {
      subject: str('Subject.'),
      groups: strList('Groups.'),
      kind: str('Identity kind.', { values: ['human', 'machine'] }),
    }, { default: {} }),
    sql: str('A SQL message (for postgres resources).'),
    http: obj('An HTTP request (for http resources).', {
      method: str('Method.', { required: true, format: 'http-method', normalize: 'upper' }),
      path: str('Path.', { required: true, format: 'path-glob' }),
      headers: { type: 'map', doc: 'Request headers.', keyName: '<header>', keyFormat: 'header-name', values: str('Header value.') },
      body: str('Request body.'),
    }),
    ssh: obj('An SSH channel (for ssh resources).', {
      command: str('Command line.'),
      channel: str('Channel kind.', { values: SSH_CHANNEL_KINDS, default: 'exec' }),
    }),
    expect: str('Expected decision.', { required: true, values: ['allow', 'deny', 'approve'] }),
    rule: str('Expected deciding rule.'),
    sample: str('Sample content to run through the masking rules.'),
    masked: str('Expected masked form of `sample`.'),
  },
  { constraints: [{ kind: 'exactlyOne', keys: ['sql', 'http', 'ssh'], message: 'a test needs exactly one of `sql`, `http`, `ssh`' }] },
);

// ── root ────────────────────────────────────────────────────────────────────────────────────────────────────

export const CONFIG_SCHEMA: ObjectNode = obj('dlpctl.yaml', {
  version: { type: 'integer', doc: 'Schema version.', required: true, values: [1] },
  identity: obj('OIDC identity provider. Without it the identity is the local OS user, marked unverified.', {
    issuer: str('Issuer URL.', { required: true, format: 'issuer-url' }),
    clientId: str('OAuth client id of dlpctl.', { required: true, format: 'non-empty' }),
    clientSecret: secret('Client secret for the client-credentials grant; use a secret reference.'),
    loginClientSecret: secret('Client secret that `dlpctl login` sends with its device-flow, refresh and revocation requests, for providers that require one even from device clients (Google: the secret of the "TVs and Limited Input devices" client); a secret reference.'),
    audience: str('Expected `aud` of workload tokens presented by CI.'),
    groupsClaim: str('Claim holding the groups.', { format: 'dotted-path', default: 'groups' }),
    scopes: strList('Scopes requested at login.', 'non-empty'),
    algorithms: enumList('Accepted token signature algorithms.', JWS_ALGORITHMS),
    maxSessionDuration: { type: 'duration', doc: 'Upper bound on any session, whatever its credential says; unset: no bound.', min: 1000 },
    recheckInterval: { type: 'duration', doc: 'How often an open tunnel re-checks its identity with the provider (refresh, token file re-read); a disabled account ends its sessions within this time.', default: 45_000, defaultDoc: '45s', min: 5000 },
    workload: obj('Finding the CI job\'s own OIDC token when no DLPCTL_TOKEN, --token-file or login is there: GitHub Actions, GitLab CI, CircleCI, Buildkite, Kubernetes (docs/ci.md).', {
      detect: { type: 'boolean', doc: 'Look for the CI system\'s token; false: only DLPCTL_TOKEN, --token-file, a login or client credentials.', default: true },
      gitlabVariable: str('GitLab CI: the `id_tokens:` variable that holds the job\'s token (as `--id-token-var`); default `DLPCTL_ID_TOKEN`, then `CI_JOB_JWT_V2`.', { format: 'env-name' }),
      kubernetesTokenFile: str('Kubernetes: the projected service-account token file; default `/var/run/secrets/tokens/dlpctl` when it exists. The pod\'s default token (`/var/run/secrets/kubernetes.io/serviceaccount/token`) is used only when named here.', { format: 'non-empty' }),
    }),
  }),
  store: str('Session store URL. Parameters: `?sync=full` (SQLite: fsync every commit, survives power loss) and `?timeout=5s` (either engine: a statement whose event the store has not committed within this time is denied with STORE_TIMEOUT, and the session goes on; default 5s).', { format: 'store-url', secret: true, sensitive: true, defaultDoc: '`sqlite:$XDG_DATA_HOME/dlpctl/store.db`' }),
  resources: { type: 'map', doc: 'Targets dlpctl opens tunnels to, by name.', keyName: '<name>', keyFormat: 'name', default: {}, values: {
    type: 'variant',
    doc: 'A resource.',
    discriminator: 'kind',
    variants: { postgres: postgresResource, http: httpResource, ssh: sshResource },
  } },
  policies: { type: 'map', doc: 'Named lists of rules.', keyName: '<name>', keyFormat: 'name', default: {}, values: list('The rules of the policy, in order.', ruleNode) },
  detectors: list('Custom entity detectors, usable by name in `entities`.', obj('A custom detector.', {
    name: str('Entity name.', { required: true, format: 'entity-name' }),
    pattern: { type: 'regex', doc: 'Regular expression that finds a candidate.', required: true },
    validator: str('Built-in check a candidate must pass (for example `luhn`).'),
    context: strList('Words that must appear near the match.', 'non-empty'),
  }), { default: [] }),
  approvals: obj('Approval notifications.', {
    webhook: secret('URL POSTed for each new approval request.', { format: 'webhook-url' }),
  }),
  audit: obj('Integrity of the audit trail: signed checkpoints of the session chains (see `dlpctl audit verify --public-key`).', {
    signingKey: secret('Ed25519 private key (PEM) that signs checkpoints, from `dlpctl audit keygen`; a secret reference such as `${file:/etc/dlpctl/audit.key}` or `${keychain:dlpctl/audit-key}`. Keep it away from the store and from agents. Unset: checkpoints are written unsigned.'),
    checkpointInterval: { type: 'duration', doc: 'How often a running tunnel checkpoints the chain heads (also at every session end).', default: 60_000, defaultDoc: '60s', min: 1000 },
    checkpointFile: str('Append every checkpoint as one JSON line to this file as well (an append-only place outside the store: `chattr +a`, a log shipper, a WORM mount); `audit verify --checkpoints FILE` reads it. A relative path is relative to this file\'s directory.', { format: 'non-empty' }),
    checkpointWebhook: secret('URL POSTed with every checkpoint (JSON), for a copy outside the store.', { format: 'webhook-url' }),
  }),
  tests: list('Policy tests.', testNode, { default: [] }),
});

// ── walking ─────────────────────────────────────────────────────────────────────────────────────────────────

export interface SchemaKeyEntry {
  /** e.g. `resources.<name>.tls.mode`, `policies.<name>[].when.sql.statements`. */
  path: string;
  node: SchemaNode;
  /** For keys under a variant: the discriminator value (`postgres`). */
  variant?: string;
  /** The top-level key this path belongs to. */
  section: string;
}

/** Every key path in the schema, depth first, each variant's keys listed under that variant. */
export function schemaKeyPaths(root: ObjectNode = CONFIG_SCHEMA): SchemaKeyEntry[] {
  const out: SchemaKeyEntry[] = [];
  const visit = (node: SchemaNode, path: string, section: string, variant: string | undefined): void => {
    switch (node.type) {
      case 'object':
        for (const [k, child] of Object.entries(node.keys)) {
          const p = path === '' ? k : `${path}.${k}`;
          const e: SchemaKeyEntry = { path: p, node: child, section: section === '' ? k : section };
          if (variant !== undefined) e.variant = variant;
          out.push(e);
          visit(child, p, section === '' ? k : section, variant);
        }
        return;
      case 'list':
        visit(node.items, `${path}[]`, section, variant);
        return;
      case 'map':
        visit(node.values, `${path}.${node.keyName}`, section, variant);
        return;
      case 'variant':
        for (const [name, v] of Object.entries(node.variants)) visit(v, path, section, name);
        return;
      default:
        return;
    }
  };
  visit(root, '', '', undefined);
  return out;
}

/** A short type description of a node for docs: `string`, `list of string`, `duration`, `one of a, b`. */
export function describeType(node: SchemaNode): string {
  switch (node.type) {
    case 'string':
      if (node.values !== undefined) return `one of ${node.values.join(', ')}`;
      return node.secret === true ? 'string (secret references allowed)' : 'string';
    case 'regex':
      return 'regular expression';
    case 'integer':
      return node.values !== undefined ? `integer (${node.values.join(', ')})` : 'integer';
    case 'boolean':
      return 'boolean';
    case 'duration':
      return 'duration';
    case 'size':
      return 'size';
    case 'list':
      return `list of ${describeType(node.items)}`;
    case 'object':
      return 'mapping';
    case 'map':
      return `mapping of ${node.keyName} to ${describeType(node.values)}`;
    case 'variant':
      return `mapping, by ${node.discriminator}`;
  }
}
