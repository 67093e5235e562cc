/**
 * What a POSIX/bash command line runs, resolved statically: the simple commands the shell would execute, each
 * after quote removal, so that a rule written for `cat /etc/shadow` also sees `c\at /etc/sha""dow`,
 * `$'\x63at' /etc/shadow`, `true; cat /etc/shadow` and `bash -c 'cat /etc/shadow'`. Pure: a string in, a tree out.
 *
 * What is resolved:
 *   - lists and pipelines: `;` `&` `&&` `||` `|` `|&` newlines, `( … )`, `{ …; }`, `if/while/until/for/case`
 *     bodies; function bodies count as run (`f(){ x; }; f` runs x);
 *   - quote removal: '…', "…", $'…' (ANSI-C: \n \t \xHH \NNN octal \uHHHH \UHHHHHHHH \cX …), $"…", backslashes,
 *     line continuations; brace expansion (`{cat,/etc/shadow}` is `cat /etc/shadow`);
 *   - command substitutions `$( … )`, backticks, process substitutions `<( … )` and `$(( … ))` contents, and
 *     unquoted here-document bodies: their commands run too;
 *   - leading assignments (`X=1 cmd`) and redirections (`>out cmd`) are moved out of the way: the text of a
 *     simple command is its words joined by single spaces, then its redirections (`cmd < file`);
 *   - commands that run other commands, recursively (each is a node whose `inner` holds what it runs):
 *       sh bash dash zsh ksh mksh ash yash posh rbash fish  -c STRING (the string is parsed as a script)
 *       eval ARGS, alias NAME=BODY, trap BODY SIG…, su/runuser -c STRING, watch ARGS (joined, as sh -c does)
 *       env, exec, nohup, sudo, doas, command, builtin, time, nice, ionice, timeout, stdbuf, setsid, chroot,
 *       flock, busybox, xargs  (their options skipped; the rest is the command they run)
 *       find … -exec/-execdir/-ok/-okdir CMD … ; (or +)
 *     xargs: the command and its static arguments are seen; the arguments xargs reads from its input are not.
 *
 * What cannot be resolved is reported in `opaque` (with a reason), never guessed:
 *   - a command name that comes from an expansion ($X, ${X}, $(…), `…`) or is a glob (`/bin/c?t`);
 *   - a script for a shell or eval that is built from expansions (`sh -c "$X"`, `eval "$CMD"`);
 *   - a shell that reads its commands from a here-document, a pipe or (exec channels) the channel's input;
 *   - malformed input (an unterminated quote or substitution) and nesting deeper than `maxDepth`.
 * Arguments keep expansions as written (`cat $F` is the text `cat $F`): their values are not known here.
 * Aliases defined earlier, functions and scripts already on the host are code the proxy cannot see.
 */

export interface ShellCommand {
  /** The words after quote removal and brace expansion (assignments and redirections left out). */
  words: string[];
  /** The words joined by single spaces, then the redirections (`cat /etc/shadow 2> /dev/null`). */
  text: string;
  /** The commands this one runs: the script of `sh -c`, the command of a wrapper such as `sudo`. */
  inner: ShellCommand[];
}

export interface ShellAnalysis {
  /** The simple commands of the line, in order (command substitutions before the command they are in). */
  commands: ShellCommand[];
  /** Why (parts of) the line cannot be resolved statically; empty when everything was resolved. */
  opaque: string[];
}

export interface ShellOptions {
  /**
   * An interactive shell (the `shell` channel): a shell started without a script reads its next lines from
   * the terminal, where they are decided one by one, so that is not opaque there.
   */
  interactive?: boolean;
  /** Levels of `sh -c`, `eval`, wrappers and substitutions followed (default 8); deeper is opaque. */
  maxDepth?: number;
}

export const DEFAULT_SHELL_DEPTH = 8;

/** Every node of the tree, outer commands before the commands they run. */
export function flattenCommands(commands: readonly ShellCommand[], out: ShellCommand[] = []): ShellCommand[] {
  for (const c of commands) {
    out.push(c);
    flattenCommands(c.inner, out);
  }
  return out;
}

/** Analyses a command line. Never throws. */
export function analyzeShell(line: string, o: ShellOptions = {}): ShellAnalysis {
  const ctx: Ctx = { opaque: [], interactive: o.interactive === true, maxDepth: o.maxDepth ?? DEFAULT_SHELL_DEPTH };
  const commands = parseScript(line, 0, ctx);
  return { commands, opaque: [...new Set(ctx.opaque)] };
}

// ───────────────────────────── words ─────────────────────────────

interface Ctx {
  opaque: string[];
  interactive: boolean;
  maxDepth: number;
}

