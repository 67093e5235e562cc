/**
 * A real OpenID provider (oidc-provider) on 127.0.0.1 for the identity tests, plus a tiny "browser" that
 * completes the device flow through its /device form and dev-interaction login and consent pages, keeping
 * cookies between requests. Nothing of the provider is mocked: tests change it the way an administrator
 * would (disable an account, revoke a grant, rotate keys) or through its documented extension points
 * (a Koa middleware for slow_down, a registered RFC 8693 grant, a storage adapter).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair, exportJWK, SignJWT, importJWK, type JWK } from 'jose';
import Provider, { type Adapter, type AdapterPayload } from 'oidc-provider';

export const CLIENT_ID = 'dlpctl-cli';
export const CI_CLIENT_ID = 'ci-bot';
export const CI_CLIENT_SECRET = 'ci-bot-secret-Zq8v0QhX3k';
/** A device client that must send its secret with every request, as Google's "TVs and Limited Input devices" clients must. */
export const TV_CLIENT_ID = 'dlpctl-tv';
export const TV_CLIENT_SECRET = 'tv-client-secret-Lm4r9WcY2p';
export const AUDIENCE = 'https://dlpctl.test/api';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

export interface Account {
  email: string;
  groups: string[];
}

export interface SigningKey {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

export async function newKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateJwk, publicJwk };
}

/** Signs a JWT with `key` the way an issuer would. */
export async function sign(key: SigningKey, claims: Record<string, unknown>, opts: { alg?: string } = {}): Promise<string> {
  const k = await importJWK(key.privateJwk, 'RS256');
  return new SignJWT(claims).setProtectedHeader({ alg: opts.alg ?? 'RS256', kid: key.kid, typ: 'JWT' }).sign(k);
}

/** Storage that tests can reach into (to expire a device code). */
const stores = new Map<string, Map<string, AdapterPayload>>();
class TestAdapter implements Adapter {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
  #map(): Map<string, AdapterPayload> {
    let m = stores.get(this.name);
    if (!m) stores.set(this.name, (m = new Map()));
    return m;
  }
  async upsert(id: string, payload: AdapterPayload): Promise<void> {
    this.#map().set(id, payload);
  }
  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.#map().get(id);
  }
  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return [...this.#map().values()].find((p) => p.userCode === userCode);
  }
  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return [...this.#map().values()].find((p) => p.uid === uid);
  }
  async consume(id: string): Promise<void> {
    const p = this.#map().get(id);
    if (p) p.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id: string): Promise<void> {
    this.#map().delete(id);
  }
  async revokeByGrantId(grantId: string): Promise<void> {
    for (const m of stores.values()) for (const [id, p] of m) if (p.grantId === grantId) m.delete(id);
  }
}

export interface TestProvider {
  issuer: string;
  port: number;
  accounts: Map<string, Account>;
  /** Accounts the administrator disabled: findAccount no longer finds them. */
  disabled: Set<string>;
  keys: SigningKey[];
  /** Device-token polls answered with slow_down (the next N polls). */
  slowDowns: { remaining: number };
  /** Every device-code poll the provider saw. */
  polls: number;
  /** Restarts the provider on the same port with another key set (rotation). */
  rotate(keys: SigningKey[]): Promise<void>;
  /** Marks the device code of `userCode` expired. */
  expireDeviceCode(userCode: string): void;
  /** Revokes every grant of `accountId` (what an administrator's "sign out everywhere" does). */
  revokeAccount(accountId: string): Promise<void>;
  /** Trusted foreign issuer for token exchange: tokens from it are exchanged for ours. */
  trustForExchange(issuer: string, key: SigningKey): void;
  close(): Promise<void>;
}

