/** A CommandContext with captured output, for calling `run…` functions with injected clocks. */
import { PassThrough, Readable } from 'node:stream';
import type { CommandContext } from '../../src/cli/context.js';
import { createIo } from '../../src/cli/io.js';

export function testContext(o: { store: string; json?: boolean; signal?: AbortSignal; env?: NodeJS.ProcessEnv }): { ctx: CommandContext; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const env = o.env ?? { HOME: '/nonexistent-home', NO_COLOR: '1' };
  const ctx: CommandContext = {
    io: createIo({ stdout, stderr, stdin: Readable.from([]) }, { noColor: true, env }),
    globals: { store: o.store, json: o.json ?? false, color: false, verbose: 0 },
    env,
    cwd: '/',
    homedir: '/nonexistent-home',
    signal: o.signal ?? new AbortController().signal,
  };
  return { ctx, out: () => out, err: () => err };
}
