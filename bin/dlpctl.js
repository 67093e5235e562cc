#!/usr/bin/env node
// Thin launcher: the program lives in dist/ (built by `npm run build`; `npm ci` builds it through `prepare`).
// `dlpctl --version` is answered before the command tree loads, so scripts that probe it stay fast.
const args = process.argv.slice(2);

// A tunnel (`connect`, `demo`) keeps the SQL parser's WASM on V8's baseline compiler. Left to tier up, V8
// recompiles libpg-query's grammar with TurboFan on background threads during the first burst of
// statements: about 550 MB of transient native memory and twice the CPU per statement, for no faster a
// parse. The flag only works from the command line, so the launcher re-executes itself once with it
// (process.execve keeps the PID, stdio and signals; it is absent on Windows, where we simply go on).
const beforeDashes = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
if (
  !process.execArgv.includes('--liftoff-only') &&
  typeof process.execve === 'function' &&
  beforeDashes.some((a) => a === 'connect' || a === 'demo')
) {
  process.removeAllListeners('warning');
  process.execve(process.execPath, [process.execPath, '--liftoff-only', ...process.execArgv, ...process.argv.slice(1)], process.env);
}

if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { VERSION } = await import('../dist/cli/version.js');
  process.stdout.write(`${VERSION}\n`);
} else {
  // An older Node would fail on the store's import with an "internal error": say what to install instead.
  const problem = (await import('../dist/cli/node-support.js')).nodeSupportProblem(process.versions.node);
  if (problem) {
    process.stderr.write(`dlpctl: ${problem}\n`);
    process.exit(1);
  }
  const { main } = await import('../dist/cli/main.js');
  process.exitCode = await main(process.argv, { handleSignals: true });
}
