/**
 * An HTTPS upstream (the resource's `tls`): verified against `tls.ca`; a certificate the tunnel does not
 * trust is a 502 `upstream_tls` that says what to check, and nothing is sent; `tls.verify: false` accepts
 * it. Masking applies to what comes back over TLS as over plain HTTP.
 */
import fs from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCert, type TestCert } from '../../helpers/tls.js';
import { openTunnel, REAL_KEY, REDACT_PII, type TestTunnel, type Upstream } from './fixture.js';

let dir: string;
let cert: TestCert;
let other: TestCert;
let server: https.Server;
let origin: string;
const received: { path: string; authorization: string | undefined }[] = [];
const open: TestTunnel[] = [];

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-http-up-tls-'));
  cert = await selfSignedCert(dir, 'upstream');
  other = await selfSignedCert(dir, 'other');
  server = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    received.push({ path: req.url ?? '', authorization: req.headers.authorization });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ owner: 'ann@example.com', path: req.url }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const t of open) await t.close();
  await new Promise((r) => server.close(r));
  await fs.rm(dir, { recursive: true, force: true });
});

/** A tunnel to the HTTPS upstream; the fixture's plain upstream is not used. */
async function tunnel(tlsYaml: string, extra: { use?: string[]; policies?: string } = {}): Promise<TestTunnel> {
  const t = await openTunnel({ url: origin } as Upstream, { target: origin, resource: tlsYaml, ...extra });
  open.push(t);
  return t;
}

const auth = (t: TestTunnel) => ({ authorization: `Bearer ${t.token}` });

describe('HTTP tunnel: HTTPS upstream', () => {
  it('verifies the upstream against tls.ca and injects the key over TLS', async () => {
    const t = await tunnel(`    tls: { ca: "\${file:${cert.certFile}}" }`);
    const before = received.length;
    const r = await request(`${t.url}/v1/models`, { headers: auth(t) });
    expect(r.statusCode).toBe(200);
    expect(await r.body.json()).toEqual({ owner: 'ann@example.com', path: '/v1/models' });
    expect(received.slice(before)).toEqual([{ path: '/v1/models', authorization: `Bearer ${REAL_KEY}` }]);
  });

  it('an upstream certificate it does not trust: 502 upstream_tls naming tls.ca / tls.verify, nothing sent', async () => {
    const t = await tunnel(`    tls: { ca: "\${file:${other.certFile}}" }`);
    const before = received.length;
    const r = await request(`${t.url}/v1/models`, { headers: auth(t) });
    expect(r.statusCode).toBe(502);
    const body = (await r.body.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('upstream_tls');
    expect(body.error.message).toMatch(/TLS to the upstream https:\/\/127\.0\.0\.1:\d+ failed .*check tls\.ca \/ tls\.verify/);
    expect(body.error.message).not.toContain(REAL_KEY);
    expect(received.length).toBe(before);
  });

  it('tls.verify: false accepts the certificate; masking applies to the answer over TLS', async () => {
    const t = await tunnel('    tls: { verify: false }', { use: ['redact-pii'], policies: REDACT_PII });
    const r = await request(`${t.url}/v1/models`, { headers: auth(t) });
    expect(r.statusCode).toBe(200);
    const text = await r.body.text();
    expect(text).not.toContain('ann@example.com');
    expect(text).toContain('[REDACTED:email]');
  });
});