/** A word after quote removal. `lit[i]`: character i was quoted, escaped or came from an expansion. */
interface RawWord {
  chars: string;
  lit: boolean[];
  /** Contains a parameter, arithmetic or command expansion (its text is kept as written). */
  dyn: boolean;
  cmdsub: boolean;
}

/** A word as the wrappers see it. */
interface Word {
  value: string;
  dyn: boolean;
  cmdsub: boolean;
  /** An unquoted glob character (`*`, `?`, `[…]`). */
  glob: boolean;
}

class ParseError extends Error {}

const META = new Set([' ', '\t', '\n', ';', '&', '|', '(', ')', '<', '>']);

type Tok =
  | { t: 'word'; w: RawWord }
  | { t: 'op'; op: string }
  | { t: 'redir'; op: string; fd: string }
  | { t: 'eof' };

interface Redir {
  op: string;
  fd: string;
  target: Word;
}

interface PendingHeredoc {
  delim: string;
  strip: boolean;
  quoted: boolean;
}

interface SimpleCmd {
  words: RawWord[];
  assigns: number;
  redirs: Redir[];
  /** Commands found in substitutions of this command's words and redirections (they run first). */
  subs: ShellCommand[];
  pipedIn: boolean;
}

function newCmd(pipedIn: boolean): SimpleCmd {
  return { words: [], assigns: 0, redirs: [], subs: [], pipedIn };
}

function parseScript(src: string, depth: number, ctx: Ctx): ShellCommand[] {
  if (depth > ctx.maxDepth) {
    ctx.opaque.push(`nested deeper than ${ctx.maxDepth} levels`);
    return [];
  }
  const p = new Parser(src, depth, ctx);
  const out: ShellCommand[] = [];
  try {
    p.parseList(null, out);
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    ctx.opaque.push(e.message);
  }
  return out;
}

const RESERVED_SKIP = new Set(['!', '{', '}', 'then', 'else', 'elif', 'fi', 'do', 'done', 'if', 'while', 'until', 'in']);

class Parser {
  i = 0;
  readonly s: string;
  readonly depth: number;
  readonly ctx: Ctx;
  private heredocs: PendingHeredoc[] = [];
  /** Commands found in substitutions while reading the current word. */
  private subs: ShellCommand[] = [];

  constructor(s: string, depth: number, ctx: Ctx) {
    this.s = s;
    this.depth = depth;
    this.ctx = ctx;
  }

  /**
   * Reads a list of commands into `out` until EOF, or until the `)` that closes `$(` / `<(` (stop = ')').
   */
  parseList(stop: ')' | null, out: ShellCommand[]): void {
    let cmd = newCmd(false);
    let parens = 0;
    /** Skipping the header of `for`/`select`/`case` up to its separator (`in …` included). */
    let header: 'for' | 'case' | null = null;
    /** Inside `case … in`: reading patterns (until `)`) or a body (until `;;`). */
    const cases: ('pattern' | 'body')[] = [];
    const end = (pipedNext: boolean): void => {
      this.finish(cmd, out);
      cmd = newCmd(pipedNext);
    };
    for (;;) {
      const tok = this.next();
      if (tok.t === 'eof') {
        if (stop) throw new ParseError('unterminated command substitution');
        end(false);
        if (this.heredocs.length) out.push(...this.readHeredocs());
        return;
      }
      if (tok.t === 'word') {
        const w = tok.w;
        const bare = w.lit.every((l) => !l) ? w.chars : null;
        if (cases.at(-1) === 'pattern') {
          if (bare === 'esac') cases.pop();
          this.flushSubs(cmd);
          continue;
        }
        if (header) {
          this.flushSubs(cmd);
          if (header === 'case' && bare === 'in') {
            header = null;
            cases.push('pattern');
          }
          if (header === 'for' && bare === 'do') header = null;
          continue;
        }
        if (cmd.words.length === 0 && bare !== null) {
          if (bare === 'esac' && cases.length) {
            cases.pop();
            continue;
          }
          if (bare === 'for' || bare === 'select') {
            header = 'for';
            continue;
          }
          if (bare === 'case') {
            header = 'case';
            continue;
          }
          if (bare === 'function') {
            // `function NAME [()] { …; }`: the name is not a command
            const name = this.next();
            if (name.t !== 'word') this.unread(name);
            continue;
          }
          if (RESERVED_SKIP.has(bare)) continue;
        }
        if (cmd.words.length === 0 && isAssignment(w)) {
          cmd.assigns++;
          this.flushSubs(cmd);
          continue;
        }
        this.flushSubs(cmd);
        cmd.words.push(w);
        continue;
      }
      if (tok.t === 'redir') {
        const target = this.next();
        if (target.t !== 'word') throw new ParseError(`a redirection \`${tok.op}\` without a target`);
        this.flushSubs(cmd);
        const tw = toWord(target.w);
        if (tok.op === '<<' || tok.op === '<<-') {
          this.heredocs.push({ delim: tw.value, strip: tok.op === '<<-', quoted: target.w.lit.some((l) => l) });
        }
        cmd.redirs.push({ op: tok.op, fd: tok.fd, target: tw });
        continue;
      }
      const op = tok.op;
      if (cases.at(-1) === 'pattern') {
        if (op === ')') cases[cases.length - 1] = 'body';
        else if (op === '\n' && this.heredocs.length) this.readHeredocs();
        continue;
      }
      if (header && (op === ';' || op === '\n')) {
        if (header === 'for') header = null;
        if (op === '\n' && this.heredocs.length) this.readHeredocs();
        continue;
      }
      switch (op) {
        case '(': {
          // `NAME ( )` defines a function: the name is not run
          if (cmd.words.length === 1 && cmd.redirs.length === 0) {
            const close = this.next();
            if (close.t === 'op' && close.op === ')') {
              cmd = newCmd(false);
              continue;
            }
            this.unread(close);
          }
          end(false);
          parens++;
          continue;
        }
        case ')':
          if (parens === 0 && stop === ')') {
            end(false);
            return;
          }
          if (parens > 0) parens--;
          end(false);
          continue;
        case '|':
        case '|&':
          end(true);
          continue;
        case ';;':
        case ';&':
        case ';;&':
          end(false);
          if (cases.length) cases[cases.length - 1] = 'pattern';
          continue;
        case '\n':
          end(false);
          if (this.heredocs.length) out.push(...this.readHeredocs());
          continue;
        default: // ; & && ||
          end(false);
      }
    }
  }

