/**
 * Checkpoints of the session chains (DESIGN §5), pure functions shared by both engines.
 *
 * The per-session hash chains show an edit, but not a consistent rewrite: whoever can write the store can
 * recompute every hash after the event they changed, delete a session outright, or swap in an empty store.
 * A checkpoint fixes the state of the store at a moment, as CloudTrail's digest files and the signed tree
 * heads of Certificate Transparency do:
 *
 *   body(n) = canonical JSON { v: 1, n, time, prev: hash(n-1), heads: [[session, seq, hash, last time]…], key? }
 *   hash(n) = hex SHA-256(body(n)),   hash(0) = 64 zeros
 *   signature(n) = Ed25519(private key, body(n))   (when a signing key is configured)
 *
 * `heads` lists the sessions whose chain moved since checkpoint n-1, so the whole chain of checkpoints names
 * every session ever checkpointed with its head at that time. Rewriting an event at or before a
 * checkpointed head changes that head's hash; deleting a session leaves a checkpointed head with no chain;
 * rewriting the checkpoints too breaks the signatures, which need the private key that lives outside the
 * store. What a signature cannot show is a store cut back to an earlier, validly signed checkpoint: copies of
 * the checkpoints kept elsewhere (an append-only file, a webhook) catch that.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { DlpctlError } from '../errors.js';
import { canonicalJson, GENESIS_HASH } from './chain.js';
import type { CheckpointBody, CheckpointRecord } from './types.js';

export interface HeadRow {
  id: string;
  seq: number;
  hash: string;
  lastTime: string;
}

/** First 16 hex digits of the SHA-256 of the key's SubjectPublicKeyInfo (DER). */
export function keyIdOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function loadPrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new DlpctlError('CONFIG_INVALID', 'audit.signingKey is not a PEM private key; make one with `dlpctl audit keygen --out FILE`', { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new DlpctlError('CONFIG_INVALID', `audit.signingKey is an ${key.asymmetricKeyType ?? 'unknown'} key; checkpoints are signed with Ed25519 (make one with \`dlpctl audit keygen --out FILE\`)`);
  }
  return key;
}

export function loadPublicKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new DlpctlError('USAGE', '--public-key: not a PEM public key (use the .pub file `dlpctl audit keygen` wrote)', { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new DlpctlError('USAGE', `--public-key: an ${key.asymmetricKeyType ?? 'unknown'} key; checkpoints are signed with Ed25519`);
  return key.type === 'private' ? createPublicKey(key) : key;
}

/** A new Ed25519 key pair as PEM (PKCS#8 private, SPKI public). */
export function generateSigningKeyPair(): { privateKey: string; publicKey: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

/** Builds checkpoint n+1 after `prev` (undefined: the first). */
export function buildCheckpoint(prev: { n: number; hash: string } | undefined, heads: HeadRow[], time: string, signingKey?: string): CheckpointRecord {
  const n = (prev?.n ?? 0) + 1;
  const key = signingKey === undefined ? undefined : loadPrivateKey(signingKey);
  const body: CheckpointBody = {
    v: 1,
    n,
    time,
    prev: prev?.hash ?? GENESIS_HASH,
    heads: [...heads].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((h) => [h.id, h.seq, h.hash, h.lastTime]),
    ...(key ? { key: keyIdOf(key) } : {}),
  };
  const text = canonicalJson(body);
  return {
    n,
    time,
    body: text,
    hash: createHash('sha256').update(text).digest('hex'),
    signature: key ? sign(null, Buffer.from(text), key).toString('base64') : null,
  };
}

/** Parses and checks one record on its own: canonical body, hash, number. Returns the body or a reason. */
export function parseCheckpoint(r: CheckpointRecord): { body: CheckpointBody } | { reason: string } {
  let body: CheckpointBody;
  try {
    body = JSON.parse(r.body) as CheckpointBody;
  } catch {
    return { reason: 'checkpoint body is not valid JSON' };
  }
  if (body === null || typeof body !== 'object' || body.v !== 1 || !Array.isArray(body.heads)) return { reason: 'checkpoint body is not a dlpctl checkpoint' };
  if (canonicalJson(body) !== r.body) return { reason: 'checkpoint body is not in canonical form (edited)' };
  if (createHash('sha256').update(r.body).digest('hex') !== r.hash) return { reason: 'checkpoint hash does not match its body (edited)' };
  if (body.n !== r.n) return { reason: `checkpoint body says n=${body.n}` };
  return { body };
}

export function checkSignature(r: CheckpointRecord, key: KeyObject): boolean {
  if (r.signature === null) return false;
  try {
    return verify(null, Buffer.from(r.body), key, Buffer.from(r.signature, 'base64'));
  } catch {
    return false;
  }
}

/** Reads the JSON lines an external checkpoint file holds (one `CheckpointRecord` each). */
export function parseCheckpointLines(text: string, what: string): CheckpointRecord[] {
  const out: CheckpointRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let r: CheckpointRecord;
    try {
      r = JSON.parse(line) as CheckpointRecord;
    } catch {
      throw new DlpctlError('USAGE', `${what} line ${i + 1} is not JSON; it should hold the lines dlpctl appended (audit.checkpointFile)`);
    }
    if (typeof r?.n !== 'number' || typeof r.body !== 'string' || typeof r.hash !== 'string') {
      throw new DlpctlError('USAGE', `${what} line ${i + 1} is not a dlpctl checkpoint`);
    }
    out.push({ n: r.n, time: String(r.time), body: r.body, hash: r.hash, signature: typeof r.signature === 'string' ? r.signature : null });
  });
  return out;
}
