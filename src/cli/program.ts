/**
 * The command tree. Only commander is loaded here: each action imports its command module when it runs,
 * so `dlpctl --help` and `dlpctl --version` open nothing else. The same tree generates man/dlpctl.1.
 *
 * Only commands that work are registered here.
 */
import { Command, Option } from 'commander';
import type { CommandContext } from './context.js';

export const VERSION = '0.1.0';

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
  ['DLPCTL_STORE', 'session store URL, as --store'],
  ['DLPCTL_TOKEN', 'a workload identity token (for CI)'],
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
    .option('--store <url>', 'session store: sqlite:PATH or postgres://… (default: $DLPCTL_STORE, the config, the user setting, sqlite:$XDG_DATA_HOME/dlpctl/store.db)')
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
        .description('open a local tunnel to RESOURCE (policy, masking, recording); with -- COMMAND, run it against the tunnel and exit with its status')
        .argument('<resource>', 'a resource name from dlpctl.yaml (see dlpctl resources)')
        .argument('[command...]', 'after --: the command to run with the tunnel in its environment (DATABASE_URL, PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE)')
        .option('--port <n>', 'local port (default: the resource\'s listen port, else a free port)')
        .option('--bind <addr>', 'local address (default 127.0.0.1; another address needs serverTls)')
        .option('--reason <text>', 'why this session is opened; stored on the session and shown to approvers')
        .action(async (resource: string, command: string[], o: { port?: string; bind?: string; reason?: string }, cmd: Command) =>
          wrap(cmd, async (ctx) => (await import('./commands/connect.js')).runConnect(ctx, { resource, command, ...o })),
        ),
      `one NDJSON event per line on stdout:\n` +
        `{"type":"listening","resource":"db","kind":"postgres","host":"127.0.0.1","port":5433,"url":"postgres://…","time":"…"}\n` +
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
      .action(async (o: { script?: boolean }, cmd: Command) => wrap(cmd, async (ctx) => (await import('./commands/demo.js')).runDemo(ctx, o))),
    ['dlpctl demo --script', 'dlpctl demo    # then: psql "$URL"'],
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

  return program;
}
