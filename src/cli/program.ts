/**
 * The command tree. Only commander is loaded here: each action imports its command module when it runs,
 * so `dlpctl --help` and `dlpctl --version` open nothing else. The same tree generates man/dlpctl.1.
 *
 * Only commands that work are registered here.
 */
import { Command, Option } from 'commander';
import type { CommandContext } from './context.js';

import { VERSION } from './version.js';

export { VERSION };

/** A command's work: takes its parsed options/arguments and the context, returns an exit code. */
export type Runner = (ctx: CommandContext) => Promise<number>;
export type ActionWrapper = (cmd: Command, work: (ctx: CommandContext) => Promise<number>) => Promise<void>;

const jsonDocs = new WeakMap<Command, string>();
const exampleDocs = new WeakMap<Command, string[]>();

/** Documents the `--json` output of a command, in --help and in the man page. */
function jsonOutput(cmd: Command, text: string): Command {
  jsonDocs.set(cmd, text);
  cmd.addHelpText('after', `\nJSON output (--json):\n${indent(text)}`);
  return cmd;
}

function examples(cmd: Command, lines: string[]): Command {
  exampleDocs.set(cmd, lines);
  cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}`);
  return cmd;
}

export function commandDocs(cmd: Command): { json?: string; examples?: string[] } {
  return { json: jsonDocs.get(cmd), examples: exampleDocs.get(cmd) };
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

export const EXIT_CODES: readonly [number, string][] = [
  [0, 'success'],
  [1, 'error (the message says what happened and what to do)'],
  [2, 'usage or configuration error'],
  [3, 'authentication required or failed'],
  [4, 'denied by policy'],
  [5, 'approval denied or timed out'],
];

export const ENVIRONMENT: readonly [string, string][] = [
  ['DLPCTL_CONFIG', 'configuration file, as --config'],
  ['DLPCTL_STORE', 'session store URL, as --store (secret references allowed; never passed to the command of connect -- cmd)'],
  ['DLPCTL_TOKEN', 'a workload identity token (for CI); without it dlpctl looks for the CI system\'s own OIDC token'],
  ['ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN', 'GitHub Actions: where dlpctl requests the job\'s OIDC token (permissions: id-token: write)'],
  ['DLPCTL_ID_TOKEN, CI_JOB_JWT_V2', 'GitLab CI (GITLAB_CI): the id_tokens: variable read, unless --id-token-var names another'],
  ['CIRCLE_OIDC_TOKEN_V2, CIRCLE_OIDC_TOKEN', 'CircleCI (CIRCLECI): the job\'s OIDC token'],
  ['BUILDKITE', 'Buildkite: dlpctl runs buildkite-agent oidc request-token'],
  ['NO_COLOR', 'disables colour, as --no-color'],
  ['XDG_CONFIG_HOME', 'where dlpctl.yaml is looked up last ($XDG_CONFIG_HOME/dlpctl/dlpctl.yaml)'],
  ['XDG_DATA_HOME', 'where the embedded store lives ($XDG_DATA_HOME/dlpctl/store.db)'],
];

export function buildProgram(wrap: ActionWrapper): Command {
  const program = new Command('dlpctl');
  program
    .description(
      'Data-loss-prevention connection broker: policed, masked and recorded tunnels to PostgreSQL, HTTP APIs and SSH hosts for AI agents and CI jobs.',
    )
    .version(VERSION, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show help for a command')
    .option('--config <file>', 'configuration file (default: $DLPCTL_CONFIG, ./dlpctl.yaml, $XDG_CONFIG_HOME/dlpctl/dlpctl.yaml)')
    .option('--store <url>', 'session store: sqlite:PATH or postgres://…, or a secret reference such as ${file:PATH} holding it (default: $DLPCTL_STORE, the config, the user setting, sqlite:$XDG_DATA_HOME/dlpctl/store.db)')
    .option('--json', 'machine-readable output (documented per command)', false)
    .option('--no-color', 'no colour (also NO_COLOR)')
    .addOption(new Option('-v, --verbose', 'more detail on errors (stack traces); repeat for more').argParser((_v, prev: number) => prev + 1).default(0))
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      `\nExit codes:\n${EXIT_CODES.map(([c, d]) => `  ${c}  ${d}`).join('\n')}\n\nRun 'dlpctl COMMAND --help' for a command's options; 'man dlpctl' for the whole manual.`,
    );

  // ── config ────────────────────────────────────────────────────────────────
  const config = program.command('config').description('validate the configuration; read and change user settings');
  jsonOutput(
    config
      .command('validate')
      .description('check dlpctl.yaml strictly: every problem with file:line:col and key path; exit 2 when invalid')
      .argument('[file]', 'file to check (default: the configuration lookup order)')
      .action(async (file: string | undefined, _o, cmd: Command) =>
        wrap(cmd, async (ctx) => (await import('./commands/config.js')).runConfigValidate(ctx, { file })),
      ),
    `{"file": "/abs/dlpctl.yaml", "valid": true, "resources": 3, "policies": 4, "tests": 1}\n` +
      `invalid: {"file": "…", "valid": false, "errors": ["dlpctl.yaml:12:11: resources.db.tls.mode: …"]} (exit 2)`,
  );
  jsonOutput(
    config
      .command('get')
      .description('print a user setting, or all of them')
      .argument('[key]', 'setting name: store, issuer, color, output')
      .action(async (key: string | undefined, _o, cmd: Command) =>
        wrap(cmd, async (ctx) => (await import('./commands/config.js')).runConfigGet(ctx, { key })),
      ),
    `{"key": "store", "value": "sqlite:/home/me/.local/share/dlpctl/store.db"} or, without KEY, {"store": …, "issuer": …, …}`,
  );
  examples(
    config
      .command('set')
      .description('change a user setting (kept by conf in the user config directory)')
      .argument('<key>', 'setting name: store, issuer, color, output')
      .argument('<value>', 'new value')
      .action(async (key: string, value: string, _o, cmd: Command) =>
        wrap(cmd, async (ctx) => (await import('./commands/config.js')).runConfigSet(ctx, { key, value })),
      ),
    ['dlpctl config set store postgres://dlp@audit-db:5432/dlpctl', 'dlpctl config set color never'],
  );

  // ── resources ────────────────────────────────────────────────────────────
  jsonOutput(
    program
      .command('resources')
      .description('list the configured resources: name, kind, target (without secrets), listen address, policies')
      .action(async (_o, cmd: Command) => wrap(cmd, async (ctx) => (await import('./commands/resources.js')).runResources(ctx))),
    `[{"id": "postgres-prod", "name": "postgres-prod", "kind": "postgres", "target": "postgres://app_reader@db.internal:5432/app",\n` +
      `  "listen": "127.0.0.1:5433", "policies": ["recommended", "pii"], "default": "allow", "enforce": true}]`,
  );

  // ── connect ──────────────────────────────────────────────────────────────
  examples(
    jsonOutput(
      program
        .command('connect')
        .description('open a local tunnel to RESOURCE (policy, masking, recording); with -- COMMAND, run it against the tunnel and exit with its status. Without a command it prints the tunnel URL on stdout (http: then the tunnel token on a second line) and how to connect on stderr')
        .argument('<resource>', 'a resource name from dlpctl.yaml (see dlpctl resources)')
        .argument('[command...]', 'after --: the command to run with the tunnel in its environment (postgres: DATABASE_URL, PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE; http: the resource\'s env map; ssh: DLPCTL_SSH_PORT, DLPCTL_SSH)')
        .option('--port <n>', 'local port (default: the resource\'s listen port, else a free port)')
        .option('--bind <addr>', 'local address (default 127.0.0.1; another address needs serverTls)')
        .option('--reason <text>', 'why this session is opened; stored on the session and shown to approvers')
        .option('--token-file <file>', 'a workload identity token (e.g. the CI system\'s OIDC ID token), re-read before it expires')
        .option('--id-token-var <name>', 'GitLab CI: the id_tokens: variable holding the job\'s OIDC token (default: identity.workload.gitlabVariable, DLPCTL_ID_TOKEN, CI_JOB_JWT_V2)')
        .option('--no-wait', 'for a resource with access approval: file the request, print its id and exit 5 instead of waiting (once approved, the next connect uses it)')
        .option('--request <id>', 'for a resource with access approval: use this approved access request (once); without it, connect uses an approved one of yours, else files a new one')
        .action(async (resource: string, command: string[], o: { port?: string; bind?: string; reason?: string; tokenFile?: string; idTokenVar?: string; wait?: boolean; request?: string }, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/connect.js')).runConnect(ctx, { resource, command, ...o })),
        ),
      `one NDJSON event per line on stdout:\n` +
        `{"type":"listening","resource":"db","kind":"postgres","host":"127.0.0.1","port":5433,"url":"postgres://…","time":"…"}\n` +
        `(an http tunnel's listening event also has "token": the value for Authorization: Bearer)\n` +
        `{"type":"session_start","resource":"db","sessionId":"…","client":"127.0.0.1:50412","time":"…"}\n` +
        `{"type":"decision","resource":"db","sessionId":"…","action":"deny","rule":"recommended/no-drop","kinds":["drop"],"summary":"DROP TABLE t","time":"…"}\n` +
        `{"type":"session_end","resource":"db","sessionId":"…","outcome":"ok","time":"…"}`,
    ),
    ['dlpctl connect postgres-prod', "dlpctl connect postgres-prod --reason 'weekly report' -- npm run agent", 'dlpctl connect postgres-prod -- psql -c "select count(*) from orders"'],
  );

  // ── demo ─────────────────────────────────────────────────────────────────
  examples(
    program
      .command('demo')
      .description('start an embedded PostgreSQL with a fake shop and a tunnel in front of it (masking, a denied DROP, a row limit); --script runs a short session and shows the audit trail')
      .option('--script', 'run the scripted session, print what the agent saw and the audit trail, then exit')
      .option('--port <n>', 'the tunnel\'s local port (default: a free one); its files are removed on every exit, Ctrl-C included')
      .action(async (o: { script?: boolean; port?: string }, cmd: Command) => wrap(cmd, async (ctx) => (await import('./commands/demo.js')).runDemo(ctx, o))),
    ['dlpctl demo --script', 'dlpctl demo    # then: psql "$URL"', 'dlpctl demo --port 6543'],
  );

  // ── mask ─────────────────────────────────────────────────────────────────
  examples(
    jsonOutput(
      program
        .command('mask')
        .description('mask personal data and secrets: reads stdin, writes masked stdout (streaming, constant memory)')
        .option('--entities <list>', 'comma-separated entities or groups (e.g. email,credit_card,secrets); default: the config\'s mask rules, else all')
        .option('--with <masker>', 'redact | partial | hash | null | pseudonymize (default redact)')
        .option('--keep <n>', 'characters the partial masker keeps (default 4)')
        .option('--json-input', 'input is JSON or NDJSON: mask string values, keep the document valid')
        .option('--report', 'write the findings (entity, span, masker; never the value) as JSON on stderr')
        .action(async (o: { entities?: string; with?: string; keep?: string; jsonInput?: boolean; report?: boolean }, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/mask.js')).runMask(ctx, o)),
        ),
      `{"masked": "…", "findings": [{"entity": "email", "start": 10, "end": 27, "masker": "redact"}], "counts": {"email": 1}}\n` +
        `(reads the whole input; without --json the output streams)`,
    ),
    ['agent | dlpctl mask > public.log', 'dlpctl mask --entities email,phone --with partial < prompts.txt', 'dlpctl mask --json-input --report < events.ndjson > clean.ndjson'],
  );

  // ── policy ───────────────────────────────────────────────────────────────
  const policy = program.command('policy').description('lint, test and explain policy before it reaches production');
  jsonOutput(
    policy
      .command('lint')
      .description('schema and semantic checks of the policies: unknown entities, rules that never match or are shadowed, approve rules without approvers, unsafe regexes; exit 2 on errors')
      .action(async (_o, cmd: Command) => wrap(cmd, async (ctx) => (await import('./commands/policy.js')).runPolicyLint(ctx))),
    `{"file": "…", "errors": 1, "warnings": 1, "findings": [{"severity": "error", "pos": {"file": "…", "line": 40, "col": 9}, "path": "policies.pii[1].entities[0]", "message": "…"}]}`,
  );
  examples(
    jsonOutput(
      policy
        .command('test')
        .description('run the tests: cases of the config (and of extra files): expected decision, deciding rule, masked sample; exit 1 on any failure')
        .argument('[file...]', 'extra YAML files with a list of test cases (or tests: [...])')
        .action(async (files: string[], _o, cmd: Command) => wrap(cmd, async (ctx) => (await import('./commands/policy.js')).runPolicyTest(ctx, { files }))),
      `{"passed": 3, "failed": 1, "results": [{"name": "…", "pass": false, "expected": "deny", "actual": "allow", "expectedRule": "no-ddl", "actualRule": null, "diff": ["…"], "at": "dlpctl.yaml:120:5"}]}`,
    ),
    ['dlpctl policy test', 'dlpctl policy test --json extra-cases.yaml'],
  );
  examples(
    jsonOutput(
      policy
        .command('explain')
        .description('show the decision for one statement, request or command, what the classifier saw, and why each rule matched or not')
        .requiredOption('--resource <name>', 'the resource whose policies apply')
        .option('--as <subject>', 'identity subject (default anonymous)')
        .option('--group <group>', 'a group of the identity (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
        .option('--machine', 'the identity is a machine (CI), not a person')
        .option('--sql <text>', 'a SQL text (several statements allowed)')
        .option('--http <request>', 'an HTTP request as "METHOD PATH"')
        .option('--body <text>', 'with --http: the request body')
        .option('--ssh <command>', 'an SSH command line')
        .option('--channel <kind>', 'with --ssh: exec (default), shell, sftp or forward')
        .action(async (o: Omit<import('./commands/policy.js').ExplainOptions, 'resource'> & { resource: string }, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/policy.js')).runPolicyExplain(ctx, o)),
        ),
      `{"decision": {"action": "deny", "rule": {"policy": "recommended", "rule": "no-drop-truncate"}, "message": "…", …},\n` +
        ` "classification": {"statements": [{"kind": "drop", "tables": ["t"], "functions": [], …}]},\n` +
        ` "rules": [{"policy": "…", "rule": "…", "action": "deny", "result": "matched", "reasons": [], "decided": true}]}`,
    ),
    ["dlpctl policy explain --resource postgres-prod --group analytics-agents --sql 'DELETE FROM orders'"],
  );

  // ── store ────────────────────────────────────────────────────────────────
  const store = program.command('store').description('manage the session store (SQLite file or shared PostgreSQL)');
  jsonOutput(
    store
      .command('migrate')
      .description('create or upgrade the store schema (also done automatically on first use)')
      .action(async (_o, cmd: Command) => wrap(cmd, async (ctx) => (await import('./commands/store.js')).runStoreMigrate(ctx))),
    `{"engine": "sqlite", "url": "sqlite:/…/store.db", "schemaVersion": 1}`,
  );
  jsonOutput(
    store
      .command('info')
      .description('show the store engine, location (no password), schema version and record counts')
      .action(async (_o, cmd: Command) => wrap(cmd, async (ctx) => (await import('./commands/store.js')).runStoreInfo(ctx))),
    `{"engine": "postgres", "url": "postgres://dlp@audit-db:5432/dlpctl", "schemaVersion": 1, "binaryVersion": 1,\n` +
      ` "sessions": 12, "events": 3400, "approvals": 2}`,
  );
  examples(
    jsonOutput(
      store
        .command('prune')
        .description('delete whole sessions that ended longer ago than DURATION, and record that it did')
        .requiredOption('--older-than <duration>', 'age, e.g. 90d, 12h, 30m')
        .action(async (o: { olderThan: string }, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/store.js')).runStorePrune(ctx, { olderThan: o.olderThan })),
        ),
      `{"sessionsRemoved": 3, "eventsRemoved": 120, "olderThan": "90d"}`,
    ),
    ['dlpctl store prune --older-than 90d'],
  );

  // ── approvals (approvals, approve, deny) ────────────────────────────────
  examples(
    jsonOutput(
      program
        .command('approvals')
        .description('list pending approval requests (age, requester, resource, reason, masked text); on a terminal, a live screen: arrows move, a approves, d denies (asks a reason), enter shows detail, q quits')
        .option('--watch', 'without a terminal screen: print the list again whenever it changes, until interrupted')
        .option('--all', 'include decided, consumed and expired requests (table and JSON)')
        .action(async (o: { watch?: boolean; all?: boolean }, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/approvals.js')).runApprovals(ctx, o)),
        ),
      `[{"id": "K7QF2M", "state": "pending", "resource": "postgres-prod", "sessionId": "01J…", "requester": {"subject": "ci-bot", "verified": true},\n` +
        ` "reason": "nightly cleanup", "rule": "prod/approve-deletes", "text": "DELETE FROM orders WHERE id = ?", "sha256": "…",\n` +
        ` "approvers": ["group:dba"], "minApprovals": 1, "approvedBy": [], "decisions": [], "createdAt": "…", "expiresAt": "…",\n` +
        ` "ageSeconds": 42, "expiresInSeconds": 858}]\n` +
        `with --watch: one such array per line, printed again on every change`,
    ),
    ['dlpctl approvals', 'dlpctl approvals --json | jq -r ".[].id"', 'dlpctl approvals --watch'],
  );
  examples(
    jsonOutput(
      program
        .command('approve')
        .description('approve a pending request: releases exactly that statement, once. The approver must match one of the rule\'s approvers (group:NAME needs a verified identity in that group; user:NAME / subject:NAME match the subject); the requester cannot approve their own request; expired requests cannot be approved. Exit 4 when not allowed to decide, 5 when the request is expired or already decided')
        .argument('<id>', 'the request id, e.g. K7QF2M (case does not matter)')
        .option('--comment <text>', 'recorded with the decision')
        .action(async (id: string, o: { comment?: string }, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/approvals.js')).runApprove(ctx, { id, ...o })),
        ),
      `the request as in dlpctl approvals --json, after the decision, plus {"approvals": 1, "required": 1}`,
    ),
    ['dlpctl approve K7QF2M', "dlpctl approve k7qf2m --comment 'checked with the owner'"],
  );
  examples(
    jsonOutput(
      program
        .command('deny')
        .description('deny a pending request; the waiting statement fails with the reason. On an approved or in-use access grant: revoke it (the tunnel using it ends its sessions). Same approver rules as approve')
        .argument('<id>', 'the request id')
        .requiredOption('--reason <text>', 'why; shown to the requester and recorded')
        .action(async (id: string, o: { reason: string }, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/approvals.js')).runDeny(ctx, { id, ...o })),
        ),
      `the request as in dlpctl approvals --json, with "state": "denied"`,
    ),
    ["dlpctl deny K7QF2M --reason 'use the staging copy'"],
  );

  // ── audit ────────────────────────────────────────────────────────────────
  const audit = program.command('audit').description('search, show, replay, export, follow and verify the recorded sessions');
  examples(
    jsonOutput(
      audit
        .command('search')
        .description('find statements, HTTP requests and SSH commands, newest first, with session, time, identity, decision and rule')
        .argument('[text]', 'words that must all appear in the statement, request or command: e.g. "customers email"; end a word with * to match it as a prefix (cust*)')
        .option('--resource <name>', 'only this resource')
        .option('--identity <subject>', 'only sessions of this subject or email')
        .option('--since <time>', 'from this time: a duration ago (30m, 24h, 7d) or an ISO time')
        .option('--until <time>', 'before this time: a duration ago or an ISO time')
        .option('--decision <d>', 'allow, deny, approve or observe')
        .option('--kind <kind>', 'resource kind: postgres, http or ssh')
        .option('--limit <n>', 'at most N results (default 100)')
        .action(async (text: string | undefined, o: Omit<import('./commands/audit.js').AuditSearchCliOptions, 'text'>, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/audit.js')).runAuditSearch(ctx, { ...o, ...(text !== undefined ? { text } : {}) })),
        ),
      `[{"id": "01J…:7", "sessionId": "01J…", "seq": 7, "time": "2025-01-02T03:04:05.678Z", "resource": "postgres-prod", "kind": "postgres",\n` +
        `  "identity": "ci-bot", "verified": true, "type": "query", "text": "SELECT email FROM customers WHERE id = 42",\n` +
        `  "decision": "allow", "rule": null}]`,
    ),
    ['dlpctl audit search customers --since 24h', 'dlpctl audit search --decision deny --resource postgres-prod --json', 'dlpctl audit search --identity ci-bot --since 2025-01-01 --until 2025-01-08'],
  );
  jsonOutput(
    audit
      .command('show')
      .description('one session\'s timeline: identity, reason, every statement with its decision and rule, masking counts, rows and bytes, errors, approvals')
      .argument('<session>', 'session id (from audit search)')
      .action(async (session: string, _o, cmd: Command) => wrap(cmd, async (ctx) => (await import('./commands/audit.js')).runAuditShow(ctx, { session }))),
    `{"session": {"id": "…", "resource": "…", "kind": "postgres", "identity": {…}, "startedAt": "…", "counters": {…}},\n` +
      ` "events": [stored events, as in audit export], "approvals": [{"id": "K7QF2M", "state": "consumed", "rule": "…", "text": "…", "decisions": […]}]}`,
  );
  examples(
    audit
      .command('replay')
      .description('play a session back: SSH sessions as terminal output with the original timing, PostgreSQL and HTTP sessions as a paced transcript')
      .argument('<session>', 'session id')
      .option('--speed <x>', 'speed factor (2 = twice as fast) or max (no waiting); default 1')
      .option('--max-idle <duration>', 'longest pause between two events, after the speed factor (default 2s)')
      .action(async (session: string, o: { speed?: string; maxIdle?: string }, cmd: Command) =>
        wrap(cmd, async (ctx) => (await import('./commands/audit.js')).runAuditReplay(ctx, { session, ...o })),
      ),
    ['dlpctl audit replay 01JABCDEF… --speed 4'],
  );
  examples(
    jsonOutput(
      audit
        .command('export')
        .description('write recorded events as JSONL (all sessions, or filtered), as ECS documents for a SIEM, or one SSH session as an asciicast v2 recording')
        .option('--format <format>', 'jsonl, ecs (Elastic Common Schema, one document per line; docs/siem.md) or asciicast (default jsonl)')
        .option('--session <id>', 'only this session (required for asciicast)')
        .option('--resource <name>', 'jsonl, ecs: only sessions of this resource')
        .option('--since <time>', 'jsonl, ecs: only sessions with events from this time (duration ago or ISO)')
        .option('--until <time>', 'jsonl, ecs: only sessions with events before this time')
        .option('--output <file>', 'write to FILE (mode 0600) instead of stdout')
        .action(async (o: Omit<import('./commands/audit.js').AuditExportOptions, 'now'>, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/audit.js')).runAuditExport(ctx, o)),
        ),
      `--json has no effect; the formats themselves are stable:\n` +
        `jsonl: one stored event per line, sessions oldest first, events in seq order. Every line has\n` +
        `  sessionId (string), seq (1..n in its session), time (ISO-8601 UTC, ms), subject (the session's identity subject),\n` +
        `  hash (hex SHA-256 of the previous event's hash, 64 zeros for seq 1, followed by the canonical JSON of the line\n` +
        `  without hash: keys sorted, no spaces), type, and per type:\n` +
        `  session.start     resource, kind (postgres|http|ssh), clientAddr, identity {issuer, subject, email?, groups, kind, verified}, reason?\n` +
        `  session.end       outcome (ok|error|terminated|denied), counters {statements, denied, masked, rows, bytesIn, bytesOut}\n` +
        `  query             sql (masked), decision (allow|deny|approve|observe), rule?, kinds [statement kinds], tables\n` +
        `  http.request      method, path, decision, rule?, status?\n` +
        `  ssh.command       command, decision, rule?\n` +
        `  ssh.channel       channel (exec|shell|sftp|forward), decision, rule?, target?\n` +
        `  mask.summary      entities {entity or column: count} (never values), rule?\n` +
        `  result            rows, bytes, durationMs\n` +
        `  error             message, code?\n` +
        `  approval.requested approvalId, rule\n` +
        `  approval.decided  approvalId, state (pending|approved|denied|expired|consumed), by?\n` +
        `  terminal.output   t (seconds since the session started), data, stream? (o|i)\n` +
        `  store.prune       olderThanMs, cutoff, sessionsRemoved, eventsRemoved\n` +
        `ecs: one ECS 8.11 document per event (terminal.output left out): @timestamp, message, ecs.version, event {kind, module,\n` +
        `  dataset: dlpctl.audit, action (the type above), category, type, outcome, id (SESSION:SEQ), sequence, hash, reason?,\n` +
        `  duration?}, user {id, name, email?, domain (issuer), roles (groups)}, source {ip, port, address},\n` +
        `  service.target {name (resource), type (kind)}, rule {name, ruleset}?, url/http (HTTP), process.command_line (SSH),\n` +
        `  error?, observer, dlpctl {session_id, event_type, identity {kind, verified}, decision?, statement?, tables?, masked?, …}\n` +
        `asciicast: asciicast v2 (a header line {"version": 2, "width", "height", "timestamp", "title", "env"}, then [t, "o", data]\n` +
        `  per terminal.output frame); plays with asciinema play.`,
    ),
    ['dlpctl audit export --since 7d --output week.jsonl', 'dlpctl audit export --format ecs --since 24h > audit.ecs.ndjson', 'dlpctl audit export --format asciicast --session 01JABCDEF… > session.cast'],
  );
  examples(
    jsonOutput(
      audit
        .command('tail')
        .description('print events as they are recorded, from every session (polls the store), until interrupted')
        .option('--resource <name>', 'only this resource')
        .option('--identity <subject>', 'only sessions of this subject or email')
        .option('--since <time>', 'start from this time (duration ago or ISO) instead of now')
        .option('--interval <ms>', 'poll interval in milliseconds (default 500)')
        .option('--format <format>', 'ecs: one ECS document per line, as audit export --format ecs (for a log shipper)')
        .action(async (o: { resource?: string; identity?: string; since?: string; interval?: string; format?: string }, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/audit.js')).runAuditTail(ctx, o)),
        ),
      `one stored event per line (as in audit export), plus "id" ("SESSION:SEQ") and "resource";\n` +
        `with --format ecs one ECS document per line instead (as audit export --format ecs)`,
    ),
    ['dlpctl audit tail --resource postgres-prod', 'dlpctl audit tail --format ecs >> /var/log/dlpctl/audit.ecs.ndjson'],
  );
  jsonOutput(
    audit
      .command('verify')
      .description(
        'check the store: every hash chain, every displayed column and session row against it, and the checkpoints of the chain heads; with --public-key, that no one rewrote, cut or replaced history up to the last signed checkpoint. Exit 1 naming the first problem',
      )
      .argument('[session]', 'only this session')
      .option('--public-key <file>', 'PEM public key the checkpoints are signed with (from dlpctl audit keygen)')
      .option('--checkpoints <file>', 'copy of the checkpoints kept outside the store (audit.checkpointFile): each must be in the store')
      .action(async (session: string | undefined, o: { publicKey?: string; checkpoints?: string }, cmd: Command) =>
        wrap(cmd, async (ctx) =>
          (await import('./commands/audit.js')).runAuditVerify(ctx, {
            ...(session ? { session } : {}),
            ...(o.publicKey ? { publicKey: o.publicKey } : {}),
            ...(o.checkpoints ? { checkpoints: o.checkpoints } : {}),
          }),
        ),
      ),
    `{"ok": true, "sessionsChecked": 12, "eventsChecked": 3400, "checkpoints": {"count": 9, "signed": 9, "external": 9, "vouchedCheckpoint": 9, "vouchedUntil": "…", "eventsAfter": 12, "keyId": "…"}}\n` +
      `broken: {"ok": false, …, "firstBad": {"sessionId": "…" or "(checkpoints)", "seq": 7, "reason": "hash does not match …"}} (exit 1)`,
  );
  jsonOutput(
    audit
      .command('keygen')
      .description('make an Ed25519 key pair for signing checkpoints: the private key for audit.signingKey (mode 0600) and FILE.pub for audit verify --public-key')
      .requiredOption('--out <file>', 'where to write the private key; the public key goes to FILE.pub')
      .option('--force', 'replace existing files')
      .action(async (o: { out: string; force?: boolean }, cmd: Command) =>
        wrap(cmd, async (ctx) => (await import('./commands/audit.js')).runAuditKeygen(ctx, { out: o.out, ...(o.force ? { force: true } : {}) })),
      ),
    `{"privateKey": "/etc/dlpctl/audit.key", "publicKey": "/etc/dlpctl/audit.key.pub", "keyId": "…"}`,
  );

  // ── identity (login, logout, whoami) ─────────────────────────────────────
  examples(
    jsonOutput(
      program
        .command('login')
        .description('sign in with the OAuth device flow (RFC 8628): shows a URL and a code to enter in a browser, then keeps the refresh token in the OS keychain (or a 0600 file when none answers); never prompts in CI')
        .option('--issuer <url>', 'OIDC issuer (default: identity.issuer of dlpctl.yaml, else the issuer of the last login)')
        .option('--client-id <id>', 'OAuth client id registered for dlpctl at the issuer (default: identity.clientId)')
        .option('--open', 'open the verification URL in the default browser')
        .option('--token-store <where>', 'keychain | file (default: the keychain when one answers, else the file)')
        .action(async (o: { issuer?: string; clientId?: string; open?: boolean; tokenStore?: string }, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/identity.js')).runLogin(ctx, o)),
        ),
      `as whoami: {"issuer": "https://id.example.com", "subject": "00u1ab…", "email": "ana@example.com", "groups": ["data-eng"],\n` +
        ` "kind": "human", "verified": true, "expiresAt": "2030-01-01T10:00:00.000Z", "source": "login"}`,
    ),
    ['dlpctl login', 'dlpctl login --issuer https://id.example.com --client-id dlpctl --open', 'dlpctl login --token-store file'],
  );
  jsonOutput(
    program
      .command('logout')
      .description('revoke the stored tokens at the provider (RFC 7009, when it supports it) and delete them from the keychain and the token file')
      .action(async (_o, cmd: Command) => wrap(cmd, async (ctx) => (await import('./commands/identity.js')).runLogout(ctx))),
    `{"issuer": "https://id.example.com", "loggedIn": true, "revoked": true, "removedFrom": ["the OS keychain"]}`,
  );
  examples(
    jsonOutput(
      program
        .command('whoami')
        .description('show the identity dlpctl would use: issuer, subject, email, groups, kind (human|machine), expiry and where it came from (login, DLPCTL_TOKEN, --token-file, the CI system\'s own OIDC token, client credentials, local user)')
        .option('--token-file <file>', 'a workload token (e.g. the CI\'s OIDC ID token) instead of DLPCTL_TOKEN or a login')
        .option('--id-token-var <name>', 'GitLab CI: the id_tokens: variable holding the job\'s OIDC token (default: identity.workload.gitlabVariable, DLPCTL_ID_TOKEN, CI_JOB_JWT_V2)')
        .action(async (o: { tokenFile?: string; idTokenVar?: string }, cmd: Command) => wrap(cmd, async (ctx) => (await import('./commands/identity.js')).runWhoami(ctx, o))),
      `{"issuer": "https://token.actions.githubusercontent.com", "subject": "repo:acme/app:ref:refs/heads/main", "email": null,\n` +
        ` "groups": [], "kind": "machine", "verified": true, "expiresAt": "2030-01-01T10:05:00.000Z", "source": "env"}\n` +
        `source: login | env (DLPCTL_TOKEN) | file (--token-file) | github-actions | gitlab-ci | circleci | buildkite | kubernetes\n` +
        `  (the CI system's own token, detected) | client_credentials | local (no identity section: verified is false, expiresAt null)`,
    ),
    ['dlpctl whoami', 'dlpctl whoami --json    # in a GitHub Actions job with permissions: id-token: write', 'dlpctl whoami --token-file /var/run/secrets/tokens/dlpctl'],
  );

  return program;
}
