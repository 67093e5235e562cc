/**
 * What every command's `run` receives: its streams, the global options, and the process facts it may read
 * (environment, working directory, home). Passing them in keeps commands testable in-process.
 */
import os from 'node:os';
import type { Io } from './io.js';

export interface GlobalOptions {
  config?: string;
  store?: string;
  json: boolean;
  color: boolean;
  verbose: number;
}

export interface CommandContext {
  io: Io;
  globals: GlobalOptions;
  env: NodeJS.ProcessEnv;
  cwd: string;
  homedir: string;
  /** Aborted on SIGINT/SIGTERM: long-running commands stop cleanly when it fires. */
  signal: AbortSignal;
}

export function processFacts(env: NodeJS.ProcessEnv = process.env): Pick<CommandContext, 'env' | 'cwd' | 'homedir'> {
  return { env, cwd: process.cwd(), homedir: env.HOME ?? os.homedir() };
}
