/**
 * Server-Sent Events framing (WHATWG HTML §9.2.6), sans I/O: text in, whole events out.
 *
 *   event   = *( comment / field ) blank-line
 *   field   = name [ ":" [ " " ] value ] EOL        EOL = CRLF / LF / CR
 *
 * An event keeps its exact text (`raw`), so an event nobody changes goes out byte for byte. `data` is the
 * event's data lines joined with LF (null when it has none). A CR at the end of a chunk may be the first
 * half of a CRLF: it is held until the next chunk says which.
 */

export interface SseEvent {
  /** The exact text, blank line included. */
  raw: string;
  /** Each line without its terminator, in order (the blank line excluded). */
  lines: string[];
  data: string | null;
}

function parseLines(lines: string[]): string | null {
  let data: string | null = null;
  for (const l of lines) {
    if (l === 'data' || l.startsWith('data:')) {
      let v = l.length > 5 ? l.slice(5) : '';
      if (v.startsWith(' ')) v = v.slice(1);
      data = data === null ? v : `${data}\n${v}`;
    }
  }
  return data;
}

export class SseParser {
  private buf = '';
  /** Start of the current event in `buf`, and where scanning resumes. */
  private pos = 0;
  private lines: string[] = [];

  push(text: string): SseEvent[] {
    this.buf += text;
    const out: SseEvent[] = [];
    const b = this.buf;
    let eventStart = 0;
    let i = this.pos;
    let lineStart = this.pos;
    while (i < b.length) {
      const c = b.charCodeAt(i);
      if (c !== 10 && c !== 13) {
        i++;
        continue;
      }
      let next = i + 1;
      if (c === 13) {
        if (i + 1 >= b.length) break; // a CR at the end: wait for the next chunk
        if (b.charCodeAt(i + 1) === 10) next = i + 2;
      }
      const line = b.slice(lineStart, i);
      if (line === '') {
        if (this.lines.length > 0) {
          out.push({ raw: b.slice(eventStart, next), lines: this.lines, data: parseLines(this.lines) });
          this.lines = [];
        }
        eventStart = next;
      } else {
        this.lines.push(line);
      }
      i = next;
      lineStart = next;
    }
    // Keep the unfinished event (its complete lines are already in this.lines).
    this.buf = b.slice(eventStart);
    this.pos = lineStart - eventStart;
    return out;
  }

  /** The text after the last complete event (an event the stream ended inside), if any. */
  end(): string {
    const rest = this.buf;
    this.buf = '';
    this.pos = 0;
    this.lines = [];
    return rest;
  }

  /** Characters held (bounded by the caller: an event may not grow without limit). */
  get held(): number {
    return this.buf.length;
  }
}

/** The event with its data replaced: other lines kept in order, data lines at the first data line's place. */
export function withData(e: SseEvent, data: string): string {
  const out: string[] = [];
  let placed = false;
  for (const l of e.lines) {
    if (l === 'data' || l.startsWith('data:')) {
      if (!placed) {
        for (const d of data.split('\n')) out.push(`data: ${d}`);
        placed = true;
      }
      continue;
    }
    out.push(l);
  }
  if (!placed) for (const d of data.split('\n')) out.push(`data: ${d}`);
  return `${out.join('\n')}\n\n`;
}
