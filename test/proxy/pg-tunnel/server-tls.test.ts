/**
 * serverTls: TLS toward the tunnel's clients (what makes a non-loopback listener acceptable). psql and
 * node-postgres connect over TLS and can verify the tunnel's certificate; a client in clear is refused
 * with a message that says what to do; the printed URL and the child's environment ask for TLS.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCert, type TestCert } from '../../helpers/tls.js';
import { pgClient, psql, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;
let cert: TestCert;

beforeAll(async () => {
  fx = await startFixture();
  cert = await selfSignedCert(fx.dir);
  t = await fx.tunnel({ serverTls: { cert: cert.cert, key: cert.key } });
});
afterAll(async () => fx?.stop());

function withSslMode(url: string, mode: string, extra: Record<string, string> = {}): string {
  const u = new URL(url);
  u.searchParams.set('sslmode', mode);
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  return u.toString();
}

describe('PostgreSQL tunnel with serverTls', () => {
  it('prints a URL that asks for TLS, and psql connects with it', async () => {
    expect(new URL(t.url).searchParams.get('sslmode')).toBe('require');
    const r = await psql(t.url, ['-At', '-c', 'select count(*) from customers']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('20');
  });

  it('psql verifies the tunnel certificate (verify-full), and rejects a certificate it does not trust', async () => {
    const ok = await psql(withSslMode(t.url, 'verify-full', { sslrootcert: cert.certFile }), ['-At', '-c', 'select 41 + 1']);
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toBe('42');
    const other = await selfSignedCert(fx.dir, 'other');
    const bad = await psql(withSslMode(t.url, 'verify-full', { sslrootcert: other.certFile }), ['-At', '-c', 'select 1']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/certificate verify failed/);
  });

  it('node-postgres connects over TLS with the certificate as its CA', async () => {
    const u = new URL(t.url);
    u.searchParams.delete('sslmode');
    let peer: tls.PeerCertificate | undefined;
    const c = await pgClient(u.toString(), { ssl: { ca: cert.cert, checkServerIdentity: (_h, c) => ((peer = c), undefined) } });
    expect((await c.query('select 1 as n')).rows).toEqual([{ n: 1 }]);
    await c.end();
    expect(peer?.subject.CN).toBe('127.0.0.1');
  });

  it('refuses a client in clear with FATAL 28000 that says how to connect', async () => {
    const r = await psql(withSslMode(t.url, 'disable'), ['-At', '-c', 'select 1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/FATAL:\s+this tunnel accepts TLS connections only/);
    expect(r.stderr).toMatch(/sslmode=require/);
    expect(r.stderr).not.toContain(t.secret);
    // and the tunnel goes on serving TLS clients
    expect((await psql(t.url, ['-At', '-c', 'select 1'])).stdout.trim()).toBe('1');
  });

  it('gives a child process PGSSLMODE=require', async () => {
    const env = t.engine.childEnv({ host: '127.0.0.1', port: t.port }, t.secret);
    expect(env['PGSSLMODE']).toBe('require');
    expect(new URL(env['DATABASE_URL']!).searchParams.get('sslmode')).toBe('require');
  });
});
