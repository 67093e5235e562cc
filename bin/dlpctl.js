#!/usr/bin/env node
// Thin launcher: the program lives in dist/ (built by `npm run build`; `npm ci` builds it through `prepare`).
// `dlpctl --version` is answered before the command tree loads, so scripts that probe it stay fast.
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { VERSION } = await import('../dist/cli/version.js');
  process.stdout.write(`${VERSION}\n`);
} else {
  const { main } = await import('../dist/cli/main.js');
  process.exitCode = await main(process.argv, { handleSignals: true });
}
