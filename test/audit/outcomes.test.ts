/**
 * True outcomes and dlpctl's own secrets, with the built binary (`npx tsc -p tsconfig.build.json` first):
 *   - a normal `dlpctl connect RESOURCE -- cmd` records `ok` (PostgreSQL, SSH, HTTP), every time;
 *   - a `dlpctl connect` killed with SIGKILL leaves its session open; the next tunnel closes it as `crashed`,
 *     with the counters its events show;
 *   - the child never sees DLPCTL_STORE or DLPCTL_TOKEN, nor a variable the store reference reads; `--store`
 *     and DLPCTL_STORE take secret references.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath, runBin, runCli, testEnv } from '../helpers/cli.js';
import { pgClient, startFixture, type Fixture } from '../proxy/pg-tunnel/fixture.js';
import { startSshd, type Sshd } from '../proxy/ssh/fixture.js';
import { childEnvironment } from '../../src/proxy/child.js';
import { openStore, type Session } from '../../src/store/index.js';

let fx: Fixture;
let sshd: Sshd;
let upstream: http.Server;
let config: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  fx = await startFixture();
  await fs.mkdir(path.join(fx.dir, 'sshd'));
  sshd = await startSshd(path.join(fx.dir, 'sshd'));
  upstream = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('{"ok":true}'));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  config = path.join(fx.dir, 'dlpctl.yaml');
  await fs.writeFile(
    config,
    `version: 1
resources:
  db:
    kind: postgres
    target: postgres://${fx.pg.user}@127.0.0.1:${fx.pg.port}/${fx.database}
    password: \${env:E2E_DB_PASSWORD}
    tls: { mode: disable }
    policies: [recommended]
  box:
    kind: ssh
    target: ssh://${sshd.user}@127.0.0.1:${sshd.port}
    privateKey: \${env:E2E_SSH_KEY}
    hostKey: "${sshd.hostFingerprint}"
  api:
    kind: http
    target: http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}
    env: { API_URL: "{url}", API_TOKEN: "{token}" }
`,
  );
  env = testEnv(path.join(fx.dir, 'home'), { E2E_DB_PASSWORD: fx.pg.password, E2E_SSH_KEY: sshd.userKey, NO_COLOR: '1' });
}, 120_000);
afterAll(async () => {
  await new Promise<void>((r) => upstream?.close(() => r()));
  await sshd?.stop();
  await fx?.stop();
});

const storeFile = (name: string) => path.join(fx.dir, `${name}.db`);

async function sessions(file: string, resource: string): Promise<Session[]> {
  const store = await openStore(`sqlite:${file}`, { create: false });
  try {
    const hits = await store.search({ resource, limit: 100_000 });
    const ids = [...new Set(hits.map((h) => h.session.id))];
    return (await Promise.all(ids.map((id) => store.getSession(id)))).filter((s): s is Session => s !== undefined);
  } finally {
    await store.close();
  }
}

function connect(resource: string, store: string, command: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  return runBin(['connect', resource, '--config', config, '--store', store, '--', ...command], { env: { ...env, ...extraEnv }, timeoutMs: 60_000 });
}

describe('a normal `connect -- cmd` exit records ok', () => {
  it('PostgreSQL: six psql runs, six sessions ended ok', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await connect('db', `sqlite:${storeFile('pg')}`, ['psql', '-X', '-At', '-c', 'select 1']);
      expect({ code: r.code, stdout: r.stdout.trim(), stderr: r.stderr }).toMatchObject({ code: 0, stdout: '1' });
    }
    const s = await sessions(storeFile('pg'), 'db');
    expect(s).toHaveLength(6);
    expect(s.map((x) => x.outcome)).toEqual(Array(6).fill('ok'));
  });

  it('SSH: four remote commands, four sessions ended ok', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await connect('box', `sqlite:${storeFile('ssh')}`, ['sh', '-c', '$DLPCTL_SSH box "echo hi"']);
      // (The exit status is the SSH engine's business; once, under load, ssh reported 255 after printing hi.)
      expect({ stdout: r.stdout.trim(), stderr: r.stderr }).toMatchObject({ stdout: 'hi' });
    }
    const s = await sessions(storeFile('ssh'), 'box');
    expect(s).toHaveLength(4);
    expect(s.map((x) => x.outcome)).toEqual(Array(4).fill('ok'));
  });

  it('HTTP: four requests from a command, four sessions ended ok', async () => {
    const script = 'const r = await fetch(process.env.API_URL + "/v1/x", { headers: { authorization: "Bearer " + process.env.API_TOKEN } }); console.log(r.status);';
    for (let i = 0; i < 4; i++) {
      const r = await connect('api', `sqlite:${storeFile('http')}`, [process.execPath, '--input-type=module', '-e', script]);
      expect({ code: r.code, stdout: r.stdout.trim(), stderr: r.stderr }).toMatchObject({ code: 0, stdout: '200' });
    }
    const s = await sessions(storeFile('http'), 'api');
    expect(s).toHaveLength(4);
    expect(s.map((x) => x.outcome)).toEqual(Array(4).fill('ok'));
  });
});

describe('terminated means cut by dlpctl', () => {
  it('PostgreSQL: a client that leaves is ok; a session still live when the tunnel closes is terminated', async () => {
    const t = await fx.tunnel();
    const live = await pgClient(t.url);
    live.on('error', () => {});
    await live.query('select 1');
    const leaving = await pgClient(t.url);
    await leaving.query('select 1');
    await leaving.end();
    const ends = () => t.events.filter((e) => e.type === 'session_end') as { sessionId: string; outcome: string }[];
    for (let i = 0; i < 600 && ends().length < 1; i++) await new Promise((r) => setTimeout(r, 25));
    await t.close();
    await live.end().catch(() => {});
    expect(ends().map((e) => e.outcome)).toEqual(['ok', 'terminated']);
    for (const e of ends()) expect((await fx.store.getSession(e.sessionId))!.outcome).toBe(e.outcome);
  });
});

describe('a session whose process died', () => {
  it('kill -9 of `dlpctl connect` mid-session: the next tunnel closes the session as crashed, with its counters', async () => {
    const file = storeFile('crash');
    const child = spawn(process.execPath, [binPath, 'connect', 'db', '--config', config, '--store', `sqlite:${file}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve(out.slice(0, nl));
      });
      child.once('exit', () => reject(new Error('dlpctl exited early')));
    });
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => {});
    await client.connect();
    await client.query('select id from customers limit 3');
    await client.query('select 1');
    const dead = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await dead;
    await client.end().catch(() => {});
    const [open] = await sessions(file, 'db');
    expect(open!.outcome).toBeUndefined();

    const r = await connect('db', `sqlite:${file}`, ['psql', '-X', '-At', '-c', 'select 1']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/closed 1 session left open by a dlpctl process that died \(outcome crashed\)/);
    const after = await sessions(file, 'db');
    const crashed = after.find((s) => s.id === open!.id)!;
    expect(crashed.outcome).toBe('crashed');
    // The second result was recorded deferred (after the client had it) and may have died with the process.
    expect(crashed.counters).toMatchObject({ statements: 2, denied: 0 });
    expect(crashed.counters.rows).toBeGreaterThanOrEqual(3);
    expect(after.filter((s) => s.id !== open!.id).map((s) => s.outcome)).toEqual(['ok']);
    const store = await openStore(`sqlite:${file}`, { create: false });
    try {
      expect((await store.verify()).ok).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe('signed checkpoints from a running tunnel', () => {
  it('audit keygen, a tunnel that signs and copies its checkpoints, and audit verify --public-key --checkpoints', async () => {
    const dir = path.join(fx.dir, 'signed');
    await fs.mkdir(dir);
    const key = path.join(dir, 'audit.key');
    const gen = await runCli(['--json', 'audit', 'keygen', '--out', key], { env });
    expect(gen.code).toBe(0);
    expect(JSON.parse(gen.stdout)).toMatchObject({ privateKey: key, publicKey: `${key}.pub`, keyId: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect((await fs.stat(key)).mode & 0o777).toBe(0o600);
    expect((await runCli(['audit', 'keygen', '--out', key], { env })).code).toBe(2);
    const signedConfig = path.join(dir, 'dlpctl.yaml');
    await fs.writeFile(signedConfig, `${await fs.readFile(config, 'utf8')}audit:\n  signingKey: "\${file:${key}}"\n  checkpointFile: checkpoints.jsonl\n`);
    const store = `sqlite:${path.join(dir, 'store.db')}`;
    for (let i = 0; i < 2; i++) {
      const r = await runBin(['connect', 'db', '--config', signedConfig, '--store', store, '--', 'psql', '-X', '-At', '-c', 'select 1'], { env, timeoutMs: 60_000 });
      expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
      expect(r.stderr).not.toMatch(/checkpoint/);
    }
    const lines = (await fs.readFile(path.join(dir, 'checkpoints.jsonl'), 'utf8')).trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ signature: expect.any(String) });
    const verify = (extra: string[] = []) =>
      runCli(['--store', store, 'audit', 'verify', '--public-key', `${key}.pub`, '--checkpoints', path.join(dir, 'checkpoints.jsonl'), ...extra], { env });
    const ok = await verify();
    expect({ code: ok.code, out: ok.stdout, err: ok.stderr }).toMatchObject({ code: 0 });
    expect(ok.stdout).toMatch(new RegExp(`history up to checkpoint ${lines.length} \\(.*\\) cannot have been rewritten or cut; ${lines.length} checkpoints of the external copy found in the store`));
    // Every session ended before its tunnel closed, and the last checkpoint holds it: nothing is covered by the chain alone.
    expect(ok.stdout).not.toMatch(/after the newest checkpoint/);
    const json = JSON.parse((await verify(['--json'])).stdout.replace(/^[^{]*/, '')) as { ok: boolean; checkpoints: { signed: number } };
    expect(json).toMatchObject({ ok: true, checkpoints: { signed: lines.length } });
    // Someone with the store's file but not the key: a consistent rewrite of the checkpoints is refused.
    const { DatabaseSync } = await import('node:sqlite');
    const db = new DatabaseSync(path.join(dir, 'store.db'));
    db.exec('UPDATE checkpoints SET signature = NULL');
    db.close();
    const bad = await verify();
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/tampering or loss: checkpoint 1: the signature does not verify/);
  });
});

