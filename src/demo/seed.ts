/**
 * The demo's fake shop: customers (names, emails, phones, SSNs), payments (card numbers that pass Luhn)
 * and orders. Deterministic, so the scripted demo prints the same thing every time. All values are made
 * up; the card numbers use test-card issuer prefixes.
 */

const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Leslie', 'Margaret', 'John'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson', 'Perlman', 'Lamport', 'Hamilton', 'Backus'];
const PRODUCTS = ['keyboard', 'monitor', 'laptop stand', 'usb hub', 'headset', 'webcam'];

/** A small deterministic PRNG (mulberry32) so the demo data is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function luhnComplete(prefix: string, length: number, rand: () => number): string {
  let digits = prefix;
  while (digits.length < length - 1) digits += String(Math.floor(rand() * 10));
  let sum = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits + String((10 - (sum % 10)) % 10);
}

function sql(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

export function demoSeedSql(customers = 50): string {
  const rand = prng(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const lines: string[] = [
    'CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL, phone text, ssn text, created_at timestamptz NOT NULL DEFAULT now());',
    'CREATE TABLE payments (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), card_number text NOT NULL, amount_cents int NOT NULL);',
    'CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), product text NOT NULL, quantity int NOT NULL, note text);',
  ];
  for (let i = 1; i <= customers; i += 1) {
    const first = pick(FIRST);
    const last = pick(LAST);
    const email = `${first}.${last}${i}@example.com`.toLowerCase();
    const phone = `+1 415-555-${String(1000 + Math.floor(rand() * 8999)).padStart(4, '0')}`;
    const ssn = `${String(100 + Math.floor(rand() * 500))}-${String(10 + Math.floor(rand() * 89))}-${String(1000 + Math.floor(rand() * 8999))}`;
    const [prefix, length] = pick([['4111', 16], ['5500', 16], ['3782', 15]] as const);
    const card = luhnComplete(prefix, length, rand);
    lines.push(`INSERT INTO customers (name, email, phone, ssn) VALUES (${sql(`${first} ${last}`)}, ${sql(email)}, ${sql(phone)}, ${sql(ssn)});`);
    lines.push(`INSERT INTO payments (customer_id, card_number, amount_cents) VALUES (${i}, ${sql(card)}, ${100 + Math.floor(rand() * 90000)});`);
    lines.push(
      `INSERT INTO orders (customer_id, product, quantity, note) VALUES (${i}, ${sql(pick(PRODUCTS))}, ${1 + Math.floor(rand() * 4)}, ${sql(i % 7 === 0 ? `call me on ${phone} or write to ${email}` : 'leave at the door')});`,
    );
  }
  return lines.join('\n');
}
