/**
 * The shell-command normaliser (policy/ssh/shell.ts) and SSH command/path matching over it: every bypass of a
 * `cat /etc/shadow` rule resolves to that command; what cannot be resolved is opaque with a reason; deny rules
 * match any simple command and fail closed on opaque lines; allow rules must cover every simple command; `paths`
 * rules decide file reads only.
 */
import { describe, expect, it } from 'vitest';
import type { Rule } from '../../src/config/types.js';
import { evaluate, type PolicyAction } from '../../src/policy/index.js';
import { analyzeShell, flattenCommands } from '../../src/policy/ssh/index.js';
import { ctx, policy } from './helpers.js';

const texts = (line: string, interactive = false) => flattenCommands(analyzeShell(line, { interactive }).commands).map((c) => c.text);
const opaque = (line: string, o: { interactive?: boolean; maxDepth?: number } = {}) => analyzeShell(line, o).opaque;

describe('the shell normaliser resolves what the shell runs', () => {
  it.each([
    [`cat /etc/sha""dow`, ['cat /etc/shadow']],
    [`cat /etc/sha''dow`, ['cat /etc/shadow']],
    [`c\\at /etc/shadow`, ['cat /etc/shadow']],
    [`"c"'a't /etc/shadow`, ['cat /etc/shadow']],
    [`$'\\x63at' /etc/shadow`, ['cat /etc/shadow']],
    [`$'\\143\\141t' /etc/shadow`, ['cat /etc/shadow']],
    [`$'\\u0063at' /etc/shadow`, ['cat /etc/shadow']],
    [`$"cat" /etc/shadow`, ['cat /etc/shadow']],
    [`cat \\\n/etc/shadow`, ['cat /etc/shadow']],
    [`{cat,/etc/shadow}`, ['cat /etc/shadow']],
    [`true; cat /etc/shadow`, ['true', 'cat /etc/shadow']],
    [`true && cat /etc/shadow`, ['true', 'cat /etc/shadow']],
    [`false || cat /etc/shadow`, ['false', 'cat /etc/shadow']],
    [`echo | cat /etc/shadow`, ['echo', 'cat /etc/shadow']],
    [`sleep 1 & cat /etc/shadow`, ['sleep 1', 'cat /etc/shadow']],
    [`true\ncat /etc/shadow`, ['true', 'cat /etc/shadow']],
    [`( cat /etc/shadow )`, ['cat /etc/shadow']],
    [`{ cat /etc/shadow; }`, ['cat /etc/shadow']],
    [`if true; then cat /etc/shadow; fi`, ['true', 'cat /etc/shadow']],
    [`for f in a; do cat /etc/shadow; done`, ['cat /etc/shadow']],
    [`case x in a|b) cat /etc/shadow;; esac`, ['cat /etc/shadow']],
    [`f() { cat /etc/shadow; }; f`, ['cat /etc/shadow', 'f']],
    [`echo $(cat /etc/shadow)`, ['cat /etc/shadow', 'echo $(cat /etc/shadow)']],
    ['echo `cat /etc/shadow`', ['cat /etc/shadow', 'echo `cat /etc/shadow`']],
    [`diff <(cat /etc/shadow) x`, ['cat /etc/shadow', 'diff <(cat /etc/shadow) x']],
    [`echo "$(cat /etc/shadow)"`, ['cat /etc/shadow', 'echo $(cat /etc/shadow)']],
    [`X=1 2>/dev/null cat /etc/shadow`, ['cat /etc/shadow 2> /dev/null']],
    [`< /etc/shadow cat`, ['cat < /etc/shadow']],
    [`cat <<EOF\n$(cat /etc/shadow)\nEOF`, ['cat << EOF', 'cat /etc/shadow']],
    [`cat <<'EOF'\n$(cat /etc/shadow)\nEOF`, ['cat << EOF']],
    [`bash -c 'cat /etc/shadow'`, ['bash -c cat /etc/shadow', 'cat /etc/shadow']],
    [`/bin/bash -lc 'cat /etc/shadow'`, ['/bin/bash -lc cat /etc/shadow', 'cat /etc/shadow']],
    [`sh -c "sh -c 'cat /etc/shadow'"`, [`sh -c sh -c 'cat /etc/shadow'`, 'sh -c cat /etc/shadow', 'cat /etc/shadow']],
    [`bash <<< 'cat /etc/shadow'`, ['bash <<< cat /etc/shadow', 'cat /etc/shadow']],
    [`eval 'cat /etc/shadow'`, ['eval cat /etc/shadow', 'cat /etc/shadow']],
    [`sudo -u root cat /etc/shadow`, ['sudo -u root cat /etc/shadow', 'cat /etc/shadow']],
    [`env -i A=1 nohup nice -n 5 cat /etc/shadow`, ['env -i A=1 nohup nice -n 5 cat /etc/shadow', 'nohup nice -n 5 cat /etc/shadow', 'nice -n 5 cat /etc/shadow', 'cat /etc/shadow']],
    [`exec command cat /etc/shadow`, ['exec command cat /etc/shadow', 'command cat /etc/shadow', 'cat /etc/shadow']],
    [`timeout 5 cat /etc/shadow`, ['timeout 5 cat /etc/shadow', 'cat /etc/shadow']],
    [`echo /etc/shadow | xargs -n1 cat`, ['echo /etc/shadow', 'xargs -n1 cat', 'cat']],
    [`find /etc -name shadow -exec cat {} \\;`, ['find /etc -name shadow -exec cat {} ;', 'cat {}']],
    [`su -c 'cat /etc/shadow'`, ['su -c cat /etc/shadow', 'cat /etc/shadow']],
    [`alias x='cat /etc/shadow'`, ['alias x=cat /etc/shadow', 'cat /etc/shadow']],
    [`echo 'cat /etc/shadow is denied'`, ['echo cat /etc/shadow is denied']],
    [`ls -la # ; cat /etc/shadow`, ['ls -la']],
  ])('%j', (line, want) => {
    expect(texts(line)).toEqual(want);
    expect(opaque(line)).toEqual([]);
  });

  it('command -v and sudo -l run nothing', () => {
    expect(texts('command -v cat')).toEqual(['command -v cat']);
    expect(texts('sudo -l cat')).toEqual(['sudo -l cat']);
  });

  it.each([
    ['$X /etc/shadow', /parameter expansion in the command name/],
    ['${X} /etc/shadow', /parameter expansion in the command name/],
    ['$(echo cat) /etc/shadow', /command substitution in the command name/],
    ['`echo cat` /etc/shadow', /command substitution in the command name/],
    ['/bin/c?t /etc/shadow', /glob in the command name/],
    ['/bin/ca[t] /etc/shadow', /glob in the command name/],
    ['sudo $X /etc/shadow', /parameter expansion in the command name/],
    ['sh -c "$CMD"', /script given to sh -c is built from expansions/],
    ['eval "$CMD"', /script given to eval is built from expansions/],
    ['bash <<EOF\ncat /etc/shadow\nEOF', /here-document feeding bash/],
    ["echo 'cat /etc/shadow' | sh", /sh reads its commands from a pipe/],
    ['bash', /bash reads its commands from the channel's input/],
    ["echo 'cat /etc/shadow", /unterminated single quote/],
    ['echo "cat /etc/shadow', /unterminated double quote/],
    ["echo $'cat", /unterminated \$'…' quote/],
    ['echo $(cat /etc/shadow', /unterminated command substitution/],
    ['echo `cat /etc/shadow', /unterminated backtick substitution/],
  ])('%j is opaque', (line, why) => {
    expect(opaque(line).join('; ')).toMatch(why);
  });

  it('a shell without a script in an interactive shell reads the terminal, whose lines are decided one by one', () => {
    expect(opaque('bash', { interactive: true })).toEqual([]);
    expect(opaque('bash script.sh')).toEqual([]);
  });

  it('stops at the nesting depth limit and says so', () => {
    let line = 'cat /etc/shadow';
    for (let i = 0; i < 12; i++) line = `sh -c ${"'" + line.replace(/'/g, `'\\''`) + "'"}`;
    expect(opaque(line).join()).toMatch(/nested deeper than 8 levels/);
    expect(texts(line)).not.toContain('cat /etc/shadow');
    expect(opaque(line, { maxDepth: 20 })).toEqual([]);
    expect(texts(line, false)).toHaveLength(9);
    let subs = 'cat /etc/shadow';
    for (let i = 0; i < 12; i++) subs = `echo $(${subs})`;
    expect(opaque(subs).join()).toMatch(/nested deeper than 8 levels/);
  });

  it('never throws on odd input', () => {
    for (const s of ['', ' ', ';;', '|', '&&', ')', '(', '<', '2>', '${', '$((', '\\', "'", '"', '`', '{', '}', 'a=(', '<<', 'case', 'for', '\0', '$\'\\']) {
      expect(() => analyzeShell(s)).not.toThrow();
    }
  });
});

const ssh = (command: string, channel: 'exec' | 'shell' = 'exec'): PolicyAction => ({ type: 'ssh', channel, command });
const rule = (name: string, action: Rule['action'], when: Rule['when'], extra: Partial<Rule> = {}): Rule => ({ name, action, when, ...extra });

describe('ssh command rules over the normalised line', () => {
  const anchored = policy('g', rule('no-shadow', 'deny', { ssh: { command: '^cat /etc/shadow' } }));

  it('a deny rule matches any simple command the shell would run (exec and shell lines)', () => {
    for (const line of [`cat /etc/sha""dow`, `c\\at /etc/shadow`, `$'\\x63at' /etc/shadow`, `bash -c 'cat /etc/shadow'`, `true; cat /etc/shadow`, `true && cat /etc/shadow`, `echo | cat /etc/shadow`, `sh -c "sh -c 'cat /etc/shadow'"`, '/bin/cat /etc/shadow']) {
      expect(evaluate(ctx([anchored], ssh(line))), line).toMatchObject({ action: 'deny', rule: { rule: 'no-shadow' } });
      expect(evaluate(ctx([anchored], ssh(line, 'shell'))), line).toMatchObject({ action: 'deny' });
    }
    expect(evaluate(ctx([anchored], ssh(`echo 'cat /etc/shadow is denied'`))).action).toBe('allow');
    expect(evaluate(ctx([anchored], ssh('ls -la'))).action).toBe('allow');
  });

  it('an opaque line fails closed while a deny or approve command rule applies, and says why', () => {
    const d = evaluate(ctx([anchored], ssh('$X /etc/shadow')));
    expect(d).toMatchObject({ action: 'deny', basis: 'fail_closed', rule: { rule: 'no-shadow' } });
    expect(d.message).toMatch(/cannot tell statically what this command line runs \(parameter expansion in the command name \(\$X\)\)/);
    const appr = policy('a', rule('sudo', 'approve', { ssh: { command: '^sudo ' } }, { approvers: ['group:sre'] }));
    expect(evaluate(ctx([appr], ssh('eval "$C"')))).toMatchObject({ action: 'deny', basis: 'fail_closed' });
    // A rule for another identity does not apply: nothing to fail closed for.
    const other = policy('o', rule('no-shadow', 'deny', { identity: { groups: ['nobody'] }, ssh: { command: '^cat /etc/shadow' } }));
    expect(evaluate(ctx([other], ssh('$X /etc/shadow'))).action).toBe('allow');
    // A rule without a command condition is not affected.
    const chan = policy('c', rule('exec-ok', 'deny', { ssh: { channels: ['forward'] } }));
    expect(evaluate(ctx([chan], ssh('$X /etc/shadow'))).action).toBe('allow');
  });

  it('an allow rule covers a line only when it covers every simple command', () => {
    const only = policy('only', rule('ls-echo', 'allow', { ssh: { command: '^(ls|echo)( |$)' } }));
    const d = (line: string) => evaluate(ctx([only], ssh(line), { default: 'deny' })).action;
    expect(d('ls -la')).toBe('allow');
    expect(d('ls / && echo done')).toBe('allow');
    expect(d('ls; rm -rf /tmp/x')).toBe('deny');
    expect(d('echo $(rm -rf /tmp/x)')).toBe('deny');
    expect(d("ls | sh -c 'rm x'")).toBe('deny');
    expect(d('ls $X')).toBe('allow');
    expect(d('$X')).toBe('deny');
    // A wrapper is covered by its own text or by everything it runs.
    const sudo = policy('s', rule('sudo-ls', 'allow', { ssh: { command: '^(sudo |ls)' } }));
    expect(evaluate(ctx([sudo], ssh('sudo rm x; ls'), { default: 'deny' })).action).toBe('allow');
    // Each allow rule covers on its own: two rules that each cover a part do not allow the whole line.
    const split = policy('t', rule('sudo', 'allow', { ssh: { command: '^sudo ' } }), rule('ls', 'allow', { ssh: { command: '^ls' } }));
    expect(evaluate(ctx([split], ssh('sudo rm x; ls'), { default: 'deny' })).action).toBe('deny');
    expect(evaluate(ctx([sudo], ssh("bash -c 'ls'"), { default: 'deny' })).action).toBe('allow');
    expect(evaluate(ctx([sudo], ssh("bash -c 'ls; rm x'"), { default: 'deny' })).action).toBe('deny');
  });

  it('forward targets are matched as they are', () => {
    const fwd = policy('f', rule('db', 'allow', { ssh: { command: '^db:5432$', channels: ['forward'] } }));
    expect(evaluate(ctx([fwd], { type: 'ssh', channel: 'forward', command: 'db:5432', target: 'db:5432' }, { default: 'deny' })).action).toBe('allow');
  });
});

describe('ssh paths rules decide file reads', () => {
  const p = policy(
    'files',
    rule('keys', 'deny', { ssh: { paths: ['**/.ssh/**', '/etc/shadow'] } }, { message: 'keys stay' }),
    rule('all-exec', 'deny', { ssh: { channels: ['exec'] } }),
  );
  const read = (path: string, channel: 'exec' | 'sftp' = 'sftp'): PolicyAction => ({ type: 'ssh', channel, path });

  it('denies a matching path, after resolving . and .. and repeated slashes', () => {
    for (const path of ['/etc/shadow', '/tmp/../etc//shadow', '/root/.ssh/id_ed25519', '.ssh/authorized_keys', 'home/x/./.ssh/k']) {
      expect(evaluate(ctx([p], read(path))), path).toMatchObject({ action: 'deny', rule: { rule: 'keys' }, message: 'keys stay' });
    }
  });

  it('considers only paths rules: other files pass whatever the default and the channel rules say', () => {
    const d = evaluate(ctx([p], read('/etc/hosts', 'exec'), { default: 'deny' }));
    expect(d).toMatchObject({ action: 'allow', basis: 'default', message: 'no paths rule matches this file' });
  });

  it('a paths rule does not match a command or a channel', () => {
    const q = policy('q', rule('keys', 'deny', { ssh: { paths: ['/etc/**'] } }));
    expect(evaluate(ctx([q], ssh('cat /etc/shadow'))).action).toBe('allow');
    expect(evaluate(ctx([q], { type: 'ssh', channel: 'sftp' })).action).toBe('allow');
  });
});
