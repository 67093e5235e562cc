/**
 * asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/) from a recorded SSH session: a header line
 * (JSON object: version 2, width, height, timestamp, optional title/env), then one line per output frame,
 * `[time, "o", data]`, time in seconds since the start. The frames are the `terminal.output` events, already
 * masked when they were recorded.
 *
 * The terminal size comes from the caller (an `ssh.channel` event with `cols`/`rows`), else 80×24. Frames of
 * several channels of one session are played in time order; `channelId` selects one.
 */
import type { TerminalOutputBody } from '../store/types.js';

export interface AsciicastHeader {
  width?: number;
  height?: number;
  /** Session start: ISO string, Date, or Unix seconds. */
  timestamp: string | Date | number;
  title?: string;
  env?: Record<string, string>;
}

export interface AsciicastOptions {
  /** Only this channel's frames. */
  channelId?: number;
  /** Gaps longer than this many seconds are shortened to it (asciinema's `idle_time_limit`). */
  idleTimeLimit?: number;
}

export function toAsciicast(header: AsciicastHeader, frames: readonly Pick<TerminalOutputBody, 't' | 'data' | 'stream' | 'channelId'>[], opts: AsciicastOptions = {}): string {
  const ts = header.timestamp;
  const seconds = typeof ts === 'number' ? ts : Math.floor((ts instanceof Date ? ts : new Date(ts)).getTime() / 1000);
  const head: Record<string, unknown> = {
    version: 2,
    width: header.width && header.width > 0 ? header.width : 80,
    height: header.height && header.height > 0 ? header.height : 24,
    timestamp: Number.isFinite(seconds) ? seconds : 0,
  };
  if (opts.idleTimeLimit !== undefined) head.idle_time_limit = opts.idleTimeLimit;
  if (header.title) head.title = header.title;
  if (header.env) head.env = header.env;
  const lines = [JSON.stringify(head)];
  const selected = frames
    .filter((f) => (opts.channelId === undefined || f.channelId === undefined || f.channelId === opts.channelId) && f.data.length > 0)
    .map((f, i) => ({ f, i }))
    .sort((a, b) => a.f.t - b.f.t || a.i - b.i);
  let last = 0;
  let shift = 0;
  for (const { f } of selected) {
    let t = Math.max(0, f.t - shift);
    if (opts.idleTimeLimit !== undefined && t - last > opts.idleTimeLimit) {
      shift += t - last - opts.idleTimeLimit;
      t = last + opts.idleTimeLimit;
    }
    t = Math.max(t, last);
    last = t;
    lines.push(JSON.stringify([Math.round(t * 1e6) / 1e6, f.stream === 'i' ? 'i' : 'o', f.data]));
  }
  return `${lines.join('\n')}\n`;
}
