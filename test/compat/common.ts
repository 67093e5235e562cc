/**
 * Shared pieces of the compatibility runner: where a suite connects, what one test's outcome is, and a child
 * process with a watchdog (a hang is a failure of that run, never a stuck runner).
 */
import { spawn } from 'node:child_process';

/** How a suite reaches the database: directly or through one of the tunnels. */
export interface Target {
  mode: Mode;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** The direct URL of the same database, for set-up and checks done beside the suite. */
  directUrl: string;
  /**
   * Through a tunnel: the denials it decided since the last call (from its decision events), so a failure
   * whose test swallowed the error text still shows which rule refused what.
   */
  denials?: () => string[];
  /** Through a tunnel: every denial it decided so far, with when (ms since the epoch), to match with a test's span. */
  denialLog?: () => readonly TimedDenial[];
}

export interface TimedDenial {
  at: number;
  /** `denied by rule R: the statement` */
  line: string;
}

/** Lines to add to a failure's detail for the tunnel's denials between `start` and `end` (ms since the epoch). */
export function tunnelDenialsBetween(t: Target, start: number, end: number): string {
  const d = (t.denialLog?.() ?? []).filter((x) => x.at >= start && x.at <= end);
  return d.map((x) => `tunnel log: ${x.line}\n`).join('');
}

/** Lines to add to a failure's detail for the denials the tunnel decided during that run. */
export function tunnelDenials(t: Target): string {
  const d = t.denials?.() ?? [];
  return d.length ? d.map((l) => `tunnel log: ${l}\n`).join('') : '';
}

export type Mode = 'direct' | 'permissive' | 'recommended';
export const MODES: Mode[] = ['direct', 'permissive', 'recommended'];

export function targetUrl(t: Target): string {
  return `postgres://${encodeURIComponent(t.user)}:${encodeURIComponent(t.password)}@${t.host}:${t.port}/${encodeURIComponent(t.database)}`;
}

export function pgEnv(t: Target): NodeJS.ProcessEnv {
  return { ...process.env, PGHOST: t.host, PGPORT: String(t.port), PGUSER: t.user, PGPASSWORD: t.password, PGDATABASE: t.database, PGCONNECT_TIMEOUT: '10', PGSSLMODE: 'disable' };
}

export interface Outcome {
  name: string;
  pass: boolean;
  /** The output that explains a failure (tail of it). */
  detail?: string;
}

export interface SuiteRun {
  outcomes: Outcome[];
  /** Whole-run problems (could not start, …). */
  notes: string[];
}

export interface Proc {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a child in its own process group; at `timeoutMs` the whole group is killed and `timedOut` set. */
export function runProc(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number; input?: string }): Promise<Proc> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const cap = (s: string, add: string): string => (s.length > 4 << 20 ? s : s + add);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = cap(stdout, d)));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = cap(stderr, d)));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, o.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, signal: null, stdout, stderr: stderr + String(err), timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(o.input ?? '');
  });
}

export function tail(s: string, n = 1500): string {
  return s.length > n ? '…' + s.slice(-n) : s;
}

/** A denial of the tunnel that names what decided it (a rule, a policy's rule, or the resource default). */
export const DENIAL = /(?:dlpctl: denied by (?:policy \S+ rule \S+|rule \S+|resource \S+ default)|tunnel log: denied by rule \S+)[^\n]*/;

/** The first named denial in a run's whole output, as a line to put before the tail of it. */
export function denialOf(out: string): string {
  const m = DENIAL.exec(out);
  return m ? `${m[0]}\n` : '';
}
