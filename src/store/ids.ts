/** Identifiers: sortable session ids and short, typeable approval ids. */
import { randomBytes, randomInt } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A ULID: 48-bit millisecond time + 80 random bits, Crockford base32, 26 characters, sortable by time. */
export function newSessionId(now: Date = new Date()): string {
  let t = now.getTime();
  let time = '';
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const rnd = randomBytes(10);
  let bits = 0;
  let acc = 0;
  let out = '';
  for (const b of rnd) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += CROCKFORD[(acc >>> (bits - 5)) & 31]!;
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  return time + out;
}

/** No 0/O, 1/I/L, U: easy to read aloud and type. */
export const APPROVAL_ID_ALPHABET = '23456789ABCDEFGHJKMNPQRSTVWXYZ';

export function newApprovalId(): string {
  let id = '';
  for (let i = 0; i < 6; i++) id += APPROVAL_ID_ALPHABET[randomInt(APPROVAL_ID_ALPHABET.length)]!;
  return id;
}

/** Normalises what a person typed (`k7qf2m`) to the stored form. */
export function normalizeApprovalId(id: string): string {
  return id.trim().toUpperCase();
}
