/**
 * `audit replay`: an SSH session (one with `terminal.output` frames) is played back as terminal output
 * with its original timing; a PostgreSQL or HTTP session as a transcript, one line per event, paced by the
 * events' times. `speed` divides every wait; waits are capped at `maxIdleMs` (after the speed-up) so a
 * session idle for an hour does not replay for an hour. Clock and sleep are injected for tests.
 */
import type { StoreEvent } from '../store/types.js';
import { decisionOf, describeEvent, sampleLines } from './describe.js';

export interface ReplayOptions {
  speed: number;
  maxIdleMs: number;
  sleep: (ms: number) => Promise<void>;
  /** Terminal bytes (SSH playback). */
  writeRaw: (data: string) => void;
  /** One transcript line. */
  writeLine: (line: string) => void;
  /** Styles the transcript (colours on a TTY). */
  style?: { dim(s: string): string; red(s: string): string; green(s: string): string; yellow(s: string): string };
}

export function isTerminalSession(events: readonly StoreEvent[]): boolean {
  return events.some((e) => e.type === 'terminal.output');
}

function wait(ms: number, o: ReplayOptions): Promise<void> | undefined {
  if (!(o.speed > 0) || !Number.isFinite(o.speed)) return undefined;
  const d = Math.min(o.maxIdleMs, ms / o.speed);
  return d >= 1 ? o.sleep(d) : undefined;
}

/** Returns the replay mode used. */
export async function replaySession(events: readonly StoreEvent[], o: ReplayOptions): Promise<'terminal' | 'transcript'> {
  if (isTerminalSession(events)) {
    let last = 0;
    for (const e of events) {
      if (e.type !== 'terminal.output' || e.stream === 'i') continue;
      await wait((e.t - last) * 1000, o);
      last = e.t;
      o.writeRaw(e.data);
    }
    return 'terminal';
  }
  const id = (s: string) => s;
  const st = o.style ?? { dim: id, red: id, green: id, yellow: id };
  const start = events.length > 0 ? Date.parse(events[0]!.time) : 0;
  let prev = start;
  for (const e of events) {
    const t = Date.parse(e.time);
    await wait(t - prev, o);
    prev = t;
    const { decision, rule } = decisionOf(e);
    const paint = decision === 'deny' ? st.red : decision === 'approve' ? st.yellow : decision === 'allow' ? st.green : id;
    const head = `${st.dim(`+${((t - start) / 1000).toFixed(3)}s`)} ${e.type.padEnd(17)}`;
    const dec = decision ? `${paint(decision)}${rule ? st.dim(` [${rule}]`) : ''} ` : '';
    o.writeLine(`${head} ${dec}${describeEvent(e)}`);
    for (const l of sampleLines(e)) o.writeLine(`${' '.repeat(27)}${st.dim(l)}`);
  }
  return 'transcript';
}
