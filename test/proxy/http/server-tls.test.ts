/**
 * serverTls on the HTTP tunnel: clients speak HTTPS to it (curl verifying the tunnel certificate), the URL
 * and the child's environment say https, and a client in clear gets no HTTP answer and reaches nothing.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCert, type TestCert } from '../../helpers/tls.js';
import { curl, openTunnel, REAL_KEY, startUpstream, type TestTunnel, type Upstream } from './fixture.js';

let up: Upstream;
let t: TestTunnel;
let cert: TestCert;
let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-http-tls-'));
  cert = await selfSignedCert(dir);
  up = await startUpstream();
  t = await openTunnel(up, { resource: `    serverTls: { cert: "\${file:${cert.certFile}}", key: "\${file:${cert.keyFile}}" }` });
});
afterAll(async () => {
  await t?.close();
  await up?.close();
  await fs.rm(dir, { recursive: true, force: true });
});


describe('HTTP tunnel with serverTls', () => {
  it('serves HTTPS: curl verifies the tunnel certificate, and the upstream gets the injected key', async () => {
    expect(t.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const before = up.received.length;
    const r = await curl(['--cacert', cert.certFile, '-H', `Authorization: Bearer ${t.token}`, '-o', '/dev/null', '-w', '%{http_code} %{ssl_verify_result}', `${t.url}/v1/models`]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('200 0');
    const got = up.received.slice(before);
    expect(got.map((x) => x.path)).toEqual(['/v1/models']);
    expect(got[0]!.headers['authorization']).toBe(`Bearer ${REAL_KEY}`);
  });

  it('a certificate the client does not trust fails the handshake', async () => {
    const other = await selfSignedCert(dir, 'other');
    const r = await curl(['--cacert', other.certFile, '-H', `Authorization: Bearer ${t.token}`, `${t.url}/v1/models`]);
    expect(r.code).toBe(60); // curl: peer certificate cannot be authenticated
  });

  it('a client in clear gets no HTTP answer, and nothing reaches the upstream', async () => {
    const before = up.received.length;
    const r = await curl(['-H', `Authorization: Bearer ${t.token}`, '--max-time', '10', `${t.url.replace('https:', 'http:')}/v1/models`]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(up.received.length).toBe(before);
  });

  it("gives a child process https URLs", () => {
    expect(t.childEnv['OPENAI_BASE_URL']).toBe(`${t.url}/v1`);
    expect(t.childEnv['DLPCTL_HTTP_URL']).toMatch(/^https:/);
  });
});
