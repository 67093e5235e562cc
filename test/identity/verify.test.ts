import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64url } from 'jose';
import { discoverIssuer, issuerSettings, type Issuer } from '../../src/identity/issuer.js';
import { groupsFromClaims, TokenRejectedError } from '../../src/identity/verify.js';
import { manualClock } from './clock.js';
import { AUDIENCE, CLIENT_ID, newKey, sign, startProvider, type SigningKey, type TestProvider } from './provider.js';

let op: TestProvider;
let other: TestProvider;
let key: SigningKey;
const clock = manualClock(Date.UTC(2030, 0, 1));
const now = () => Math.floor(clock.now() / 1000);

async function issuer(): Promise<Issuer> {
  return discoverIssuer(issuerSettings({ issuer: op.issuer, clientId: CLIENT_ID, audience: AUDIENCE, groupsClaim: 'realm_access.roles' }), { clock });
}

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: op.issuer, sub: 'ci-job-42', aud: AUDIENCE, iat: now(), exp: now() + 300, email: 'ci@example.com', realm_access: { roles: ['deployers', 'ci'] }, ...extra };
}

async function rejection(token: string): Promise<TokenRejectedError> {
  const iss = await issuer();
  const err = await iss.workloadTokens.verify(token, 'machine', 'DLPCTL_TOKEN').then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TokenRejectedError);
  const e = err as TokenRejectedError;
  expect(e.exitCode).toBe(3);
  expect(e.message).not.toContain(token);
  expect(e.message).not.toContain(token.split('.')[1]!);
  return e;
}

beforeAll(async () => {
  key = await newKey('k1');
  op = await startProvider({ keys: [key] });
  other = await startProvider({ keys: [await newKey('other-1')] });
});
afterAll(async () => {
  await op?.close();
  await other?.close();
});

describe('token verification against the issuer JWKS', () => {
  it('accepts a valid token and reads the identity, groups from a dotted path', async () => {
    const iss = await issuer();
    const v = await iss.workloadTokens.verify(await sign(key, claims()), 'machine');
    expect(v.identity).toEqual({ issuer: op.issuer, subject: 'ci-job-42', email: 'ci@example.com', groups: ['deployers', 'ci'], kind: 'machine', verified: true });
    expect(v.expiresAt).toBe((now() + 300) * 1000);
  });

  it('rejects an expired token, but tolerates a small skew', async () => {
    expect((await rejection(await sign(key, claims({ exp: now() - 120 })))).reason).toBe('expired');
    const iss = await issuer();
    await expect(iss.workloadTokens.verify(await sign(key, claims({ exp: now() - 10 })), 'machine')).resolves.toBeTruthy();
  });

  it('rejects a token that is not valid yet, but tolerates a small skew', async () => {
    expect((await rejection(await sign(key, claims({ nbf: now() + 600 })))).reason).toBe('not-yet-valid');
    const iss = await issuer();
    await expect(iss.workloadTokens.verify(await sign(key, claims({ nbf: now() + 10 })), 'machine')).resolves.toBeTruthy();
  });

  it('rejects the wrong issuer and the wrong audience', async () => {
    expect((await rejection(await sign(key, claims({ iss: 'https://evil.example.com' })))).reason).toBe('issuer');
    const aud = await rejection(await sign(key, claims({ aud: 'https://another.api' })));
    expect(aud.reason).toBe('audience');
    expect(aud.message).toContain(AUDIENCE);
  });

  it('rejects a bad signature', async () => {
    const good = await sign(key, claims());
    const [h, p, s] = good.split('.') as [string, string, string];
    const forgedPayload = base64url.encode(JSON.stringify({ ...claims(), sub: 'admin' }));
    expect((await rejection(`${h}.${forgedPayload}.${s}`)).reason).toBe('signature');
    const flipped = s.slice(0, 10) + (s[10] === 'A' ? 'B' : 'A') + s.slice(11);
    expect((await rejection(`${h}.${p}.${flipped}`)).reason).toBe('signature');
  });

  it('rejects alg none', async () => {
    const h = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
    const p = base64url.encode(JSON.stringify(claims()));
    expect((await rejection(`${h}.${p}.`)).reason).toBe('algorithm');
  });

  it('rejects a token signed by a key from another issuer, with its kid or a stolen kid', async () => {
    const foreign = other.keys[0]!;
    expect((await rejection(await sign(foreign, claims()))).reason).toBe('unknown-key');
    expect((await rejection(await sign({ ...foreign, kid: 'k1' }, claims()))).reason).toBe('signature');
  });

  it('rejects garbage', async () => {
    expect((await rejection('not-a-jwt')).reason).toBe('malformed');
  });

  it('follows key rotation: an unknown kid refetches the JWKS; a withdrawn key stops verifying', async () => {
    const iss = await issuer();
    await iss.workloadTokens.verify(await sign(key, claims()), 'machine');
    const fetchesBefore = iss.jwks.fetches;
    const key2 = await newKey('k2');
    await op.rotate([key2, key]);
    clock.advance(31_000); // past the refetch cooldown
    const v = await iss.workloadTokens.verify(await sign(key2, claims()), 'machine');
    expect(v.identity.subject).toBe('ci-job-42');
    expect(iss.jwks.fetches).toBe(fetchesBefore + 1);
    // Cached: a known kid does not refetch.
    await iss.workloadTokens.verify(await sign(key, claims()), 'machine');
    expect(iss.jwks.fetches).toBe(fetchesBefore + 1);
    // The old key is withdrawn; once the cached set is older than its max age it is fetched again.
    await op.rotate([key2]);
    clock.advance(11 * 60_000);
    expect((await rejection(await sign(key, claims()))).reason).toBe('unknown-key');
    await op.rotate([key]);
    clock.advance(11 * 60_000);
  });
});

describe('groupsFromClaims', () => {
  it('reads plain, dotted and namespaced claims', () => {
    expect(groupsFromClaims({ groups: ['a', 'b', 'a', 3] }, 'groups')).toEqual(['a', 'b']);
    expect(groupsFromClaims({ realm_access: { roles: ['x'] } }, 'realm_access.roles')).toEqual(['x']);
    expect(groupsFromClaims({ 'https://example.com/groups': ['n'] }, 'https://example.com/groups')).toEqual(['n']);
    expect(groupsFromClaims({ role: 'admin' }, 'role')).toEqual(['admin']);
    expect(groupsFromClaims({ a: { b: 'x' } }, 'a.c')).toEqual([]);
    expect(groupsFromClaims({}, 'groups')).toEqual([]);
  });
});
