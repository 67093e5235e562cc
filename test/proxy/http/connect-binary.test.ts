/**
 * `dlpctl connect` without a command, as people use it (the built binary; `npm run build` first): what it
 * prints must be enough to use the tunnel, and right for the kind of resource.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath, testEnv } from '../../helpers/cli.js';

const REAL_KEY = 'sk-real-upstream-key-do-not-leak-5f2c9a';
let dir: string;
let upstream: http.Server;
let seen: string[] = [];

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-connect-bin-'));
  upstream = http.createServer((req, res) => {
    seen.push(String(req.headers.authorization));
    req.resume();
    req.on('end', () => res.end('{"ok":true}'));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as net.AddressInfo).port;
  await fs.writeFile(
    path.join(dir, 'dlpctl.yaml'),
    `version: 1
resources:
  api:
    kind: http
    target: http://127.0.0.1:${port}
    headers: { Authorization: "Bearer \${env:REAL_KEY}" }
  box:
    kind: ssh
    target: ssh://deploy@127.0.0.1:9
    password: \${env:REAL_KEY}
    hostKey: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
`,
  );
});
afterAll(async () => {
  await new Promise<void>((r) => upstream.close(() => r()));
  await fs.rm(dir, { recursive: true, force: true });
});

/** Starts `dlpctl connect NAME` with no command; resolves once it printed `lines` stdout lines. */
async function foreground(name: string, extra: string[], lines: number) {
  const child = spawn(process.execPath, [binPath, 'connect', name, '--config', path.join(dir, 'dlpctl.yaml'), '--store', `sqlite:${path.join(dir, 's.db')}`, ...extra], {
    env: testEnv(dir, { REAL_KEY, NO_COLOR: '1' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const got = await new Promise<string[]>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const ls = out.split('\n');
      if (ls.length > lines) resolve(ls.slice(0, lines));
    });
    child.once('exit', (code) => reject(new Error(`dlpctl exited ${code}: ${err}`)));
  });
  return {
    lines: got,
    stop: async () => {
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      return { code: await exited, stdout: out, stderr: err };
    },
  };
}

function curl(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '-o', '-', '-w', '\n%{http_code}', ...args], { encoding: 'utf8' }, (e, stdout) => resolve({ code: e ? 1 : 0, stdout }));
  });
}

describe('connect without a command prints what a client needs', () => {
  it('http: the URL, then the tunnel token; a request with that token reaches the upstream with the injected key', async () => {
    seen = [];
    const t = await foreground('api', [], 2);
    const [url, token] = t.lines as [string, string];
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(token).toMatch(/^[\w-]{20,}$/);
    const ok = await curl(['-H', `Authorization: Bearer ${token}`, `${url}/v1/models`]);
    expect(ok.stdout.trim().split('\n').at(-1)).toBe('200');
    expect(seen).toEqual([`Bearer ${REAL_KEY}`]);
    const refused = await curl([`${url}/v1/models`]);
    expect(refused.stdout.trim().split('\n').at(-1)).toBe('401');
    const r = await t.stop();
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/Authorization: Bearer \$TOKEN/);
    expect(r.stderr).not.toMatch(/psql/);
    expect(r.stdout + r.stderr).not.toContain(REAL_KEY);
  });

  it('http --json: the listening event carries the token', async () => {
    const t = await foreground('api', ['--json'], 1);
    const ev = JSON.parse(t.lines[0]!) as { type: string; url: string; token?: string };
    expect(ev.type).toBe('listening');
    expect(ev.token).toMatch(/^[\w-]{20,}$/);
    const ok = await curl(['-H', `Authorization: Bearer ${ev.token!}`, `${ev.url}/x`]);
    expect(ok.stdout.trim().split('\n').at(-1)).toBe('200');
    const r = await t.stop();
    expect(r.stdout + r.stderr).not.toContain(REAL_KEY);
  });

  it('ssh: the URL, and an ssh command line for the resource (not a psql hint)', async () => {
    const t = await foreground('box', [], 1);
    expect(t.lines[0]).toMatch(/^ssh:\/\/dlpctl:[^@]+@127\.0\.0\.1:\d+$/);
    const r = await t.stop();
    expect(r.stderr).toMatch(/connect with: ssh -F none -p \d+ .* box \[COMMAND\]/);
    expect(r.stderr).not.toMatch(/psql/);
    expect(r.stdout + r.stderr).not.toContain(REAL_KEY);
  });
});