describe("dlpctl's own secrets stay with dlpctl", () => {
  it('the child gets neither DLPCTL_STORE, DLPCTL_TOKEN nor the variable a store reference reads', () => {
    const e = childEnvironment({
      baseEnv: { PATH: '/bin', DLPCTL_STORE: 'postgres://dlp:pw@h/db', DLPCTL_TOKEN: 'eyJ.x.y', AUDIT_DB: 'postgres://dlp:pw@h/db', KEEP: '1' },
      tunnelEnv: { DATABASE_URL: 'postgres://tunnel' },
      secretEnvNames: ['AUDIT_DB'],
    });
    expect(e).toEqual({ PATH: '/bin', KEEP: '1', DATABASE_URL: 'postgres://tunnel' });
  });

  it('DLPCTL_STORE as ${env:…}: the session is recorded there, and the child sees neither variable nor the URL', async () => {
    const file = storeFile('ref');
    const r = await runBin(['connect', 'db', '--config', config, '--', 'sh', '-c', 'env; psql -X -At -c "select 1"'], {
      env: { ...env, DLPCTL_STORE: '${env:AUDIT_STORE_URL}', AUDIT_STORE_URL: `sqlite:${file}` },
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^DATABASE_URL=/m);
    expect(r.stdout).not.toMatch(/DLPCTL_STORE|AUDIT_STORE_URL/);
    expect(r.stdout).not.toContain(file);
    expect(await sessions(file, 'db')).toHaveLength(1);
  });

  it('--store ${file:…} with a PostgreSQL password: no password on the command line, none in errors or --json', async () => {
    const urlFile = path.join(fx.dir, 'store.url');
    await fs.writeFile(urlFile, 'postgres://dlp:Hunter2-store-pw@127.0.0.1:1/audit\n');
    for (const json of [false, true]) {
      const r = await runCli([...(json ? ['--json'] : []), '--store', `\${file:${urlFile}}`, 'store', 'info'], { env });
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/postgres:\/\/dlp@127\.0\.0\.1:1\/audit/);
      expect(r.stdout + r.stderr).not.toContain('Hunter2-store-pw');
    }
    const viaEnv = await runCli(['store', 'info'], { env: { ...env, DLPCTL_STORE: '${env:PW_STORE}', PW_STORE: 'postgres://dlp:Hunter2-store-pw@127.0.0.1:1/audit' } });
    expect(viaEnv.stderr).toMatch(/cannot reach the store at postgres:\/\/dlp@127\.0\.0\.1:1\/audit/);
    expect(viaEnv.stdout + viaEnv.stderr).not.toContain('Hunter2-store-pw');
  });
});
