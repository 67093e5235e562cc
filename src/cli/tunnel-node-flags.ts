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
 */
export const TUNNEL_NODE_FLAGS: readonly string[] = ['--liftoff-only', '--max-semi-space-size=8'];