  private pushback: Tok | null = null;

  private unread(t: Tok): void {
    this.pushback = t;
  }

  private flushSubs(cmd: SimpleCmd): void {
    if (this.subs.length) {
      cmd.subs.push(...this.subs);
      this.subs = [];
    }
  }

  private finish(cmd: SimpleCmd, out: ShellCommand[]): void {
    this.flushSubs(cmd);
    out.push(...cmd.subs);
    if (cmd.words.length === 0) return;
    const words = cmd.words.flatMap((w) => braceExpand(w)).map(toWord);
    const stdin = stdinOf(cmd);
    const node = makeNode(words, cmd.redirs, stdin, this.depth, this.ctx);
    out.push(node);
  }

  /** Reads the bodies of the here-documents opened on the line that just ended. */
  private readHeredocs(): ShellCommand[] {
    const docs = this.heredocs;
    this.heredocs = [];
    const found: ShellCommand[] = [];
    for (const d of docs) {
      let body = '';
      for (;;) {
        if (this.i >= this.s.length) break; // bash accepts EOF as the delimiter (with a warning)
        let nl = this.s.indexOf('\n', this.i);
        if (nl < 0) nl = this.s.length;
        let line = this.s.slice(this.i, nl);
        this.i = Math.min(nl + 1, this.s.length);
        if (d.strip) line = line.replace(/^\t+/, '');
        if (line === d.delim) break;
        body += `${line}\n`;
      }
      if (!d.quoted) {
        // An unquoted here-document undergoes expansion: its substitutions run.
        const sub = new Parser(body, this.depth, this.ctx);
        sub.readDoubleBody(null);
        found.push(...sub.subs);
      }
    }
    return found;
  }

  // ───────────────────────────── tokens ─────────────────────────────

  next(): Tok {
    if (this.pushback) {
      const t = this.pushback;
      this.pushback = null;
      return t;
    }
    const s = this.s;
    for (;;) {
      const c = s[this.i];
      if (c === ' ' || c === '\t') this.i++;
      else if (c === '\\' && s[this.i + 1] === '\n') this.i += 2;
      else if (c === '#') {
        while (this.i < s.length && s[this.i] !== '\n') this.i++;
      } else break;
    }
    if (this.i >= s.length) return { t: 'eof' };
    const c = s[this.i]!;
    const rest = (n: number) => s.slice(this.i, this.i + n);
    if (c === '\n') {
      this.i++;
      return { t: 'op', op: '\n' };
    }
    // fd-numbered redirections: 2>…, 0<…
    const fdm = /^([0-9]+)(?=[<>])/.exec(s.slice(this.i, this.i + 12));
    let fd = '';
    if (fdm) {
      fd = fdm[1]!;
      this.i += fd.length;
    }
    const r = s[this.i]!;
    if (r === '<' || r === '>') {
      if (!fd && s[this.i + 1] === '(') return { t: 'word', w: this.readWord() }; // process substitution
      for (const op of ['<<<', '<<-', '<<', '<>', '<&', '>>', '>&', '>|', '<', '>']) {
        if (s.startsWith(op, this.i)) {
          this.i += op.length;
          return { t: 'redir', op, fd };
        }
      }
    }
    if (fd) this.i -= fd.length;
    for (const op of [';;&', ';;', ';&', '&&', '||', '|&', '&>>', '&>']) {
      if (rest(op.length) === op) {
        this.i += op.length;
        if (op === '&>' || op === '&>>') return { t: 'redir', op, fd: '' };
        return { t: 'op', op };
      }
    }
    if (c === ';' || c === '&' || c === '|' || c === '(' || c === ')') {
      this.i++;
      return { t: 'op', op: c };
    }
    return { t: 'word', w: this.readWord() };
  }

