/**
 * The literal-free shape of a single SQL statement: numbers and plain string literals replaced by `?`,
 * whitespace runs collapsed. Two statements of the same shape classify the same way (kinds, relations,
 * functions, noWhere do not depend on literal values), so a driver that inlines its parameters —
 * `SELECT abalance FROM pgbench_accounts WHERE aid = 48213` — is parsed once per shape, not once per value.
 *
 * Conservative by construction: anything this small lexer is not sure about (escape strings, dollar quotes,
 * unterminated quotes or comments, several statements) returns null, and the caller parses as usual.
 */
export function literalShape(sql: string): string | null {
  const n = sql.length;
  if (n > 4096) return null;
  let out = '';
  let i = 0;
  let sawSemicolon = false;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (sawSemicolon && !isSpace(c)) return null; // a second statement
    if (isSpace(c)) {
      while (i < n && isSpace(sql.charCodeAt(i))) i += 1;
      out += ' ';
      continue;
    }
    if (c === 0x27 /* ' */) {
      const prev = out.charCodeAt(out.length - 1);
      // E'…', B'…', X'…', U&'…', N'…' and similar prefixes change how the literal is read: not handled.
      if (isIdentChar(prev)) return null;
      let j = i + 1;
      for (;;) {
        if (j >= n) return null;
        if (sql.charCodeAt(j) === 0x27) {
          if (sql.charCodeAt(j + 1) === 0x27) {
            j += 2;
            continue;
          }
          break;
        }
        j += 1;
      }
      out += '?';
      i = j + 1;
      continue;
    }
    if (c === 0x24 /* $ */) {
      // $1 parameters are kept; dollar-quoted strings are not handled.
      let j = i + 1;
      while (j < n && isDigit(sql.charCodeAt(j))) j += 1;
      if (j === i + 1) return null;
      out += sql.slice(i, j);
      i = j;
      continue;
    }
    if (c === 0x22 /* " */) {
      const end = sql.indexOf('"', i + 1);
      if (end === -1) return null;
      out += sql.slice(i, end + 1);
      i = end + 1;
      continue;
    }
    if ((c === 0x2d /* - */ && sql.charCodeAt(i + 1) === 0x2d) || (c === 0x2f /* / */ && sql.charCodeAt(i + 1) === 0x2a)) return null;
    if (isDigit(c) || (c === 0x2e /* . */ && isDigit(sql.charCodeAt(i + 1)) && !isIdentChar(out.charCodeAt(out.length - 1)))) {
      let j = i;
      while (j < n && (isIdentChar(sql.charCodeAt(j)) || sql.charCodeAt(j) === 0x2e)) {
        const d = sql.charCodeAt(j);
        if ((d === 0x65 || d === 0x45) && (sql.charCodeAt(j + 1) === 0x2b || sql.charCodeAt(j + 1) === 0x2d)) j += 2;
        else j += 1;
      }
      out += '?';
      i = j;
      continue;
    }
    if (isIdentChar(c)) {
      let j = i + 1;
      while (j < n && isIdentChar(sql.charCodeAt(j))) j += 1;
      out += sql.slice(i, j);
      i = j;
      continue;
    }
    if (c === 0x3b /* ; */) {
      sawSemicolon = true;
      i += 1;
      continue;
    }
    out += sql[i];
    i += 1;
  }
  return out.trim();
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c;
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isIdentChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || isDigit(c) || c === 0x5f || c === 0x24 || c > 0x7f;
}
