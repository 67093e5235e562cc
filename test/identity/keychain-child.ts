/** Run under dbus-run-session by keychain.test.ts: exercises the real Secret Service through TokenStore. */
import { TokenStore } from '../../src/identity/token-store.js';

const home = process.argv[2]!;
const store = new TokenStore({ env: { XDG_STATE_HOME: `${home}/state` }, homedir: home });
const { backend, notice } = await store.target();
const login = { version: 1 as const, issuer: 'https://id.example.com', clientId: 'dlpctl', refreshToken: 'rt-secret-value-kc-123', savedAt: 1 };
await backend.set(login);
const got = await store.get(login.issuer);
const removed = await store.delete(login.issuer);
const after = await store.get(login.issuer);
process.stdout.write(JSON.stringify({ kind: backend.kind, notice: notice ?? null, roundTrip: got?.login.refreshToken === login.refreshToken, foundIn: got?.backend.kind, removed, after }));