  private readWord(): RawWord {
    const w: RawWord = { chars: '', lit: [], dyn: false, cmdsub: false };
    const s = this.s;
    const add = (text: string, lit: boolean) => {
      w.chars += text;
      for (let k = 0; k < text.length; k++) w.lit.push(lit);
    };
    while (this.i < s.length) {
      const c = s[this.i]!;
      if ((c === '<' || c === '>') && s[this.i + 1] === '(' && w.chars === '') {
        const start = this.i;
        this.i += 2;
        this.substitute(')');
        add(s.slice(start, this.i), true);
        w.dyn = true;
        continue;
      }
      // extglob: @( ) !( ) +( ) *( ) ?( )
      if ('@!+*?'.includes(c) && s[this.i + 1] === '(') {
        const start = this.i;
        let depth = 0;
        for (; this.i < s.length; this.i++) {
          if (s[this.i] === '(') depth++;
          else if (s[this.i] === ')' && --depth === 0) break;
        }
        if (this.i >= s.length) throw new ParseError('unterminated extended glob');
        this.i++;
        add(s.slice(start, this.i), false);
        continue;
      }
      if (META.has(c)) break;
      if (c === '\\') {
        if (s[this.i + 1] === '\n') this.i += 2;
        else if (this.i + 1 >= s.length) {
          add('\\', true);
          this.i++;
        } else {
          add(s[this.i + 1]!, true);
          this.i += 2;
        }
        continue;
      }
      if (c === "'") {
        const end = s.indexOf("'", this.i + 1);
        if (end < 0) throw new ParseError('unterminated single quote');
        add(s.slice(this.i + 1, end), true);
        this.i = end + 1;
        continue;
      }
      if (c === '$' && s[this.i + 1] === "'") {
        this.i += 2;
        add(this.readAnsiC(), true);
        continue;
      }
      if (c === '"' || (c === '$' && s[this.i + 1] === '"')) {
        this.i += c === '"' ? 1 : 2;
        const inner = this.readDoubleBody('"');
        add(inner.chars, true);
        if (inner.dyn) w.dyn = true;
        if (inner.cmdsub) w.cmdsub = true;
        continue;
      }
      if (c === '$' || c === '`') {
        const e = this.readExpansion();
        if (e) {
          add(e.text, true);
          w.dyn = true;
          if (e.cmdsub) w.cmdsub = true;
          continue;
        }
      }
      add(c, false);
      this.i++;
    }
    return w;
  }

  /** The body of "…" (close = '"') or of an unquoted here-document (close = null, to the end). */
  readDoubleBody(close: '"' | null): RawWord {
    const w: RawWord = { chars: '', lit: [], dyn: false, cmdsub: false };
    const s = this.s;
    for (;;) {
      if (this.i >= s.length) {
        if (close) throw new ParseError('unterminated double quote');
        return w;
      }
      const c = s[this.i]!;
      if (c === close) {
        this.i++;
        return w;
      }
      if (c === '\\') {
        const n = s[this.i + 1];
        if (n === '\n') {
          this.i += 2;
          continue;
        }
        if (n === '$' || n === '`' || n === '\\' || (close !== null && n === '"')) {
          w.chars += n;
          this.i += 2;
          continue;
        }
      }
      if (c === '$' || c === '`') {
        const e = this.readExpansion();
        if (e) {
          w.chars += e.text;
          w.dyn = true;
          if (e.cmdsub) w.cmdsub = true;
          continue;
        }
      }
      w.chars += c;
      this.i++;
    }
  }

