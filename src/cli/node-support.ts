/**
 * Which Node.js versions can run dlpctl. The embedded store is `node:sqlite`, available without a flag
 * from Node 22.13 on the 22 line and 23.4 on the 23 line (24 and later have it). bin/dlpctl.js checks
 * before loading anything that imports it, so an older Node gets an answer instead of a stack trace.
 * No imports: this module must load on any Node that can run ES modules.
 */

/** Null when `version` (as in `process.versions.node`) can run dlpctl, else what to tell the user. */
export function nodeSupportProblem(version: string): string | null {
  const [major = 0, minor = 0] = version.split('.').map((n) => Number.parseInt(n, 10));
  const ok = major >= 24 || (major === 23 && minor >= 4) || (major === 22 && minor >= 13);
  if (ok) return null;
  return (
    `this is Node.js ${version}; dlpctl needs 22.13 or newer (23.4 or newer on the 23 line) for its embedded store ` +
    `(node:sqlite). Install a current Node.js (24 LTS), or run it with npx from a checkout, which brings Node 24.`
  );
}
