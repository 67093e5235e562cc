/**
 * SQL-level prepared statements of one session (`PREPARE p AS …`, `EXECUTE p(…)`, `DEALLOCATE p`). An EXECUTE
 * runs whatever its PREPARE said, so it is decided as that statement: the tunnel remembers the text of every
 * PREPARE it let through and classifies an EXECUTE as the prepared statement (its parameters change no kind,
 * relation or function). An EXECUTE of a name the tunnel never saw prepared stays unclassifiable (fail closed).
 * (Protocol-level prepared statements, Parse/Bind/Execute, are decided at Parse by the session itself.)
 */
import { classifySql, type SqlClassification, type SqlStatement } from '../../policy/index.js';

/** `PREPARE name [(types)] AS statement`: the name (folded as PostgreSQL folds it) and the statement. */
const PREPARE = /^\s*prepare\s+("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\s*(?:\([^)]*\))?\s+as\s+([\s\S]+)$/i;
const DEALLOCATE = /^\s*deallocate\s+(?:prepare\s+)?("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\s*;?\s*$/i;

function foldName(name: string): string {
  return name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name.toLowerCase();
}

export class PreparedSql {
  private readonly texts = new Map<string, string>();

  /** The classification with each EXECUTE of a known name replaced by its prepared statement's. */
  resolve(c: SqlClassification): SqlClassification {
    if (!c.statements.some((s) => s.executes !== undefined)) return c;
    const statements: SqlStatement[] = c.statements.map((s) => {
      if (s.executes === undefined) return s;
      const text = this.texts.get(s.executes);
      if (text === undefined) return { ...s, opaque: `EXECUTE of ${s.executes}, which was not prepared through this tunnel` };
      const inner = classifySql(text).statements;
      return inner.length === 1 ? { ...inner[0]!, text: s.text, command: `EXECUTE ${inner[0]!.command}` } : s;
    });
    return { ...c, statements };
  }

  /** Remembers PREPAREs and forgets DEALLOCATEs of statements that were let through. */
  allowed(c: SqlClassification): void {
    for (const s of c.statements) {
      const p = PREPARE.exec(s.text);
      if (p) {
        this.texts.set(foldName(p[1]!), p[2]!.trim().replace(/;\s*$/, ''));
        continue;
      }
      if (/^\s*deallocate\s+(prepare\s+)?all\s*;?\s*$/i.test(s.text)) this.texts.clear();
      const d = DEALLOCATE.exec(s.text);
      if (d) this.texts.delete(foldName(d[1]!));
      if (/^\s*discard\s+all\s*;?\s*$/i.test(s.text)) this.texts.clear();
    }
  }
}
