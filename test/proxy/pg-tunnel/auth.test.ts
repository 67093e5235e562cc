import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../helpers/postgres.js';
import { dumpSqlite, pgClient, psql, queryError, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel();
});
afterAll(async () => fx?.stop());

function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = password;
  return u.toString();
}

describe('start-up and authentication', () => {
  it('psql and node-postgres connect with the tunnel URL', async () => {
    const r = await psql(t.url, ['-At', '-c', 'select count(*) from customers']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('20');
    const c = await pgClient(t.url);
    expect((await c.query('select 41 + 1 as n')).rows).toEqual([{ n: 42 }]);
    await c.end();
  });

  it('listens on ::1 when asked, and the printed URL (with [::1]) works for psql and node-postgres', async () => {
    const t6 = await fx.tunnel({ bind: '::1' });
    expect(new URL(t6.url).hostname).toBe('[::1]');
    const r = await psql(t6.url, ['-At', '-c', 'select 1']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('1');
    const c = await pgClient(t6.url);
    expect((await c.query('select inet_client_addr() is not null as tcp')).rows).toEqual([{ tcp: true }]);
    await c.end();
    await t6.close();
  });

  it('a wrong tunnel password gets FATAL 28P01', async () => {
    const r = await psql(withPassword(t.url, 'not-the-secret'), ['-c', 'select 1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/FATAL:\s+password authentication failed for user "postgres"/);
    const err = await pgClient(withPassword(t.url, 'wrong')).then(
      () => null,
      (e: unknown) => e as { code?: string },
    );
    expect(err?.code).toBe('28P01');
  });

  it('another database name gets FATAL 3D000', async () => {
    const u = new URL(t.url);
    u.pathname = '/postgres';
    const err = await pgClient(u.toString()).then(
      () => null,
      (e: unknown) => e as { code?: string; message?: string },
    );
    expect(err?.code).toBe('3D000');
    expect(err?.message).toContain(`serves database "${fx.database}" only`);
  });

  it('SSLRequest is answered N: sslmode=prefer works, sslmode=require fails clearly', async () => {
    const prefer = await psql(t.url.replace('sslmode=disable', 'sslmode=prefer'), ['-At', '-c', 'select 1']);
    expect(prefer.code).toBe(0);
    expect(prefer.stdout.trim()).toBe('1');
    const require = await psql(t.url.replace('sslmode=disable', 'sslmode=require'), ['-At', '-c', 'select 1']);
    expect(require.code).toBe(2);
    expect(require.stderr).toMatch(/server does not support SSL, but SSL was required/);
  });

  it('the upstream password is nowhere: URL, store rows, events, client errors', async () => {
    const secret = fx.pg.password;
    expect(t.url).not.toContain(secret);
    const c = await pgClient(t.url);
    await c.query(`select '${'x'}' as a`);
    const denied = await queryError(c, 'drop table orders');
    const bad = await queryError(c, 'select * from no_such_table');
    await c.end();
    expect(denied.message).not.toContain(secret);
    expect(bad.message).not.toContain(secret);
    const dump = await dumpSqlite(path.join(fx.dir, 'store.db'));
    expect(dump.length).toBeGreaterThan(100);
    expect(dump).toContain('drop table orders');
    expect(dump).not.toContain(secret);
    expect(JSON.stringify(t.events)).not.toContain(secret);
  });

  it('a target that refuses the credential: FATAL naming the target and "injected credential", not the password', async () => {
    const wrong = 'definitely-wrong-pw-' + Date.now();
    const bad = await fx.tunnel({ password: wrong });
    const r = await psql(bad.url, ['-c', 'select 1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('FATAL');
    expect(r.stderr).toContain(`127.0.0.1:${fx.pg.port}`);
    expect(r.stderr).toContain('injected credential');
    expect(r.stderr).not.toContain(wrong);
    expect(r.stderr).not.toContain(fx.pg.password);
    expect(JSON.stringify(bad.events)).not.toContain(wrong);
    await bad.close();
  });

  it('an unreachable target: clear FATAL, and the tunnel keeps serving other sessions', async () => {
    const port = await freePort();
    const down = await fx.tunnel({ port });
    const r = await psql(down.url, ['-c', 'select 1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`FATAL:.*cannot reach the database at 127\\.0\\.0\\.1:${port} \\(connection refused\\)`));
    // The same tunnel object stays up: it still accepts and answers (with the same clear error).
    const again = await psql(down.url, ['-c', 'select 1']);
    expect(again.stderr).toContain('cannot reach the database');
    await down.close();
    // And the healthy tunnel is unaffected.
    const ok = await psql(t.url, ['-At', '-c', 'select 2']);
    expect(ok.stdout.trim()).toBe('2');
  });
});

describe('start-up timeout', () => {
  /** Connects, writes `bytes`, and resolves with everything received until the tunnel closes the connection. */
  function idleClient(port: number, bytes: Buffer): Promise<{ data: Buffer; ms: number }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const parts: Buffer[] = [];
      const s = net.connect({ host: '127.0.0.1', port }, () => s.write(bytes));
      s.on('data', (d: Buffer) => parts.push(d));
      s.on('close', () => resolve({ data: Buffer.concat(parts), ms: performance.now() - t0 }));
      s.on('error', reject);
    });
  }

  it('a client that connects and says nothing, or half a packet, is closed with FATAL 08P01 after the limit; others go on', async () => {
    const tt = await fx.tunnel({ startupTimeoutMs: 300 });
    const silent = idleClient(tt.port, Buffer.alloc(0));
    const half = idleClient(tt.port, Buffer.from([0, 0, 0, 8])); // the length of an SSLRequest, then nothing
    // meanwhile a real client connects and works
    const ok = await psql(tt.url, ['-At', '-c', 'select 3']);
    expect(ok.stdout.trim()).toBe('3');
    for (const r of await Promise.all([silent, half])) {
      expect(r.ms).toBeGreaterThanOrEqual(250);
      expect(r.data[0]).toBe(0x45); // ErrorResponse
      const text = r.data.toString('latin1');
      expect(text).toContain('C08P01');
      expect(text).toContain('the client did not complete start-up and authentication within 0.3 s');
    }
    // (the tunnel reports the rejection once it has seen the connection close, which can be just after the client did)
    const rejected = () => tt.events.filter((e) => e.type === 'error' && /rejected: the client did not complete start-up/.test(e.message)).length;
    for (let i = 0; i < 750 && rejected() < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(rejected()).toBe(2);
    await tt.close();
  });

  it('the limit covers authentication too: a client that stops after its start-up message is closed', async () => {
    const tt = await fx.tunnel({ startupTimeoutMs: 300 });
    const user = Buffer.from(`user\0postgres\0database\0${fx.database}\0\0`);
    const startup = Buffer.alloc(8 + user.length);
    startup.writeInt32BE(startup.length, 0);
    startup.writeInt32BE(196608, 4);
    user.copy(startup, 8);
    const r = await idleClient(tt.port, startup);
    expect(r.data[0]).toBe(0x52); // AuthenticationSASL first
    expect(r.data.toString('latin1')).toContain('the client did not complete start-up and authentication within 0.3 s');
    await tt.close();
  });
});
