#!/usr/bin/env node
// Thin launcher: the program lives in dist/ (built by `npm run build`; `npm ci` builds it through `prepare`).
// `dlpctl --version` is answered before the command tree loads, so scripts that probe it stay fast.
const args = process.argv.slice(2);

// A tunnel (`connect`, `demo`) runs with a few V8 flags (dist/cli/tunnel-node-flags.js says which and why).
// They only work from the command line, so the launcher re-executes itself once with them (process.execve
// keeps the PID, stdio and signals; it is absent on Windows, where we simply go on). A flag the user set
// already, on node's command line or in NODE_OPTIONS, is theirs to keep.
const beforeDashes = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
if (typeof process.execve === 'function' && beforeDashes.some((a) => a === 'connect' || a === 'demo')) {
  const { tunnelFlagsToAdd } = await import('../dist/cli/tunnel-node-flags.js');
  const missing = tunnelFlagsToAdd(process.execArgv, process.env.NODE_OPTIONS);
  if (missing.length > 0) {
    process.removeAllListeners('warning');
    process.execve(process.execPath, [process.execPath, ...missing, ...process.execArgv, ...process.argv.slice(1)], process.env);
  }
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
