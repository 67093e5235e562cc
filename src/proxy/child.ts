/**
 * `dlpctl connect RESOURCE -- COMMAND ARGS…`: start the command with the tunnel's connection settings in
 * its environment and without any variable a secret reference names, forward SIGINT/SIGTERM/SIGHUP to it,
 * and report its exit status (128 + signal number when a signal ended it, as shells do).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { DlpctlError } from '../errors.js';

export interface ChildSpec {
  command: string;
  args: readonly string[];
  /** The parent's environment, before secrets are removed. */
  baseEnv: NodeJS.ProcessEnv;
  /** Variables the tunnel gives the child (they win over baseEnv). */
  tunnelEnv: Readonly<Record<string, string>>;
  /** Names of variables that secret references read: never passed to the child. */
  secretEnvNames: readonly string[];
  cwd?: string;
  stdio?: 'inherit' | 'pipe';
}

/** The environment the child sees: the parent's, minus secret-bearing variables and dlpctl's credentials, plus the tunnel's. */
export function childEnvironment(spec: Pick<ChildSpec, 'baseEnv' | 'tunnelEnv' | 'secretEnvNames'>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...spec.baseEnv };
  for (const name of spec.secretEnvNames) delete env[name];
  // dlpctl's own credentials stay with dlpctl: the workload token proves dlpctl's identity, not the child's,
  // and the store URL may carry write access to the audit trail and the approvals.
  for (const name of DLPCTL_CREDENTIALS) delete env[name];
  return { ...env, ...spec.tunnelEnv };
}

/** dlpctl's own variables that hold or lead to its credentials. */
export const DLPCTL_CREDENTIALS = ['DLPCTL_TOKEN', 'DLPCTL_STORE'] as const;

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface RunningChild {
  pid: number | undefined;
  /** Resolves with the exit status to use for dlpctl itself. */
  exited: Promise<number>;
  kill(signal?: NodeJS.Signals): void;
  stdout: NodeJS.ReadableStream | null;
  stderr: NodeJS.ReadableStream | null;
}

export function startChild(spec: ChildSpec): RunningChild {
  const child = spawn(spec.command, [...spec.args], {
    env: childEnvironment(spec),
    cwd: spec.cwd,
    stdio: spec.stdio === 'pipe' ? ['inherit', 'pipe', 'pipe'] : 'inherit',
  });
  const forward = (signal: NodeJS.Signals) => () => {
    if (child.exitCode === null) child.kill(signal);
  };
  const handlers = FORWARDED.map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      for (const [s, h] of handlers) process.off(s, h);
      const what = err.code === 'ENOENT' ? 'command not found' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new DlpctlError('USAGE', `cannot start "${spec.command}": ${what}`, { cause: err, exitCode: 127 }));
    });
    child.once('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h);
      if (code !== null) resolve(code);
      else resolve(128 + (signal ? (os.constants.signals[signal] ?? 1) : 1));
    });
  });
  return {
    pid: child.pid,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal);
    },
    stdout: child.stdout,
    stderr: child.stderr,
  };
}
