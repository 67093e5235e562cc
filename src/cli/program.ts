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
    .enablePositionalOptions()
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
        .passThroughOptions()
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
