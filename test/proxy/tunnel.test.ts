import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { childEnvironment, startChild } from '../../src/proxy/child.js';
import { isLoopback, Tunnel, type TunnelEngine, type TunnelEvent, type TunnelSession } from '../../src/proxy/tunnel.js';

/** A line protocol engine for exercising the lifecycle: echoes lines, "boom" throws inside the session. */
function lineEngine(): TunnelEngine & { terminated: string[] } {
  let n = 0;
  const terminated: string[] = [];
  return {
    terminated,
    url: (a, secret) => `line://${secret}@${a.host}:${a.port}`,
    accept(socket, ctx) {
      const id = `s${++n}`;
      let finish!: () => void;
      let fail!: (e: unknown) => void;
      const done = new Promise<void>((res, rej) => {
        finish = res;
        fail = rej;
      });
      ctx.emit({ type: 'session_start', resource: 'r', sessionId: id, client: String(socket.remotePort) });
      socket.on('data', (d) => {
        const text = d.toString();
        if (text.startsWith('boom')) {
          fail(new Error('engine failure in one session'));
          socket.destroy();
          return;
        }
        socket.write(`echo:${text}`);
      });
      socket.on('close', () => finish());
      const session: TunnelSession = {
        id,
        done,
        async terminate(reason) {
          terminated.push(reason);
          socket.end(`bye:${reason}`);
        },
      };
      return session;
    },
  };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

function roundTrip(s: net.Socket, text: string): Promise<string> {
  return new Promise((resolve) => {
    s.once('data', (d) => resolve(d.toString()));
    s.write(text);
  });
}

const tunnels: Tunnel[] = [];
afterEach(async () => {
  await Promise.all(tunnels.splice(0).map((t) => t.close()));
});

describe('tunnel lifecycle', () => {
  it('listens on a free loopback port, with a per-tunnel secret in its URL, and reports it', async () => {
    const events: TunnelEvent[] = [];
    const t = new Tunnel({ resource: 'r', kind: 'line', clientTls: false, engine: lineEngine() });
    tunnels.push(t);
    t.on('event', (e) => events.push(e));
    const addr = await t.open();
    expect(addr.host).toBe('127.0.0.1');
    expect(addr.port).toBeGreaterThan(0);
    expect(t.secret.length).toBeGreaterThanOrEqual(32);
    expect(new Tunnel({ resource: 'r', kind: 'line', clientTls: false, engine: lineEngine() }).secret).not.toBe(t.secret);
    expect(events[0]).toMatchObject({ type: 'listening', port: addr.port, url: `line://${t.secret}@127.0.0.1:${addr.port}` });
  });

  it('refuses a non-loopback address without TLS toward clients', async () => {
    const t = new Tunnel({ resource: 'db', kind: 'line', host: '0.0.0.0', clientTls: false, engine: lineEngine() });
    await expect(t.open()).rejects.toThrow(/non-loopback address needs TLS.*serverTls/);
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('10.0.0.1')).toBe(false);
  });

  it('says clearly when the port is taken', async () => {
    const a = new Tunnel({ resource: 'r', kind: 'line', clientTls: false, engine: lineEngine() });
    tunnels.push(a);
    const { port } = await a.open();
    const b = new Tunnel({ resource: 'r', kind: 'line', port, clientTls: false, engine: lineEngine() });
    await expect(b.open()).rejects.toThrow(`port ${port} is already in use`);
  });

  it('keeps other sessions working when one session fails', async () => {
    const events: TunnelEvent[] = [];
    const t = new Tunnel({ resource: 'r', kind: 'line', clientTls: false, engine: lineEngine() });
    tunnels.push(t);
    t.on('event', (e) => events.push(e));
    const { port } = await t.open();
    const good = await connect(port);
    const bad = await connect(port);
    expect(await roundTrip(good, 'one')).toBe('echo:one');
    const badClosed = new Promise((r) => bad.once('close', r));
    bad.write('boom');
    await badClosed;
    expect(await roundTrip(good, 'two')).toBe('echo:two');
    await new Promise((r) => setTimeout(r, 20));
    expect(events.some((e) => e.type === 'error' && e.message.includes('engine failure'))).toBe(true);
    expect(t.activeSessions).toBe(1);
    good.destroy();
  });

  it('on close, tells every session why and stops accepting', async () => {
    const engine = lineEngine();
    const t = new Tunnel({ resource: 'r', kind: 'line', clientTls: false, engine, graceMs: 2000 });
    const { port } = await t.open();
    const c = await connect(port);
    await roundTrip(c, 'hi');
    const farewell = new Promise<string>((r) => c.once('data', (d) => r(d.toString())));
    await t.close('maintenance');
    expect(await farewell).toBe('bye:maintenance');
    expect(engine.terminated).toEqual(['maintenance']);
    await expect(connect(port)).rejects.toThrow();
  });
});

describe('connect -- command', () => {
  it('gives the child the tunnel settings and none of the secret-bearing variables', () => {
    const env = childEnvironment({
      baseEnv: { PATH: '/bin', PROD_DB_PASSWORD: 'hunter2', DLPCTL_TOKEN: 'eyJ.workload', KEEP: 'yes' },
      tunnelEnv: { PGPORT: '5433' },
      secretEnvNames: ['PROD_DB_PASSWORD'],
    });
    expect(env).toEqual({ PATH: '/bin', KEEP: 'yes', PGPORT: '5433' });
  });

  it('runs the command and exits with its status; a signal becomes 128+n', async () => {
    const ok = startChild({ command: 'sh', args: ['-c', 'exit 7'], baseEnv: process.env, tunnelEnv: {}, secretEnvNames: [] });
    expect(await ok.exited).toBe(7);
    const killed = startChild({ command: 'sh', args: ['-c', 'kill -TERM $$'], baseEnv: process.env, tunnelEnv: {}, secretEnvNames: [] });
    expect(await killed.exited).toBe(128 + 15);
  });

  it('the child really does not see the secret', async () => {
    const c = startChild({
      command: 'sh',
      args: ['-c', 'env'],
      baseEnv: { PATH: process.env.PATH, SECRET_X: 'value-that-must-not-pass' },
      tunnelEnv: { DATABASE_URL: 'postgres://x@127.0.0.1:1/db' },
      secretEnvNames: ['SECRET_X'],
      stdio: 'pipe',
    });
    let out = '';
    c.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    expect(await c.exited).toBe(0);
    expect(out).toContain('DATABASE_URL=postgres://x@127.0.0.1:1/db');
    expect(out).not.toContain('value-that-must-not-pass');
  });

  it('a missing command is a clear error', async () => {
    const c = startChild({ command: 'no-such-command-dlpctl', args: [], baseEnv: process.env, tunnelEnv: {}, secretEnvNames: [] });
    await expect(c.exited).rejects.toThrow('cannot start "no-such-command-dlpctl": command not found');
  });
});
