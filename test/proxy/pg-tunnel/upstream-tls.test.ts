/**
 * TLS toward the database (the resource's `tls.mode`), against an embedded PostgreSQL with ssl=on and a
 * self-signed certificate for 127.0.0.1: `require` encrypts, `verify-full` also checks the certificate
 * against `tls.ca` and the host name, and a failed check or a server without TLS ends the client's
 * session with a message that says why (never a fallback to clear text).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCert, type TestCert } from '../../helpers/tls.js';
import { pgClient, psql, queryError, startFixture, type Fixture } from './fixture.js';

let fx: Fixture;
let plain: Fixture;
let cert: TestCert;
let certDir: string;

beforeAll(async () => {
  certDir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-pg-tls-'));
  await fs.chmod(certDir, 0o755);
  cert = await selfSignedCert(certDir, 'db');
  await fs.chmod(cert.keyFile, 0o600);
  if (process.getuid?.() === 0) {
    // as root the embedded server runs as `postgres`, which must own its key
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    await fs.chown(cert.keyFile, uid, gid);
  }
  fx = await startFixture({ serverFlags: ['-c', 'ssl=on', '-c', `ssl_cert_file=${cert.certFile}`, '-c', `ssl_key_file=${cert.keyFile}`] });
  plain = await startFixture();
}, 120_000);
afterAll(async () => {
  await fx?.stop();
  await plain?.stop();
  if (certDir) await fs.rm(certDir, { recursive: true, force: true });
});

/** Whether the tunnel's own connection to the database is encrypted, as the server sees it. */
async function upstreamSsl(url: string): Promise<boolean> {
  const c = await pgClient(url);
  try {
    const r = await c.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    return r.rows[0].ssl as boolean;
  } finally {
    await c.end();
  }
}

describe('PostgreSQL tunnel: TLS toward the database', () => {
  it('tls.mode require: the tunnel talks to the database over TLS', async () => {
    const t = await fx.tunnel({ upstreamTls: { mode: 'require' } });
    expect(await upstreamSsl(t.url)).toBe(true);
    const r = await psql(t.url, ['-At', '-c', 'select count(*) from customers']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('20');
    // and without TLS the same server says so (the check above can fail)
    const clear = await fx.tunnel();
    expect(await upstreamSsl(clear.url)).toBe(false);
  });

  it('tls.mode verify-full with the CA: connects to 127.0.0.1 (an IP address in the certificate)', async () => {
    const t = await fx.tunnel({ upstreamTls: { mode: 'verify-full', ca: cert.cert } });
    expect(await upstreamSsl(t.url)).toBe(true);
  });

  it('tls.mode verify-full refuses a certificate from another CA, and a host name the certificate does not name', async () => {
    const other = await selfSignedCert(certDir, 'other');
    const wrongCa = await fx.tunnel({ upstreamTls: { mode: 'verify-full', ca: other.cert } });
    const e1 = await pgClient(wrongCa.url).then(
      () => null,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(e1?.message).toMatch(/TLS with the database at 127\.0\.0\.1:\d+ failed: .*(self.signed|unable to verify|certificate)/i);
    expect(e1?.message).toMatch(/tls\.ca/);
    const wrongName = await fx.tunnel({ upstreamTls: { mode: 'verify-full', ca: cert.cert }, host: 'localhost' });
    const e2 = await pgClient(wrongName.url).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(e2?.message).toMatch(/TLS with the database at localhost:\d+ failed: .*(localhost|altnames|Hostname)/i);
  });

  it('a database without TLS under tls.mode require: refused, never downgraded', async () => {
    const t = await plain.tunnel({ upstreamTls: { mode: 'require' } });
    const c = await pgClient(t.url).then(
      (c) => c,
      (e: unknown) => e as Error,
    );
    const message = c instanceof Error ? c.message : (await queryError(c, 'select 1')).message;
    expect(message).toMatch(/does not offer TLS, and tls\.mode is require; dlpctl never downgrades/);
  });

  it('tls.mode disable against a server that accepts only TLS (hostssl): says TLS is required, not that the credential was rejected', async () => {
    const admin = await pgClient(fx.dbUrl);
    const hbaFile = (await admin.query<{ hba_file: string }>('show hba_file')).rows[0]!.hba_file;
    const original = (await admin.query<{ t: string }>('select pg_read_file($1) as t', [hbaFile])).rows[0]!.t;
    const write = async (text: string) => {
      await admin.query(`copy (select $q$${text}$q$) to '${hbaFile}'`);
      await admin.query('select pg_reload_conf()');
    };
    try {
      await write('hostssl all all 127.0.0.1/32 scram-sha-256');
      const t = await fx.tunnel();
      const c = await pgClient(t.url).then(
        (c) => c,
        (e: unknown) => e as Error,
      );
      const message = c instanceof Error ? c.message : (await queryError(c, 'select 1')).message;
      expect(message).not.toMatch(/rejected the injected credential/);
      expect(message).toMatch(/requires TLS.*tls: disable.*set tls: require/);
    } finally {
      await write(original.trimEnd());
      await admin.end();
    }
  });
});
