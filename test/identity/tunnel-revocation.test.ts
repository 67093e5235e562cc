/**
 * Losing the identity ends the tunnel: the built `dlpctl connect` with a workload token file, a real
 * oidc-provider as the issuer, a real PostgreSQL behind the tunnel and node-postgres in front of it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath, runBin, testEnv } from '../helpers/cli.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { AUDIENCE, newKey, sign, startProvider, type SigningKey, type TestProvider } from './provider.js';

let op: TestProvider;
let key: SigningKey;
let db: TestPostgres;
let dir: string;
let config: string;
let tokenFile: string;
let env: NodeJS.ProcessEnv;

async function token(sub: string, groups: string[]): Promise<string> {
  const t = Math.floor(Date.now() / 1000);
  return sign(key, { iss: op.issuer, sub, aud: AUDIENCE, iat: t, exp: t + 300, groups });
}

beforeAll(async () => {
  key = await newKey('k1');
  op = await startProvider({ keys: [key] });
  db = await startPostgres();
  dir = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-revoke-'));
  const u = new URL(db.url);
  config = path.join(dir, 'dlpctl.yaml');
  await writeFile(
    config,
    `version: 1
identity:
  issuer: ${op.issuer}
  clientId: dlpctl-cli
  audience: ${AUDIENCE}
  groupsClaim: groups
  recheckInterval: 5s
store: sqlite:${path.join(dir, 'store.db')}
resources:
  db:
    kind: postgres
    target: postgres://${u.username}@127.0.0.1:${u.port}${u.pathname}
    password: \${env:DB_PASSWORD}
    tls: { mode: disable }
    allow: [group:ci]
    policies: [recommended]
`,
  );
  tokenFile = path.join(dir, 'token');
  env = testEnv(dir, { DB_PASSWORD: decodeURIComponent(u.password), CI: 'true' });
});
afterAll(async () => {
  await db?.stop();
  await op?.close();
});

describe('identity in the tunnel', () => {
  it('refuses an identity outside the allow list with exit 3 and what to do', async () => {
    await writeFile(tokenFile, await token('svc-outsider', ['other']));
    const r = await runBin(['connect', 'db', '--config', config, '--token-file', tokenFile], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/svc-outsider may not open db: not in its allow list/);
  });

  it('ends open sessions and exits 3 when the token file starts naming someone else', async () => {
    await writeFile(tokenFile, await token('svc-a', ['ci']));
    const child = spawn(process.execPath, [binPath, '--json', 'connect', 'db', '--config', config, '--token-file', tokenFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    for (let i = 0; i < 300 && !out.includes('"listening"'); i += 1) await new Promise((r) => setTimeout(r, 100));
    const url = (JSON.parse(out.split('\n')[0]!) as { url: string }).url;
    const client = new pg.Client({ connectionString: url });
    const ended = new Promise<Error>((resolve) => client.on('error', resolve));
    await client.connect();
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);

    await writeFile(tokenFile, await token('svc-b', ['ci']));
    const error = await ended;
    expect(error.message).toMatch(/identity no longer valid/);
    expect(await exited).toBe(3);
    expect(err).toMatch(/identity no longer valid/);
    await client.end().catch(() => {});
    const jwt = await token('svc-a', ['ci']);
    expect(out + err).not.toContain(jwt.split('.')[2]);
  }, 90_000);
});
