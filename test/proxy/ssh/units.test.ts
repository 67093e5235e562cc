/**
 * The sans-I/O parts of the SSH tunnel: output masking split at every offset, the shell line tracker, the
 * sftp framer and describer, the pinned host key parser, asciicast output.
 */
import { randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { toAsciicast } from '../../../src/audit/asciicast.js';
import { createDlpEngine } from '../../../src/dlp/index.js';
import { fingerprint, generateClientKey, hostKeyMatches, parsePinnedHostKey } from '../../../src/proxy/ssh/keys.js';
import { LineTracker, looksLikeSecretPrompt } from '../../../src/proxy/ssh/line.js';
import { incompleteTail, OutputMasker, validRunEnd } from '../../../src/proxy/ssh/output.js';
import { describeSftpPacket, formatSftpOp, SFTP_MAX_PACKET, SftpFramer } from '../../../src/proxy/ssh/sftp.js';

const engine = createDlpEngine({ entities: ['email', 'credit_card'], masker: 'redact' });

function maskAll(chunks: Buffer[]): Buffer {
  const out: Buffer[] = [];
  const m = new OutputMasker({ engine, idle: 1_000_000, emit: (b) => out.push(b) });
  for (const c of chunks) m.push(c);
  m.end();
  return Buffer.concat(out);
}

describe('OutputMasker', () => {
  const text = Buffer.from('\x1b[32mok\x1b[0m Grüße 😀 card 4111 1111 1111 1111 mail jane.doe@example.com \x1b[1mend\x1b[0m\n', 'utf8');
  const whole = maskAll([text]);

  it('masks, keeping ANSI and UTF-8', () => {
    const s = whole.toString('utf8');
    expect(s).not.toContain('4111');
    expect(s).not.toContain('jane.doe@example.com');
    expect(s.startsWith('\x1b[32mok\x1b[0m Grüße 😀 card ')).toBe(true);
    expect(s.endsWith(' \x1b[1mend\x1b[0m\n')).toBe(true);
  });

  it('gives the same bytes for every split into two packets (no partial leak, no broken UTF-8)', () => {
    for (let i = 1; i < text.length; i++) {
      expect(maskAll([text.subarray(0, i), text.subarray(i)]).equals(whole), `split at ${i}`).toBe(true);
    }
  });

  it('passes bytes that are not UTF-8 unchanged and masks the text around them', () => {
    const bin = Buffer.concat([Buffer.from('a jane.doe@example.com '), Buffer.from([0xff, 0x00, 0xc3]), Buffer.from(' b')]);
    const out = maskAll([bin]);
    expect(out.includes(Buffer.from([0xff, 0x00, 0xc3]))).toBe(true);
    expect(out.toString('latin1')).not.toContain('jane.doe@example.com');
  });

  it('passes random binary (no "@", no digits) unchanged, including a sequence cut at the very end', () => {
    const data = Buffer.from([...randomBytes(200_000)].filter((b) => b !== 0x40 && (b < 0x30 || b > 0x39)));
    const withCut = Buffer.concat([data, Buffer.from([0xe2, 0x82])]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < withCut.length; i += 32768) chunks.push(withCut.subarray(i, i + 32768));
    expect(maskAll(chunks).equals(withCut)).toBe(true);
  });

  it('passes everything unchanged without an engine', () => {
    const out: Buffer[] = [];
    const m = new OutputMasker({ engine: null, idle: 'immediate', emit: (b) => out.push(b) });
    m.push(text);
    m.end();
    expect(Buffer.concat(out).equals(text)).toBe(true);
  });

  it('flushes held output when idle', async () => {
    const out: Buffer[] = [];
    const m = new OutputMasker({ engine, idle: 'immediate', emit: (b) => out.push(b) });
    m.push(Buffer.from('$ '));
    expect(Buffer.concat(out).toString()).toBe('');
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(out).toString()).toBe('$ ');
  });

  it('finds UTF-8 boundaries', () => {
    const e = Buffer.from('é😀');
    expect(incompleteTail(e.subarray(0, 1))).toBe(0);
    expect(incompleteTail(e.subarray(0, 4))).toBe(2);
    expect(incompleteTail(e)).toBe(e.length);
    expect(validRunEnd(Buffer.from([0x61, 0xff, 0x62]), 0)).toBe(1);
    expect(validRunEnd(Buffer.from([0xed, 0xa0, 0x80]), 0)).toBe(0); // a UTF-16 surrogate is not UTF-8
  });
});

describe('LineTracker', () => {
  const enters = (t: LineTracker, s: string) => t.feed(Buffer.from(s)).filter((p) => p.kind === 'enter');

  it('reconstructs typed lines with erasing', () => {
    const t = new LineTracker();
    expect(enters(t, 'ls -la\r')).toMatchObject([{ line: 'ls -la', certain: true }]);
    expect(enters(t, 'rmx\x7f -rf /tmp/x\r')).toMatchObject([{ line: 'rm -rf /tmp/x', certain: true }]);
    expect(enters(t, 'junk\x15echo ok\r')).toMatchObject([{ line: 'echo ok', certain: true }]);
    expect(enters(t, 'echo one two\x17three\r')).toMatchObject([{ line: 'echo one three', certain: true }]);
    expect(enters(t, 'ü\x7fa\r')).toMatchObject([{ line: 'a', certain: true }]);
  });

  it('marks lines edited with cursor keys, history or completion as uncertain', () => {
    const t = new LineTracker();
    expect(enters(t, 'echo ab\x1b[Dc\r')).toMatchObject([{ line: 'echo abc', certain: false }]);
    expect(enters(t, 'sys\t\r')).toMatchObject([{ certain: false }]);
    expect(enters(t, '\x1b[200~echo pasted\x1b[201~\r')).toMatchObject([{ line: 'echo pasted', certain: true }]);
  });

  it('keeps escape state across chunks and splits the bytes around Enter', () => {
    const t = new LineTracker();
    expect(t.feed(Buffer.from('a\x1b'))).toEqual([{ kind: 'bytes', data: Buffer.from('a\x1b') }]);
    const p = t.feed(Buffer.from('[Ab\rc'));
    expect(p.map((x) => x.kind)).toEqual(['bytes', 'enter', 'bytes']);
    expect(p[1]).toMatchObject({ line: 'ab', certain: false });
  });

  it('recognises secret prompts', () => {
    expect(looksLikeSecretPrompt('[sudo] password for root: ')).toBe(true);
    expect(looksLikeSecretPrompt('Enter passphrase for key:')).toBe(true);
    expect(looksLikeSecretPrompt('root@box:~# ')).toBe(false);
  });
});

