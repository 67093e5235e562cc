/**
 * Entry point: parse the command line, run the command, turn every failure into one or two lines on
 * stderr and the exit code of DESIGN §7. A stack trace only with -v.
 */
import { CommanderError, type Command } from 'commander';
import { DlpctlError, ExitCode, isDlpctlError } from '../errors.js';
import { processFacts, type CommandContext, type GlobalOptions } from './context.js';
import { createIo, type Io } from './io.js';
import { buildProgram } from './program.js';

export interface MainDeps {
  io?: Pick<Io, 'stdout' | 'stderr' | 'stdin'>;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Install SIGINT/SIGTERM handlers (the real binary does; in-process tests do not). */
  handleSignals?: boolean;
}

export async function main(argv: readonly string[], deps: MainDeps = {}): Promise<number> {
  const env = deps.env ?? process.env;
  const streams = deps.io ?? { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
  const noColorArg = argv.includes('--no-color');
  let exitCode: number = ExitCode.ok;
  let verbose = 0;
  const controller = new AbortController();
  const facts = { ...processFacts(env), ...(deps.cwd ? { cwd: deps.cwd } : {}) };

  const wrap = async (cmd: Command, work: (ctx: CommandContext) => Promise<number>): Promise<void> => {
    const raw = cmd.optsWithGlobals<{ config?: string; store?: string; json?: boolean; color?: boolean; verbose?: number }>();
    const globals: GlobalOptions = {
      config: raw.config ?? env.DLPCTL_CONFIG,
      store: raw.store ?? env.DLPCTL_STORE,
      json: Boolean(raw.json),
      color: raw.color !== false,
      verbose: raw.verbose ?? 0,
    };
    verbose = globals.verbose;
    const io = createIo(streams, { noColor: !globals.color, env });
    exitCode = await work({ io, globals, ...facts, signal: controller.signal });
  };

  const program = buildProgram(wrap);
  const errIo = createIo(streams, { noColor: noColorArg, env });
  const configure = (cmd: Command) => {
    cmd.exitOverride();
    cmd.configureOutput({
      writeOut: (s) => streams.stdout.write(s),
      writeErr: (s) => streams.stderr.write(s),
      outputError: (s, write) => write(errIo.errColor.red(s)),
    });
    for (const sub of cmd.commands) configure(sub);
  };
  configure(program);

  let uninstall = () => {};
  if (deps.handleSignals) {
    // `dlpctl … | head`: the reader went away; that is not an error of ours.
    for (const stream of [process.stdout, process.stderr]) {
      stream.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
        throw err;
      });
    }
    // The first signal asks the command to finish cleanly; a second Ctrl-C forces the exit. A repeated
    // SIGTERM (service managers and process groups may deliver it more than once) does not cut the clean
    // shutdown short.
    let interrupts = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signal === 'SIGINT') interrupts += 1;
      if (interrupts > 1) process.exit(130);
      // when-exit (under atomically, which the settings file uses) listens once for each signal, runs its
      // clean-ups and then sends the same signal to this process again so that it dies of it. Its listener
      // runs right after this one, in the same emit: that re-sent signal would count as a second Ctrl-C and
      // exit at once, skipping every clean-up (the demo's files, the tunnel's session records). This process
      // handles its signals itself, so a self-sent repeat of this signal during this emit is dropped.
      const realKill = process.kill;
      process.kill = ((pid: number, sig?: string | number) => (pid === process.pid && sig === signal ? true : realKill.call(process, pid, sig))) as typeof process.kill;
      setImmediate(() => {
        process.kill = realKill;
      });
      // The reason carries the shell's exit code for the signal, for commands that end because of it.
      if (!controller.signal.aborted) controller.abort(new DlpctlError('INTERNAL', `interrupted (${signal})`, { exitCode: signal === 'SIGINT' ? 130 : 143 }));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    uninstall = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
  }

  try {
    if (argv.length <= 2) {
      program.outputHelp({ error: true });
      return ExitCode.usage;
    }
    await program.parseAsync([...argv]);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return err.exitCode === 0 || err.code !== 'commander.help' ? ExitCode.ok : ExitCode.usage;
      }
      return ExitCode.usage;
    }
    return reportError(errIo, err, verbose || countVerbose(argv));
  } finally {
    uninstall();
  }
}

function countVerbose(argv: readonly string[]): number {
  return argv.filter((a) => a === '-v' || a === '--verbose').length;
}

/** One or two lines for people; the stack and causes only with -v. */
export function reportError(io: Io, err: unknown, verbose: number): number {
  const c = io.errColor;
  if (isDlpctlError(err)) {
    io.err(`${c.red('dlpctl:')} ${err.message}`);
    for (const d of err.details) io.err(`  ${d}`);
    if (verbose > 0) printCauses(io, err);
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.err(`${c.red('dlpctl: internal error:')} ${message}`);
  io.err('  this is a bug in dlpctl; run again with -v for the stack trace and report it');
  if (verbose > 0) printCauses(io, err);
  return ExitCode.error;
}

function printCauses(io: Io, err: unknown): void {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 5; depth += 1) {
    if (cur instanceof Error) io.err(io.errColor.dim(cur.stack ?? cur.message));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
}
