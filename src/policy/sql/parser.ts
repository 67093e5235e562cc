/**
 * Loads the real PostgreSQL parser (libpg-query, WASM) once. It is imported lazily so that commands which never
 * look at SQL (`dlpctl --help`) do not pay for it. After `initSqlParser()` resolves, parsing is synchronous.
 */
import { DlpctlError } from '../../errors.js';

/** The parts of libpg-query this module uses. */
interface PgQueryModule {
  loadModule(): Promise<void>;
  parseSync(sql: string): unknown;
  /** PL/pgSQL function bodies of the CREATE FUNCTION / DO statements of `sql`, compiled to a JSON tree. */
  parsePlPgSQLSync(sql: string): unknown;
  scanSync(sql: string): { tokens: { start: number; end: number; text: string }[] };
}

let mod: PgQueryModule | null = null;
let loading: Promise<void> | null = null;

/** Loads the parser; safe to call many times and concurrently. */
export function initSqlParser(): Promise<void> {
  if (mod) return Promise.resolve();
  loading ??= (async () => {
    const m = (await import('libpg-query')) as unknown as PgQueryModule;
    await m.loadModule();
    mod = m;
  })().catch((err: unknown) => {
    loading = null;
    throw new DlpctlError('INTERNAL', 'could not load the PostgreSQL parser (libpg-query)', { cause: err });
  });
  return loading;
}

export function isSqlParserReady(): boolean {
  return mod !== null;
}

function ready(): PgQueryModule {
  if (!mod) throw new DlpctlError('INTERNAL', 'the SQL parser is not loaded: call `await initSqlParser()` before classifying SQL');
  return mod;
}

/** Parses SQL text into the libpg-query JSON tree. Throws on a syntax error. */
export function parseSqlTree(sql: string): unknown {
  return ready().parseSync(sql);
}

/**
 * Compiles the PL/pgSQL bodies of a CREATE FUNCTION / CREATE PROCEDURE / DO statement (the whole statement text)
 * into libpg-query's `plpgsql_funcs` tree. Throws on a syntax or compile error of the body.
 */
export function parsePlpgsqlTree(sql: string): unknown {
  return ready().parsePlPgSQLSync(sql);
}

/** The scanner's tokens of `sql` with their UTF-8 byte offsets. */
export function scanTokens(sql: string): { start: number; end: number; text: string }[] {
  return ready().scanSync(sql).tokens;
}

/** Byte ranges (UTF-8) of the top-level `;` tokens: the scanner knows strings, comments and dollar quotes. */
export function semicolonByteOffsets(sql: string): number[] {
  const out: number[] = [];
  for (const t of ready().scanSync(sql).tokens) if (t.text === ';') out.push(t.start);
  return out;
}

/**
 * PostgreSQL's own answer to a text its parser rejects: the message (`syntax error at or near "wat"`) and the
 * 1-based character position the server would report; null when the text parses.
 */
export function syntaxError(sql: string): { message: string; position?: number } | null {
  try {
    ready().parseSync(sql);
    return null;
  } catch (err) {
    if (err instanceof RangeError) return null;
    const e = err as { message?: unknown; sqlDetails?: { cursorPosition?: number } };
    const message = typeof e?.message === 'string' ? e.message : String(err);
    const at = e?.sqlDetails?.cursorPosition;
    // libpg-query counts characters from 0; the server reports them from 1
    const position = typeof at === 'number' ? at + 1 : undefined;
    return { message, ...(position !== undefined ? { position } : {}) };
  }
}

/** The message of a parser error, with the cursor position when the parser gave one. */
export function parseErrorMessage(err: unknown): string {
  if (err instanceof RangeError) return 'statement is nested too deeply to analyse';
  const e = err as { message?: unknown; sqlDetails?: { cursorPosition?: number } };
  const msg = typeof e?.message === 'string' ? e.message : String(err);
  const pos = e?.sqlDetails?.cursorPosition;
  return typeof pos === 'number' ? `${msg} (at character ${pos + 1})` : msg;
}