export async function startProvider(opts: { keys?: SigningKey[]; idTokenTtl?: number } = {}): Promise<TestProvider> {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;
  const accounts = new Map<string, Account>();
  const disabled = new Set<string>();
  const slowDowns = { remaining: 0 };
  const trusted = new Map<string, SigningKey>();
  const state: TestProvider = {
    issuer,
    port,
    accounts,
    disabled,
    keys: opts.keys ?? [await newKey('key-1')],
    slowDowns,
    polls: 0,
    rotate: async () => {},
    expireDeviceCode: () => {},
    revokeAccount: async () => {},
    trustForExchange: (iss, key) => trusted.set(iss, key),
    close: async () => {},
  };
  stores.set(`${issuer}:DeviceCode`, new Map());

  const build = (keys: SigningKey[]) => {
    const provider = new Provider(issuer, {
      adapter: (name: string) => new TestAdapter(`${issuer}:${name}`),
      clients: [
        { client_id: CLIENT_ID, token_endpoint_auth_method: 'none', grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'], response_types: [], redirect_uris: [] },
        { client_id: TV_CLIENT_ID, client_secret: TV_CLIENT_SECRET, token_endpoint_auth_method: 'client_secret_post', grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'], response_types: [], redirect_uris: [] },
        { client_id: CI_CLIENT_ID, client_secret: CI_CLIENT_SECRET, token_endpoint_auth_method: 'client_secret_post', grant_types: ['client_credentials', TOKEN_EXCHANGE], response_types: [], redirect_uris: [] },
      ],
      jwks: { keys: keys.map((k) => k.privateJwk) as never },
      cookies: { keys: ['test-cookie-key-0123456789'] },
      features: {
        devInteractions: { enabled: true },
        deviceFlow: { enabled: true },
        revocation: { enabled: true },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: (_ctx: unknown, client: { clientId: string }) => (client.clientId === CI_CLIENT_ID ? AUDIENCE : undefined) as never,
          useGrantedResource: () => true,
          getResourceServerInfo: () => ({ scope: 'api', audience: AUDIENCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
        },
      },
      claims: { openid: ['sub', 'groups'], email: ['email', 'email_verified'], profile: ['name'] },
      scopes: ['openid', 'offline_access', 'email', 'profile'],
      conformIdTokenClaims: false,
      ttl: { DeviceCode: 600, AccessToken: 3600, IdToken: opts.idTokenTtl ?? 3600, RefreshToken: 86400, Grant: 86400, Interaction: 600, Session: 86400, ClientCredentials: 600 },
      findAccount: async (_ctx, id) => {
        if (disabled.has(id)) return undefined;
        const a = accounts.get(id) ?? { email: `${id}@example.com`, groups: ['engineering'] };
        return { accountId: id, claims: async () => ({ sub: id, email: a.email, email_verified: true, groups: a.groups }) };
      },
    });
    provider.proxy = false;
    // slow_down on demand: what a provider says when a client polls too fast (RFC 8628 §3.5).
    provider.use(async (ctx, next) => {
      if (ctx.method === 'POST' && ctx.path === '/token') {
        const body = await readBody(ctx.req);
        const params = new URLSearchParams(body);
        if (params.get('grant_type') === 'urn:ietf:params:oauth:grant-type:device_code') {
          state.polls += 1;
          if (slowDowns.remaining > 0) {
            slowDowns.remaining -= 1;
            ctx.status = 400;
            ctx.body = { error: 'slow_down', error_description: 'poll less often' };
            return;
          }
        }
        // Hand the consumed body back to the provider's parser.
        (ctx.req as unknown as { body: unknown }).body = Object.fromEntries(params);
      }
      await next();
    });
    provider.registerGrantType(
      TOKEN_EXCHANGE,
      async (ctx) => {
        const p = ctx.oidc.params as Record<string, string | undefined>;
        const subjectToken = p['subject_token'] ?? '';
        const { decodeJwt, jwtVerify, importJWK: imp } = await import('jose');
        const foreign = decodeJwt(subjectToken).iss ?? '';
        const key = trusted.get(foreign);
        if (!key) {
          ctx.status = 400;
          ctx.body = { error: 'invalid_grant', error_description: 'untrusted subject token issuer' };
          return;
        }
        try {
          await jwtVerify(subjectToken, await imp(key.publicJwk, 'RS256'), { issuer: foreign });
        } catch {
          ctx.status = 400;
          ctx.body = { error: 'invalid_grant', error_description: 'subject token invalid' };
          return;
        }
        const claims = decodeJwt(subjectToken);
        const now = Math.floor(Date.now() / 1000);
        const access = await sign(keys[0]!, { iss: issuer, sub: `ci:${claims.sub}`, aud: p['audience'] ?? AUDIENCE, iat: now, exp: now + 600, groups: ['ci'] });
        ctx.body = { access_token: access, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 600 };
      },
      ['subject_token', 'subject_token_type', 'requested_token_type', 'audience'],
    );
    return provider;
  };

  let provider = build(state.keys);
  let handler = provider.callback();
  server.on('request', (req, res) => handler(req, res));

  state.rotate = async (keys) => {
    state.keys = keys;
    provider = build(keys);
    handler = provider.callback();
  };
  state.expireDeviceCode = (userCode) => {
    for (const p of stores.get(`${issuer}:DeviceCode`)?.values() ?? []) if (p.userCode === userCode) p.exp = Math.floor(Date.now() / 1000) - 10;
  };
  state.revokeAccount = async (accountId) => {
    for (const [name, m] of stores) {
      if (!name.startsWith(issuer)) continue;
      for (const [id, p] of m) if (p.accountId === accountId && (name.endsWith(':RefreshToken') || name.endsWith(':Grant') || name.endsWith(':AccessToken'))) m.delete(id);
    }
  };
  state.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    for (const name of [...stores.keys()]) if (name.startsWith(issuer)) stores.delete(name);
  };
  return state;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * Completes the device flow as a person would in a browser: open the verification URL with the code, confirm,
 * sign in as `login`, consent. With `deny`, presses Abort on the confirmation page instead.
 */
export async function approveDevice(verificationUriComplete: string, login: string, opts: { deny?: boolean } = {}): Promise<string> {
  const jar = new Map<string, string>();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const go = async (url: string, init: { method?: string; body?: URLSearchParams } = {}): Promise<{ url: string; res: Response; text: string }> => {
    let current = url;
    let method = init.method ?? 'GET';
    let body: URLSearchParams | undefined = init.body;
    for (let i = 0; i < 20; i++) {
      const res = await fetch(current, {
        method,
        redirect: 'manual',
        headers: { cookie: cookieHeader(), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        ...(body ? { body: body.toString() } : {}),
      });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';');
        const eq = pair!.indexOf('=');
        jar.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1));
      }
      const loc = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && loc) {
        current = new URL(loc, current).toString();
        method = 'GET';
        body = undefined;
        await res.arrayBuffer();
        continue;
      }
      return { url: current, res, text: await res.text() };
    }
    throw new Error('too many redirects');
  };
  let page = await go(verificationUriComplete);
  for (let step = 0; step < 10; step++) {
    const form = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(page.text);
    if (!form) return page.text;
    const action = new URL(form[1]!.replace(/&amp;/g, '&'), page.url).toString();
    const fields = new URLSearchParams();
    for (const m of form[2]!.matchAll(/<input[^>]*>/gi)) {
      const name = /name="([^"]*)"/.exec(m[0])?.[1];
      const value = /value="([^"]*)"/.exec(m[0])?.[1] ?? '';
      if (name) fields.set(name, value);
    }
    if (fields.get('prompt') === 'login') {
      fields.set('login', login);
      fields.set('password', 'any');
    }
    if (fields.has('xsrf') && /name="abort"/.test(page.text) && opts.deny) {
      fields.delete('confirm');
      fields.set('abort', 'yes');
      return (await go(action, { method: 'POST', body: fields })).text;
    }
    page = await go(action, { method: 'POST', body: fields });
  }
  throw new Error('the device flow did not finish');
}
