/**
 * The Node/V8 flags a tunnel process (`dlpctl connect`, `dlpctl demo`) runs with. They only work from the
 * command line, so bin/dlpctl.js re-executes itself once with them (the HTTP benchmark starts its tunnel
 * role with the same list).
 *
 * - `--liftoff-only`: keeps the SQL parser's WASM on V8's baseline compiler. Left to tier up, V8 recompiles
 *   libpg-query's grammar with TurboFan on background threads during the first burst of statements: about
 *   550 MB of transient native memory and twice the CPU per statement, for no faster a parse.
 * - `--max-semi-space-size=8`: caps V8's young generation at its starting size (two 8 MB semi-spaces). A
 *   tunnel relays at a high allocation rate (a frame per row, a buffer per read), and V8 answered that by
 *   growing the young generation to 64 MB and keeping it: on a 1M-row result with two masked columns the
 *   tunnel stayed at 180 MB instead of 125 MB, and scavenging the larger space cost more CPU, not less
 *   (measured side by side; pgbench and the HTTP tunnel's requests/s were unchanged).
 *
 * A flag the user already set (on node's command line or in NODE_OPTIONS, any value, `-` or `_` spelling) is
 * left to them: command-line flags would otherwise override NODE_OPTIONS.
 */
export const TUNNEL_NODE_FLAGS: readonly string[] = ['--liftoff-only', '--max-semi-space-size=8'];

/** The tunnel flags still to add, given the process's `execArgv` and `NODE_OPTIONS`. */
export function tunnelFlagsToAdd(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = new Set([...execArgv, ...(nodeOptions ?? '').split(/\s+/)].filter((a) => a.startsWith('--')).map(flagName));
  return TUNNEL_NODE_FLAGS.filter((f) => !given.has(flagName(f)));
}

/** `--max_semi_space_size=16` → `--max-semi-space-size`: V8 reads `_` and `-` alike. */
function flagName(flag: string): string {
  const eq = flag.indexOf('=');
  return `--${(eq < 0 ? flag : flag.slice(0, eq)).slice(2).replaceAll('_', '-')}`;
}
