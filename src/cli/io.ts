/**
 * Where a command writes: stdout for data, stderr for people. Colour only on a TTY, never with NO_COLOR
 * or --no-color. Commands receive an `Io` so tests can run them in-process and read what they wrote.
 */
import { Chalk, type ChalkInstance } from 'chalk';

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Colour for stdout. */
  color: ChalkInstance;
  /** Colour for stderr. */
  errColor: ChalkInstance;
  isTTY: boolean;
  out(text: string): void;
  err(text: string): void;
}

export function createIo(
  streams: Pick<Io, 'stdout' | 'stderr' | 'stdin'> = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin },
  opts: { noColor?: boolean; env?: NodeJS.ProcessEnv } = {},
): Io {
  const env = opts.env ?? process.env;
  const colorAllowed = !opts.noColor && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  const level = (tty: boolean | undefined): 0 | 1 | 2 | 3 => {
    if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && colorAllowed) return 1;
    return colorAllowed && tty ? 1 : 0;
  };
  return {
    ...streams,
    color: new Chalk({ level: level(streams.stdout.isTTY) }),
    errColor: new Chalk({ level: level(streams.stderr.isTTY) }),
    isTTY: Boolean(streams.stdout.isTTY),
    out(text) {
      streams.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    err(text) {
      streams.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
    },
  };
}

/** Stable JSON for `--json`: two-space indent on a TTY, one line per document otherwise. */
export function printJson(io: Io, value: unknown): void {
  io.out(io.isTTY ? JSON.stringify(value, null, 2) : JSON.stringify(value));
}

/**
 * A plain table: header row, then rows, columns padded to the widest cell. On a TTY the header is bold;
 * piped output stays plain text that `cut`/`awk` can read.
 */
export function renderTable(io: Io, headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(Math.max(0, (widths[i] ?? 0) - visibleLength(c)))))
      .join('  ')
      .trimEnd();
  const head = line(headers.map((h) => h.toUpperCase()));
  return [io.color.bold(head), ...rows.map(line)].join('\n');
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
function visibleLength(s: string): number {
  return s.replace(ANSI, '').length;
}
