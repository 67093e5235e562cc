import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ScramClient,
  ScramServer,
  createScramSecret,
  formatScramSecret,
  md5PasswordHash,
  saslprep,
} from '../../../src/proxy/postgres/protocol.js';
import { expectProtocolError } from './helpers/expect.js';
import { prng, randomBytesFrom } from './helpers/naive.js';

// RFC 7677 section 3
const V = {
  user: 'user',
  password: 'pencil',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const vectorSecret = () => createScramSecret(V.password, { salt: Buffer.from(V.salt, 'base64'), iterations: 4096 });

describe('SCRAM-SHA-256, RFC 7677 test vector', () => {
  it('client', () => {
    const c = new ScramClient({ username: V.user, password: V.password, nonce: V.clientNonce });
    expect(c.clientFirstMessage()).toBe(V.clientFirst);
    expect(c.handleServerFirst(Buffer.from(V.serverFirst))).toBe(V.clientFinal);
    expect(() => c.handleServerFinal(V.serverFinal)).not.toThrow();
  });

  it('server', () => {
    const s = new ScramServer(vectorSecret(), { nonce: V.serverNonce });
    expect(s.handleClientFirst(Buffer.from(V.clientFirst))).toBe(V.serverFirst);
    expect(s.handleClientFinal(V.clientFinal)).toBe(V.serverFinal);
  });

  it('secret in pg_authid form', () => {
    expect(formatScramSecret(vectorSecret())).toMatch(/^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
  });

  it('tampered server signature is an error', () => {
    const c = new ScramClient({ username: V.user, password: V.password, nonce: V.clientNonce });
    c.clientFirstMessage();
    c.handleServerFirst(V.serverFirst);
    expectProtocolError(() => c.handleServerFinal('v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='), 'SCRAM_SERVER_SIGNATURE');
  });

  it('server signature of the wrong length or an e= answer is an error', () => {
    for (const [final, code] of [
      ['v=AAAA', 'SCRAM_SERVER_SIGNATURE'],
      ['e=invalid-proof', 'SCRAM_SERVER_ERROR'],
      ['x=1', 'SCRAM_MALFORMED'],
    ] as const) {
      const c = new ScramClient({ password: V.password, nonce: V.clientNonce, username: V.user });
      c.clientFirstMessage();
      c.handleServerFirst(V.serverFirst);
      expectProtocolError(() => c.handleServerFinal(final), code);
    }
  });
});

describe('SCRAM client against SCRAM server', () => {
  function exchange(clientPassword: string, serverPassword: string, seed: number, flag: 'n' | 'y' = 'n'): void {
    const random = randomBytesFrom(prng(seed));
    const server = new ScramServer(createScramSecret(serverPassword, { randomBytes: random }), { randomBytes: random });
    const client = new ScramClient({ password: clientPassword, randomBytes: random });
    let first = client.clientFirstMessage();
    if (flag === 'y') first = 'y' + first.slice(1);
    const serverFirst = server.handleClientFirst(first);
    let clientFinal = client.handleServerFirst(serverFirst);
    if (flag === 'y') clientFinal = clientFinal.replace('c=biws', 'c=eSws'); // base64("y,,"); the client's proof covers "n,,"
    const serverFinal = server.handleClientFinal(clientFinal);
    client.handleServerFinal(serverFinal);
  }

  it('authenticates with random passwords (ASCII and Unicode)', () => {
    const rand = prng(7);
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./:;<=>?@[]^_{|}~ éßø日本🔑';
    for (let run = 0; run < 12; run++) {
      const chars = [...alphabet];
      const password = Array.from({ length: 1 + Math.floor(rand() * 40) }, () => chars[Math.floor(rand() * chars.length)]).join('');
      expect(() => exchange(password, password, run), password).not.toThrow();
    }
  });

  it('a wrong password fails the proof', () => {
    expectProtocolError(() => exchange('right-password', 'wrong-password', 1), 'SCRAM_INVALID_PROOF');
  });

  it('a client that says "y" (could bind, thinks we cannot) but whose proof covers another header fails', () => {
    // The AuthMessage includes c=, so changing the flag after the fact breaks the proof: the server checks it.
    expectProtocolError(() => exchange('pw', 'pw', 2, 'y'), 'SCRAM_INVALID_PROOF');
  });

  it('accepts "y" from a client that computed its proof over c=eSws (independent proof computation)', () => {
    const s = new ScramServer(vectorSecret(), { nonce: V.serverNonce });
    const serverFirst = s.handleClientFirst('y,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    const nonce = V.clientNonce + V.serverNonce;
    const salted = pbkdf2Sync('pencil', Buffer.from(V.salt, 'base64'), 4096, 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=eSws,r=${nonce}`;
    const authMessage = `n=user,r=${V.clientNonce},${serverFirst},${withoutProof}`;
    const signature = createHmac('sha256', storedKey).update(authMessage).digest();
    const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
    const serverFinal = s.handleClientFinal(`${withoutProof},p=${proof.toString('base64')}`);
    const serverKey = createHmac('sha256', salted).update('Server Key').digest();
    expect(serverFinal).toBe('v=' + createHmac('sha256', serverKey).update(authMessage).digest('base64'));
  });

  it('rejects c= that does not match the GS2 header it was sent', () => {
    const s = new ScramServer(vectorSecret(), { nonce: V.serverNonce });
    s.handleClientFirst('y,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    expectProtocolError(() => s.handleClientFinal(V.clientFinal), 'SCRAM_CHANNEL_BINDING_UNSUPPORTED'); // c=biws ≠ base64("y,,")
  });

  it('rejects channel binding (p=) and authzid', () => {
    const s = () => new ScramServer(vectorSecret());
    expectProtocolError(() => s().handleClientFirst('p=tls-server-end-point,,n=,r=abc'), 'SCRAM_CHANNEL_BINDING_UNSUPPORTED');
    expectProtocolError(() => s().handleClientFirst('n,a=admin,n=,r=abc'), 'SCRAM_UNSUPPORTED');
    expectProtocolError(() => s().handleClientFirst('n,,m=ext,n=,r=abc'), 'SCRAM_UNSUPPORTED');
    expectProtocolError(() => s().handleClientFirst('x,,n=,r=abc'), 'SCRAM_MALFORMED');
    expectProtocolError(() => s().handleClientFirst('n,,n=,r=a,b'), 'SCRAM_MALFORMED');
    expectProtocolError(() => s().handleClientFirst('n,,r=abc'), 'SCRAM_MALFORMED');
    expectProtocolError(() => s().handleClientFirst(Buffer.from([0x6e, 0x2c, 0x2c, 0xff])), 'SCRAM_MALFORMED');
  });

  it('server rejects a wrong nonce, a missing proof and out-of-order steps', () => {
    const fresh = () => {
      const s = new ScramServer(vectorSecret(), { nonce: V.serverNonce });
      s.handleClientFirst(V.clientFirst);
      return s;
    };
    expectProtocolError(() => fresh().handleClientFinal(V.clientFinal.replace('k0,p=', 'k1,p=')), 'SCRAM_NONCE_MISMATCH');
    expectProtocolError(() => fresh().handleClientFinal('c=biws,r=x'), 'SCRAM_MALFORMED');
    expectProtocolError(() => fresh().handleClientFinal(V.clientFinal.replace(/p=.*$/, 'p=AAAA')), 'SCRAM_INVALID_PROOF');
    expectProtocolError(() => fresh().handleClientFinal(V.clientFinal.replace(/p=.*$/, 'p=!!')), 'SCRAM_MALFORMED');
    expectProtocolError(() => new ScramServer(vectorSecret()).handleClientFinal(V.clientFinal), 'SCRAM_STATE');
    const s = fresh();
    s.handleClientFinal(V.clientFinal);
    expectProtocolError(() => s.handleClientFinal(V.clientFinal), 'SCRAM_STATE');
  });

  it('client rejects a server nonce that does not extend its own, excessive iterations, bad syntax', () => {
    const fresh = (maxIterations?: number) => {
      const c = new ScramClient({ password: 'x', nonce: 'abc', ...(maxIterations ? { maxIterations } : {}) });
      c.clientFirstMessage();
      return c;
    };
    expectProtocolError(() => fresh().handleServerFirst('r=xyzdef,s=c2FsdA==,i=4096'), 'SCRAM_NONCE_MISMATCH');
    expectProtocolError(() => fresh().handleServerFirst('r=abc,s=c2FsdA==,i=4096'), 'SCRAM_NONCE_MISMATCH');
    expectProtocolError(() => fresh(10_000).handleServerFirst('r=abcdef,s=c2FsdA==,i=10001'), 'SCRAM_ITERATIONS');
    expectProtocolError(() => fresh().handleServerFirst('r=abcdef,s=c2FsdA==,i=0'), 'SCRAM_MALFORMED');
    expectProtocolError(() => fresh().handleServerFirst('r=abcdef,s=***,i=1'), 'SCRAM_MALFORMED');
    expectProtocolError(() => fresh().handleServerFirst('r=abcdef,i=1'), 'SCRAM_MALFORMED');
    expectProtocolError(() => fresh().handleServerFirst('m=x,r=abcdef,s=c2FsdA==,i=1'), 'SCRAM_UNSUPPORTED');
    expectProtocolError(() => new ScramClient({ password: 'x' }).handleServerFirst(V.serverFirst), 'SCRAM_STATE');
  });

  it('nonces come from the injected random source', () => {
    const a = new ScramClient({ password: 'x', randomBytes: randomBytesFrom(prng(5)) }).clientFirstMessage();
    const b = new ScramClient({ password: 'x', randomBytes: randomBytesFrom(prng(5)) }).clientFirstMessage();
    const c = new ScramClient({ password: 'x' }).clientFirstMessage();
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    expect(a).toMatch(/^n,,n=,r=[A-Za-z0-9+/]{24}$/);
  });
});

describe('SASLprep (RFC 4013 examples)', () => {
  it('maps, normalizes and prohibits', () => {
    expect(saslprep('I\u00ADX')).toBe('IX');
    expect(saslprep('user')).toBe('user');
    expect(saslprep('USER')).toBe('USER');
    expect(saslprep('\u00AA')).toBe('a');
    expect(saslprep('\u2168')).toBe('IX');
    expect(saslprep('a\u00A0b')).toBe('a b');
    expect(saslprep('\u0007')).toBeNull();
    expect(saslprep('\u0627\u0031')).toBeNull();
    expect(saslprep('\u0627\u0031\u0628')).toBe('\u0627\u0031\u0628');
  });

  it('a password SASLprep rejects is used raw, on both sides alike', () => {
    const random = randomBytesFrom(prng(3));
    const pw = 'bell\u0007';
    const s = new ScramServer(createScramSecret(pw, { randomBytes: random }), { randomBytes: random });
    const c = new ScramClient({ password: pw, randomBytes: random });
    const final = c.handleServerFirst(s.handleClientFirst(c.clientFirstMessage()));
    expect(() => c.handleServerFinal(s.handleClientFinal(final))).not.toThrow();
  });
});

describe('md5 password hash', () => {
  it("is 'md5' + md5(md5(password + user) + salt)", () => {
    // pg_authid's md5 of user postgres, password postgres — a widely published value.
    const inner = '3175bce1d3201d16594cebf9d7eb3f9d';
    expect(createHash('md5').update('postgrespostgres').digest('hex')).toBe(inner);
    const salt = Buffer.from([0x01, 0x02, 0x03, 0x04]);
    const expected = 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
    expect(md5PasswordHash('postgres', 'postgres', salt)).toBe(expected);
    expect(md5PasswordHash('postgres', 'postgres', Buffer.from([1, 2, 3, 5]))).not.toBe(expected);
    expect(md5PasswordHash('postgres', 'postgres', salt)).toMatch(/^md5[0-9a-f]{32}$/);
  });
});