  /** At `$` or a backtick: reads an expansion and returns its source text, or null for a literal `$`. */
  private readExpansion(): { text: string; cmdsub: boolean } | null {
    const s = this.s;
    const start = this.i;
    const c = s[this.i]!;
    if (c === '`') {
      // Inside backticks \` \\ \$ are escapes; the rest is a script of its own.
      let inner = '';
      let k = this.i + 1;
      for (; k < s.length && s[k] !== '`'; k++) {
        if (s[k] === '\\' && (s[k + 1] === '`' || s[k + 1] === '\\' || s[k + 1] === '$')) inner += s[++k];
        else inner += s[k];
      }
      if (k >= s.length) throw new ParseError('unterminated backtick substitution');
      this.i = k + 1;
      this.subs.push(...parseScript(inner, this.depth + 1, this.ctx));
      return { text: s.slice(start, this.i), cmdsub: true };
    }
    const n = s[this.i + 1];
    if (n === '(' && s[this.i + 2] === '(') {
      // $(( arithmetic )): may hold substitutions
      let depth = 0;
      let k = this.i + 1;
      for (; k < s.length; k++) {
        if (s[k] === '(') depth++;
        else if (s[k] === ')' && --depth === 0) break;
      }
      if (k >= s.length) throw new ParseError('unterminated arithmetic expansion');
      this.scanSubstitutions(s.slice(this.i + 3, k - 1));
      this.i = k + 1;
      return { text: s.slice(start, this.i), cmdsub: false };
    }
    if (n === '(') {
      this.i += 2;
      this.substitute(')');
      return { text: s.slice(start, this.i), cmdsub: true };
    }
    if (n === '{') {
      let depth = 0;
      let k = this.i + 1;
      for (; k < s.length; k++) {
        const ch = s[k];
        if (ch === '\\') k++;
        else if (ch === '{') depth++;
        else if (ch === '}' && --depth === 0) break;
      }
      if (k >= s.length) throw new ParseError('unterminated parameter expansion');
      this.scanSubstitutions(s.slice(this.i + 2, k));
      this.i = k + 1;
      return { text: s.slice(start, this.i), cmdsub: false };
    }
    const m = /^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])/.exec(s.slice(this.i + 1, this.i + 256));
    if (!m) return null;
    this.i += 1 + m[0].length;
    return { text: s.slice(start, this.i), cmdsub: false };
  }

  /** Parses a nested list up to its closing `)` (the caller has consumed the opening). */
  private substitute(close: ')'): void {
    if (this.depth + 1 > this.ctx.maxDepth) {
      this.ctx.opaque.push(`nested deeper than ${this.ctx.maxDepth} levels`);
    }
    const inner = new Parser(this.s, this.depth + 1, this.ctx);
    inner.i = this.i;
    const out: ShellCommand[] = [];
    if (this.depth + 1 <= this.ctx.maxDepth) inner.parseList(close, out);
    else inner.skipTo(close);
    this.i = inner.i;
    this.subs.push(...out);
  }

  private skipTo(close: ')'): void {
    let depth = 1;
    for (; this.i < this.s.length; this.i++) {
      const c = this.s[this.i];
      if (c === '(') depth++;
      else if (c === close && --depth === 0) {
        this.i++;
        return;
      }
    }
    throw new ParseError('unterminated command substitution');
  }

  /** Finds the command substitutions in text that undergoes expansion (`${…}` and `$((…))` contents). */
  private scanSubstitutions(text: string): void {
    if (!/[`$]/.test(text)) return;
    const sub = new Parser(text, this.depth, this.ctx);
    sub.readDoubleBody(null);
    this.subs.push(...sub.subs);
  }

  /** The body of $'…' after the opening quote, with its escapes resolved. */
  private readAnsiC(): string {
    const s = this.s;
    let out = '';
    for (;;) {
      if (this.i >= s.length) throw new ParseError('unterminated $\'…\' quote');
      const c = s[this.i++]!;
      if (c === "'") return out.includes('\0') ? out.slice(0, out.indexOf('\0')) : out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = s[this.i++];
      if (e === undefined) throw new ParseError('unterminated $\'…\' quote');
      const simple: Record<string, string> = { a: '\x07', b: '\b', e: '\x1b', E: '\x1b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', "'": "'", '"': '"', '?': '?' };
      if (e in simple) {
        out += simple[e];
        continue;
      }
      const take = (re: RegExp, max: number): string => {
        let d = '';
        while (d.length < max && this.i < s.length && re.test(s[this.i]!)) d += s[this.i++];
        return d;
      };
      if (e >= '0' && e <= '7') {
        this.i--;
        out += String.fromCharCode(parseInt(take(/[0-7]/, 3), 8) & 0xff);
      } else if (e === 'x') {
        const d = take(/[0-9a-fA-F]/, 2);
        out += d ? String.fromCharCode(parseInt(d, 16)) : '\\x';
      } else if (e === 'u' || e === 'U') {
        const d = take(/[0-9a-fA-F]/, e === 'u' ? 4 : 8);
        const cp = d ? parseInt(d, 16) : -1;
        out += cp >= 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : `\\${e}${d}`;
      } else if (e === 'c') {
        const x = s[this.i++];
        if (x === undefined) throw new ParseError('unterminated $\'…\' quote');
        out += String.fromCharCode(x.toUpperCase().charCodeAt(0) & 0x1f);
      } else out += `\\${e}`;
    }
  }
}

/** `NAME=…` (or `NAME[i]=…`, `NAME+=…`) with the name and `=` unquoted. */
function isAssignment(w: RawWord): boolean {
  const m = /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/.exec(w.chars);
  return m !== null && w.lit.slice(0, m[0].length).every((l) => !l);
}

function toWord(w: RawWord): Word {
  let glob = false;
  for (let k = 0; k < w.chars.length && !glob; k++) {
    if (w.lit[k]) continue;
    const c = w.chars[k];
    if (c === '*' || c === '?') glob = true;
    else if (c === '[' && w.chars.length > 1) {
      for (let j = k + 1; j < w.chars.length; j++) if (w.chars[j] === ']' && !w.lit[j]) glob = true;
    }
  }
  return { value: w.chars, dyn: w.dyn, cmdsub: w.cmdsub, glob };
}

const MAX_BRACE_WORDS = 256;

/** Brace expansion of the unquoted `{a,b}` in a word (sequences such as {1..3} are left as written). */
function braceExpand(w: RawWord): RawWord[] {
  const out: RawWord[] = [];
  const go = (x: RawWord): void => {
    if (out.length >= MAX_BRACE_WORDS) return;
    const c = x.chars;
    for (let open = 0; open < c.length; open++) {
      if (c[open] !== '{' || x.lit[open]) continue;
      let depth = 0;
      const commas: number[] = [];
      let close = -1;
      for (let k = open; k < c.length; k++) {
        if (x.lit[k]) continue;
        if (c[k] === '{') depth++;
        else if (c[k] === '}' && --depth === 0) {
          close = k;
          break;
        } else if (c[k] === ',' && depth === 1) commas.push(k);
      }
      if (close < 0 || commas.length === 0) continue;
      const bounds = [open, ...commas, close];
      for (let b = 0; b + 1 < bounds.length; b++) {
        const from = bounds[b]! + 1;
        const to = bounds[b + 1]!;
        go({
          chars: c.slice(0, open) + c.slice(from, to) + c.slice(close + 1),
          lit: [...x.lit.slice(0, open), ...x.lit.slice(from, to), ...x.lit.slice(close + 1)],
          dyn: x.dyn,
          cmdsub: x.cmdsub,
        });
      }
      return;
    }
    out.push(x);
  };
  go(w);
  return out;
}

type Stdin = 'pipe' | 'heredoc' | 'herestring' | 'file' | null;

function stdinOf(cmd: SimpleCmd): Stdin {
  let s: Stdin = cmd.pipedIn ? 'pipe' : null;
  for (const r of cmd.redirs) {
    if (r.fd !== '' && r.fd !== '0') continue;
    if (r.op === '<<' || r.op === '<<-') s = 'heredoc';
    else if (r.op === '<<<') s = 'herestring';
    else if (r.op === '<' || r.op === '<>' || r.op === '<&') s = 'file';
  }
  return s;
}

// ───────────────────────────── commands that run commands ─────────────────────────────

const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'ksh93', 'mksh', 'pdksh', 'ash', 'yash', 'posh', 'rbash', 'fish']);

/** Wrappers: options that take a value (short letters, long names); the first other word is the command. */
interface WrapperSpec {
  /** Short options that take a value (as the next word or attached). */
  short: string;
  /** Long options that take a value as the next word (without `=`). */
  long?: readonly string[];
  /** Positional words before the command (timeout's DURATION, chroot's DIR, flock's FILE). */
  positional?: number;
  /** `NAME=VALUE` words before the command are assignments (env). */
  assignments?: boolean;
  /** Options after which nothing is run (`command -v`). */
  noRun?: string;
}

const WRAPPERS: Record<string, WrapperSpec> = {
  env: { short: 'uCS', long: ['--unset', '--chdir', '--split-string'], assignments: true },
  exec: { short: 'a' },
  nohup: { short: '' },
  sudo: { short: 'ugCDhprRtTU', long: ['--user', '--group', '--close-from', '--chdir', '--host', '--prompt', '--role', '--type', '--command-timeout', '--other-user', '--chroot'], noRun: 'lvkKe' },
  doas: { short: 'uC' },
  command: { short: '', noRun: 'vV' },
  builtin: { short: '' },
  time: { short: 'fo', long: ['--format', '--output'] },
  nice: { short: 'n', long: ['--adjustment'] },
  ionice: { short: 'cnp', long: ['--class', '--classdata', '--pid'] },
  timeout: { short: 'ks', long: ['--kill-after', '--signal'], positional: 1 },
  stdbuf: { short: 'ioe', long: ['--input', '--output', '--error'] },
  setsid: { short: '' },
  chroot: { short: '', long: ['--userspec', '--groups'], positional: 1 },
  flock: { short: 'wEc', long: ['--timeout', '--conflict-exit-code', '--command'], positional: 1 },
  busybox: { short: '' },
  xargs: { short: 'IiLlnPsdEeaR', long: ['--max-args', '--max-procs', '--max-chars', '--delimiter', '--arg-file', '--replace', '--max-lines', '--eof', '--process-slot-var'] },
  nsenter: { short: 'tSGw', long: ['--target'] },
  unshare: { short: '' },
};

function basename(p: string): string {
  const k = p.lastIndexOf('/');
  return k >= 0 ? p.slice(k + 1) : p;
}

function makeNode(words: Word[], redirs: readonly Redir[], stdin: Stdin, depth: number, ctx: Ctx): ShellCommand {
  const red = redirs.map((r) => `${r.fd}${r.op} ${r.target.value}`);
  const text = [...words.map((w) => w.value), ...red].join(' ');
  const node: ShellCommand = { words: words.map((w) => w.value), text, inner: [] };
  const name = words[0]!;
  if (name.cmdsub) ctx.opaque.push(`command substitution in the command name (${clip(name.value)})`);
  else if (name.dyn) ctx.opaque.push(`parameter expansion in the command name (${clip(name.value)})`);
  else if (name.glob) ctx.opaque.push(`glob in the command name (${clip(name.value)})`);
  else node.inner = runs(words, stdin, redirs, depth, ctx);
  return node;
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** A node for a command a wrapper or shell runs (one level deeper). */
function child(words: Word[], stdin: Stdin, depth: number, ctx: Ctx): ShellCommand[] {
  if (words.length === 0) return [];
  if (depth + 1 > ctx.maxDepth) {
    ctx.opaque.push(`nested deeper than ${ctx.maxDepth} levels`);
    return [];
  }
  return [makeNode(words, [], stdin, depth + 1, ctx)];
}

function script(w: Word, what: string, depth: number, ctx: Ctx): ShellCommand[] {
  if (w.dyn) {
    ctx.opaque.push(`the script given to ${what} is built from expansions (${clip(w.value)})`);
    return [];
  }
  return parseScript(w.value, depth + 1, ctx);
}

/** What a command runs besides itself. */
function runs(words: Word[], stdin: Stdin, redirs: readonly Redir[], depth: number, ctx: Ctx): ShellCommand[] {
  const name = basename(words[0]!.value);
  const args = words.slice(1);
  if (SHELLS.has(name)) return shellRuns(name, args, stdin, redirs, depth, ctx);
  if (name === 'eval') {
    if (args.length === 0) return [];
    return script({ value: args.map((a) => a.value).join(' '), dyn: args.some((a) => a.dyn), cmdsub: false, glob: false }, 'eval', depth, ctx);
  }
  if (name === 'alias') {
    const out: ShellCommand[] = [];
    for (const a of args) {
      const eq = a.value.indexOf('=');
      if (eq > 0) out.push(...script({ ...a, value: a.value.slice(eq + 1) }, 'alias', depth, ctx));
    }
    return out;
  }
  if (name === 'trap') {
    const first = args[0];
    if (!first || first.value.startsWith('-')) return [];
    return script(first, 'trap', depth, ctx);
  }
  if (name === 'su' || name === 'runuser') {
    for (let k = 0; k < args.length; k++) {
      const v = args[k]!.value;
      if ((v === '-c' || v === '--command') && args[k + 1]) return script(args[k + 1]!, name, depth, ctx);
      if (v.startsWith('--command=')) return script({ ...args[k]!, value: v.slice(10) }, name, depth, ctx);
    }
    return [];
  }
  if (name === 'watch') {
    let k = 0;
    let execMode = false;
    while (k < args.length && args[k]!.value.startsWith('-')) {
      const v = args[k]!.value;
      if (v === '--') {
        k++;
        break;
      }
      if (v === '-x' || v === '--exec') execMode = true;
      k += /^-[ngq]$|^--(interval|differences|equexit)$/.test(v) ? 2 : 1;
    }
    const rest = args.slice(k);
    if (rest.length === 0) return [];
    if (execMode) return child(rest, null, depth, ctx);
    return script({ value: rest.map((a) => a.value).join(' '), dyn: rest.some((a) => a.dyn), cmdsub: false, glob: false }, 'watch', depth, ctx);
  }
  if (name === 'find') {
    const out: ShellCommand[] = [];
    for (let k = 0; k < args.length; k++) {
      if (!/^-(exec|execdir|ok|okdir)$/.test(args[k]!.value)) continue;
      let e = k + 1;
      while (e < args.length && args[e]!.value !== ';' && args[e]!.value !== '+') e++;
      out.push(...child(args.slice(k + 1, e), null, depth, ctx));
      k = e;
    }
    return out;
  }
  const spec = WRAPPERS[name];
  if (!spec) return [];
  return wrapperRuns(name, spec, args, stdin, depth, ctx);
}

function wrapperRuns(name: string, spec: WrapperSpec, args: Word[], stdin: Stdin, depth: number, ctx: Ctx): ShellCommand[] {
  let k = 0;
  let positional = spec.positional ?? 0;
  const extra: ShellCommand[] = [];
  for (; k < args.length; k++) {
    const w = args[k]!;
    const v = w.value;
    if (v === '--') {
      k++;
      break;
    }
    if (v.startsWith('--')) {
      const eq = v.indexOf('=');
      const opt = eq > 0 ? v.slice(0, eq) : v;
      if ((name === 'env' && opt === '--split-string') || (name === 'flock' && opt === '--command')) {
        const val = eq > 0 ? { ...w, value: v.slice(eq + 1) } : args[++k];
        if (val) extra.push(...script(val, `${name} ${opt}`, depth, ctx));
        continue;
      }
      if (eq < 0 && spec.long?.includes(opt)) k++;
      continue;
    }
    if (v.startsWith('-') && v.length > 1 && !(name === 'nice' && /^-\d+$/.test(v))) {
      for (let j = 1; j < v.length; j++) {
        const f = v[j]!;
        if (spec.noRun?.includes(f)) return extra;
        if (spec.short.includes(f)) {
          const attached = v.slice(j + 1);
          if ((name === 'env' && f === 'S') || (name === 'flock' && f === 'c')) {
            const val = attached ? { ...w, value: attached } : args[++k];
            if (val) extra.push(...script(val, `${name} -${f}`, depth, ctx));
          } else if (!attached && !(name === 'xargs' && 'ile'.includes(f))) k++; // xargs -i/-l/-e take an optional attached value
          break;
        }
      }
      continue;
    }
    if (name === 'nice' && /^-\d+$/.test(v)) continue;
    if (spec.assignments && /^[A-Za-z_][A-Za-z0-9_]*=/.test(v)) continue;
    if (positional > 0) {
      positional--;
      continue;
    }
    break;
  }
  const rest = args.slice(k);
  if (name === 'time' || name === 'exec' || name === 'command' || name === 'builtin' || name === 'nohup') return [...extra, ...child(rest, stdin, depth, ctx)];
  return [...extra, ...child(rest, name === 'xargs' ? null : stdin, depth, ctx)];
}

function shellRuns(name: string, args: Word[], stdin: Stdin, redirs: readonly Redir[], depth: number, ctx: Ctx): ShellCommand[] {
  let c = false;
  let readsStdin = false;
  let k = 0;
  for (; k < args.length; k++) {
    const v = args[k]!.value;
    if (v === '--' || v === '-') {
      k++;
      break;
    }
    if (v.startsWith('--')) {
      if (v === '--rcfile' || v === '--init-file') k++;
      if (name === 'fish' && (v === '--command' || v.startsWith('--command='))) {
        if (v.includes('=')) return script({ ...args[k]!, value: v.slice(v.indexOf('=') + 1) }, name, depth, ctx);
        c = true;
      }
      continue;
    }
    if ((v.startsWith('-') || v.startsWith('+')) && v.length > 1) {
      for (let j = 1; j < v.length; j++) {
        const f = v[j]!;
        if (f === 'c') c = true;
        else if (f === 's') readsStdin = true;
        else if (f === 'o' || f === 'O' || f === 'C') {
          k++; // -o OPTION
          break;
        }
      }
      continue;
    }
    break;
  }
  if (c) {
    const body = args[k];
    if (!body) return [];
    return script(body, `${name} -c`, depth, ctx);
  }
  if (!readsStdin && k < args.length) return []; // a script file on the host
  if (stdin === 'herestring') {
    const r = [...redirs].reverse().find((x) => x.op === '<<<');
    if (r) return script(r.target, `${name} <<<`, depth, ctx);
  }
  if (stdin === 'heredoc') ctx.opaque.push(`a here-document feeding ${name}`);
  else if (stdin === 'pipe') ctx.opaque.push(`${name} reads its commands from a pipe`);
  else if (stdin === null && !ctx.interactive) ctx.opaque.push(`${name} reads its commands from the channel's input`);
  return [];
}
