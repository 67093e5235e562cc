/**
 * `audit export`: JSONL (one stored event per line, exactly as stored, so the hash chain can be re-checked
 * from the file alone), ECS (one Elastic Common Schema document per line, for SIEMs: ecs.ts) and asciicast v2
 * for SSH sessions (the `terminal.output` frames).
 */
import type { Session, SessionStore, StoreEvent } from '../store/types.js';
import { toEcs } from './ecs.js';
import { sessionEvents } from './events.js';

export type Write = (chunk: string) => Promise<void> | void;

/** Writes the events of `sessions` as JSONL; returns how many events were written. */
export async function exportJsonl(store: SessionStore, sessionIds: readonly string[], write: Write): Promise<number> {
  let n = 0;
  for (const id of sessionIds) {
    for await (const e of sessionEvents(store, id)) {
      await write(`${JSON.stringify(e)}\n`);
      n++;
    }
  }
  return n;
}

/** Writes the events of `sessions` as ECS documents, one per line (terminal frames left out); returns how many. */
export async function exportEcs(store: SessionStore, sessionIds: readonly string[], write: Write): Promise<number> {
  let n = 0;
  for (const id of sessionIds) {
    const session = await store.getSession(id);
    if (!session) continue;
    for await (const e of sessionEvents(store, id)) {
      const doc = toEcs(e, session);
      if (!doc) continue;
      await write(`${JSON.stringify(doc)}\n`);
      n++;
    }
  }
  return n;
}

export interface AsciicastHeader {
  version: 2;
  width: number;
  height: number;
  timestamp: number;
  title: string;
  env: { TERM: string; SHELL: string };
}

/**
 * asciicast v2: a header line, then `[time, "o" | "i", data]` per frame. Returns the number of frames. The
 * header's size and TERM are the pty's, as the session's first `ssh.channel` event with a pty recorded them
 * (that event precedes the channel's output); `size` overrides them, and 80×24 is the fallback.
 */
export async function exportAsciicast(
  session: Session,
  events: AsyncIterable<StoreEvent> | Iterable<StoreEvent>,
  write: Write,
  size?: { width: number; height: number },
): Promise<number> {
  let header: AsciicastHeader | null = null;
  const writeHeader = async (pty?: { cols?: number; rows?: number; term?: string }) => {
    header = {
      version: 2,
      width: size?.width ?? (pty?.cols && pty.cols > 0 ? pty.cols : 80),
      height: size?.height ?? (pty?.rows && pty.rows > 0 ? pty.rows : 24),
      timestamp: Math.floor(Date.parse(session.startedAt) / 1000),
      title: `dlpctl ${session.resource} ${session.id} (${session.identity.subject})`,
      env: { TERM: pty?.term || 'xterm-256color', SHELL: '/bin/sh' },
    };
    await write(`${JSON.stringify(header)}\n`);
  };
  let frames = 0;
  for await (const e of events) {
    if (!header && e.type === 'ssh.channel' && e.pty && e.phase !== 'close') await writeHeader(e);
    if (e.type !== 'terminal.output') continue;
    if (!header) await writeHeader();
    await write(`${JSON.stringify([Number(e.t.toFixed(6)), e.stream ?? 'o', e.data])}\n`);
    frames++;
  }
  if (!header) await writeHeader();
  return frames;
}
