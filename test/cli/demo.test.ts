/**
 * `dlpctl demo` (the built binary) leaves nothing behind: its PostgreSQL data and store live in one
 * dlpctl-demo-* directory under $TMPDIR, removed on every exit path — a Ctrl-C in the terminal (SIGINT to
 * the whole process group, the server included), SIGTERM, an error, and the end of --script.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { binPath, testEnv } from '../helpers/cli.js';
import { freePort } from '../helpers/postgres.js';

const made: string[] = [];
afterAll(async () => {
  for (const d of made) await fs.rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-demotest-'));
  made.push(dir);
  await fs.chmod(dir, 0o755); // as root the demo's server runs as `postgres`, which must reach its directory
  return dir;
}

const demoDirs = async (tmpdir: string) => (await fs.readdir(tmpdir)).filter((n) => n.startsWith('dlpctl-demo-'));

function startDemo(tmpdir: string, args: string[]) {
  // detached: its own process group, so a group signal reaches it and its server as a terminal's Ctrl-C does
  const child = spawn(process.execPath, [binPath, 'demo', ...args], { env: testEnv(tmpdir, { TMPDIR: tmpdir }), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = (async () => {
    for (let i = 0; i < 1200 && !out.includes('\n'); i += 1) {
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return out.split('\n')[0]!;
  })();
  return { child, exited, url, out: () => out, err: () => err };
}

describe('dlpctl demo removes its files', () => {
  it('Ctrl-C (SIGINT to the process group) while the tunnel is open; --port sets the tunnel port', async () => {
    const tmpdir = await tmp();
    const port = await freePort();
    const d = startDemo(tmpdir, ['--port', String(port)]);
    const url = await d.url;
    expect(url, d.err()).toMatch(new RegExp(`^postgres://.*@127\\.0\\.0\\.1:${port}/`));
    expect(await demoDirs(tmpdir)).toHaveLength(1);
    process.kill(-d.child.pid!, 'SIGINT');
    expect(await d.exited, d.err()).toBe(0);
    expect(await demoDirs(tmpdir), d.err()).toEqual([]);
    expect(d.err()).not.toMatch(/internal error|^Error/m);
  }, 120_000);

  it('--script: runs to the end, exit 0, nothing left', async () => {
    const tmpdir = await tmp();
    const d = startDemo(tmpdir, ['--script']);
    expect(await d.exited, d.err()).toBe(0);
    expect(d.out()).toContain('hash chain: intact');
    expect(await demoDirs(tmpdir)).toEqual([]);
  }, 120_000);

  it('SIGTERM to the dlpctl process', async () => {
    const tmpdir = await tmp();
    const d = startDemo(tmpdir, []);
    expect(await d.url, d.err()).toMatch(/^postgres:\/\//);
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    expect(await demoDirs(tmpdir), d.err()).toEqual([]);
  }, 120_000);

  it('an error (the --port is taken): one clean line, exit 2 (usage), nothing left', async () => {
    const tmpdir = await tmp();
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const d = startDemo(tmpdir, ['--port', String(port)]);
      const code = await d.exited;
      expect(code, d.err()).toBe(2);
      expect(d.err()).toMatch(/^dlpctl: .*/m);
      expect(d.err()).not.toMatch(/internal error|this is a bug|^\s+at /m);
      expect(await demoDirs(tmpdir)).toEqual([]);
    } finally {
      busy.close();
    }
  }, 120_000);

  it('--port with something that is not a port: usage error (exit 2) before anything starts', async () => {
    const tmpdir = await tmp();
    const d = startDemo(tmpdir, ['--port', 'abc']);
    expect(await d.exited).toBe(2);
    expect(d.err()).toContain('--port: "abc" is not a port number');
    expect(await demoDirs(tmpdir)).toEqual([]);
  }, 60_000);
});