describe('sftp', () => {
  const str = (s: string) => {
    const b = Buffer.from(s);
    const l = Buffer.alloc(4);
    l.writeUInt32BE(b.length);
    return Buffer.concat([l, b]);
  };
  const packet = (type: number, ...fields: Buffer[]) => {
    const body = Buffer.concat([Buffer.from([type, 0, 0, 0, 7]), ...fields]);
    const l = Buffer.alloc(4);
    l.writeUInt32BE(body.length);
    return Buffer.concat([l, body]);
  };
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };

  it('frames packets split at every offset', () => {
    const stream = Buffer.concat([packet(3, str('/etc/hosts'), u32(1), u32(0)), packet(18, str('/a'), str('/b')), packet(13, str('/c'))]);
    for (let i = 0; i <= stream.length; i++) {
      const f = new SftpFramer();
      const got = [...f.push(stream.subarray(0, i)), ...f.push(stream.subarray(i))];
      expect(got.map((p) => formatSftpOp(describeSftpPacket(p)!))).toEqual(['sftp open(read) "/etc/hosts"', 'sftp rename "/a" "/b"', 'sftp remove "/c"']);
    }
  });

  it('frames packets split into three pieces at every pair of offsets, and fed one byte at a time', () => {
    const stream = Buffer.concat([packet(3, str('/etc/hosts'), u32(1), u32(0)), packet(18, str('/a'), str('/b')), packet(13, str('/c'))]);
    const want = ['sftp open(read) "/etc/hosts"', 'sftp rename "/a" "/b"', 'sftp remove "/c"'];
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j++) {
        const f = new SftpFramer();
        const got = [...f.push(stream.subarray(0, i)), ...f.push(stream.subarray(i, j)), ...f.push(stream.subarray(j))];
        expect(got.map((p) => formatSftpOp(describeSftpPacket(p)!))).toEqual(want);
      }
    }
    const f = new SftpFramer();
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) got.push(...f.push(stream.subarray(i, i + 1)));
    expect(Buffer.concat(got).equals(stream)).toBe(true);
    expect(got.map((p) => formatSftpOp(describeSftpPacket(p)!))).toEqual(want);
  });

  it('rejects an oversized length even when its prefix arrives in pieces', () => {
    const f = new SftpFramer();
    const big = u32(SFTP_MAX_PACKET + 1);
    expect(f.push(big.subarray(0, 2))).toEqual([]);
    expect(() => f.push(big.subarray(2))).toThrow(/sftp packet/);
  });

  it('rejects an oversized length and tolerates a malformed body', () => {
    expect(() => new SftpFramer().push(u32(SFTP_MAX_PACKET + 1))).toThrow();
    expect(describeSftpPacket(packet(3, u32(1000)))).toMatchObject({ op: 'malformed request type 3' });
    expect(describeSftpPacket(packet(5, str('h'), u32(0), u32(0), u32(10)))).toBeNull(); // READ: not recorded
  });
});

describe('host keys', () => {
  it('parses a fingerprint or a known_hosts line and matches the presented key', () => {
    const k = generateClientKey(ssh2);
    const wire = k.parsed.getPublicSSH();
    expect(hostKeyMatches(parsePinnedHostKey(fingerprint(wire)), wire)).toBe(true);
    expect(hostKeyMatches(parsePinnedHostKey(`[h]:22 ${k.publicLine}`), wire)).toBe(true);
    expect(hostKeyMatches(parsePinnedHostKey(`SHA256:${'A'.repeat(43)}`), wire)).toBe(false);
    expect(() => parsePinnedHostKey('nonsense')).toThrow(/neither/);
  });
});

describe('toAsciicast', () => {
  it('writes a v2 header and frames in time order, shortening idle gaps on request', () => {
    const out = toAsciicast({ width: 100, height: 30, timestamp: '2025-01-02T03:04:05.000Z', title: 't' }, [
      { t: 0.5, data: 'a', stream: 'o', channelId: 1 },
      { t: 20, data: 'b\u001b[0m', stream: 'o', channelId: 1 },
      { t: 0.1, data: 'other', stream: 'o', channelId: 2 },
    ], { channelId: 1, idleTimeLimit: 2 });
    const [h, ...lines] = out.trimEnd().split('\n');
    expect(JSON.parse(h!)).toEqual({ version: 2, width: 100, height: 30, timestamp: 1735787045, idle_time_limit: 2, title: 't' });
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      [0.5, 'o', 'a'],
      [2.5, 'o', 'b\u001b[0m'],
    ]);
  });
});
