/**
 * Seeded evaluation corpus for the DLP engine: labelled positives embedded in realistic carriers (prose,
 * chat prompts, code, .env, YAML, logs, JSON payloads) and near-miss negatives that a regex-only detector
 * would flag (Luhn-failing ids, Luhn-passing ids without an issuer prefix, ZIP+4, epoch timestamps, UUIDs,
 * git SHAs, SHA-256 digests, version strings, order ids, placeholders and documented example keys).
 *
 * Values come from faker where it has a generator (cards, IBANs, emails, IPs, JWTs, passwords) and from our
 * own generators for SSNs, phones and each secret format. The corpus is written independently of the
 * detectors: formats follow the issuers' documentation, not what the detector happens to accept.
 */
import { faker } from '@faker-js/faker';

export type Format = 'prose' | 'chat' | 'code' | 'env' | 'yaml' | 'log' | 'json';

export interface GoldSpan {
  entity: string;
  start: number;
  end: number;
}

export interface Sample {
  text: string;
  format: Format;
  /** Empty for negatives. */
  gold: GoldSpan[];
  negative: boolean;
  /** What the negative imitates (for reporting). */
  nearMiss?: string;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UPPER_DIGIT = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const B64 = `${ALNUM}+/`;
const B64URL = `${ALNUM}-_`;

function pick<T>(xs: readonly T[]): T {
  return xs[faker.number.int({ min: 0, max: xs.length - 1 })]!;
}
function rand(chars: string, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += chars[faker.number.int({ min: 0, max: chars.length - 1 })];
  return s;
}
function digits(n: number): string {
  return rand('0123456789', n);
}
function luhnCheckDigit(partial: string): string {
  let sum = 0;
  let dbl = true;
  for (let i = partial.length - 1; i >= 0; i--) {
    let d = Number(partial[i]);
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
  }
  return String((10 - (sum % 10)) % 10);
}

// ---------------------------------------------------------------------------------------------------------
// positive generators: entity → value

function card(): string {
  const v = faker.finance.creditCardNumber();
  const compact = v.replace(/\D/g, '');
  const style = faker.number.int({ min: 0, max: 3 });
  if (style === 0) return compact;
  if (style === 1) return v; // faker's own grouping
  if (compact.length === 16) return compact.replace(/(\d{4})(?=\d)/g, `$1${style === 2 ? ' ' : '-'}`);
  return v;
}

function ssn(): string {
  let area: number;
  do area = faker.number.int({ min: 1, max: 899 });
  while (area === 666);
  const g = String(faker.number.int({ min: 1, max: 99 })).padStart(2, '0');
  const s = String(faker.number.int({ min: 1, max: 9999 })).padStart(4, '0');
  const a = String(area).padStart(3, '0');
  return pick([`${a}-${g}-${s}`, `${a}-${g}-${s}`, `${a} ${g} ${s}`]);
}

function nxx(): string {
  for (;;) {
    const v = `${faker.number.int({ min: 2, max: 9 })}${digits(2)}`;
    if (!(v[1] === '1' && v[2] === '1')) return v;
  }
}
function areaCode(): string {
  for (;;) {
    const v = nxx();
    if (v[1] !== '9') return v;
  }
}
function phone(): string {
  const a = areaCode();
  const e = nxx();
  const s = digits(4);
  const intl: [string, () => string][] = [
    ['44', () => `+44 20 ${digits(4)} ${digits(4)}`],
    ['49', () => `+49 30 ${digits(8)}`],
    ['33', () => `+33 ${faker.number.int({ min: 1, max: 9 })} ${digits(2)} ${digits(2)} ${digits(2)} ${digits(2)}`],
    ['61', () => `+61 4${digits(2)} ${digits(3)} ${digits(3)}`],
    ['91', () => `+91 ${faker.number.int({ min: 6, max: 9 })}${digits(4)} ${digits(5)}`],
    ['81', () => `+81-3-${digits(4)}-${digits(4)}`],
  ];
  return pick([
    `(${a}) ${e}-${s}`,
    `${a}-${e}-${s}`,
    `${a}.${e}.${s}`,
    `+1 ${a} ${e} ${s}`,
    `+1-${a}-${e}-${s}`,
    `1-${a}-${e}-${s}`,
    `+1 (${a}) ${e}-${s}`,
    pick(intl)[1](),
    pick(intl)[1](),
  ]);
}

function pem(): string {
  const label = pick(['RSA PRIVATE KEY', 'PRIVATE KEY', 'EC PRIVATE KEY', 'OPENSSH PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']);
  const lines = faker.number.int({ min: 3, max: 20 });
  const body = Array.from({ length: lines }, () => rand(B64, 64)).join('\n');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----`;
}

const SECRET_GENERATORS: Record<string, () => string> = {
  aws_access_key_id: () => `${pick(['AKIA', 'ASIA'])}${rand(UPPER_DIGIT, 16)}`,
  github_token: () => (faker.number.int({ min: 0, max: 4 }) === 0 ? `github_pat_${rand(ALNUM, 22)}_${rand(ALNUM, 59)}` : `${pick(['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_'])}${rand(ALNUM, 36)}`),
  gitlab_token: () => `${pick(['glpat-', 'glpat-', 'gldt-', 'glrt-'])}${rand(`${ALNUM}_-`, 20)}`,
  openai_api_key: () =>
    pick([
      () => `sk-proj-${rand(B64URL, 74)}T3BlbkFJ${rand(B64URL, 74)}`,
      () => `sk-svcacct-${rand(B64URL, 60)}`,
      () => `sk-admin-${rand(B64URL, 60)}`,
      () => `sk-${rand(ALNUM, 20)}T3BlbkFJ${rand(ALNUM, 20)}`,
      () => `sk-${rand(ALNUM, 48)}`,
    ])(),
  anthropic_api_key: () => `sk-ant-${pick(['api03', 'admin01'])}-${rand(B64URL, 93)}AA`,
  slack_token: () => `${pick(['xoxb', 'xoxp', 'xoxa', 'xoxs'])}-${digits(12)}-${digits(13)}-${rand(ALNUM, 24)}`,
  slack_webhook: () => `https://hooks.slack.com/services/T${rand(UPPER_DIGIT, 8)}/B${rand(UPPER_DIGIT, 10)}/${rand(ALNUM, 24)}`,
  stripe_key: () => `${pick(['sk_live_', 'rk_live_', 'sk_test_'])}${rand(ALNUM, 24 + faker.number.int({ min: 0, max: 75 }))}`,
  google_api_key: () => `AIza${rand(B64URL, 35)}`,
  npm_token: () => `npm_${rand(ALNUM, 36)}`,
  jwt: () => faker.internet.jwt(),
  private_key: pem,
};

// ---------------------------------------------------------------------------------------------------------
// carriers

interface Built {
  text: string;
  gold: GoldSpan[];
}

/** Fills `{}` in the template with the value and records the span. */
function fill(tpl: string, entity: string, value: string): Built {
  const at = tpl.indexOf('{}');
  return { text: tpl.slice(0, at) + value + tpl.slice(at + 2), gold: [{ entity, start: at, end: at + value.length }] };
}

function jsonCarrier(entity: string, value: string, key: string): Built {
  const obj: Record<string, unknown> = {
    id: faker.string.uuid(),
    created: faker.date.recent().toISOString(),
    amount: faker.number.float({ min: 1, max: 999, fractionDigits: 2 }),
  };
  obj[key] = value;
  obj.status = pick(['ok', 'pending', 'failed']);
  const text = JSON.stringify(obj);
  const enc = JSON.stringify(value);
  const at = text.indexOf(enc) + 1;
  return { text, gold: [{ entity, start: at, end: at + enc.length - 2 }] };
}

const PII_TEMPLATES: Record<string, string[]> = {
  credit_card: [
    'Please charge my card {} for the renewal.',
    'User: my visa is {} exp 04/27, can you check why it was declined?',
    'INFO payment.captured card={} amount=42.00 currency=USD',
    'Card number: {}\nName on card: J. Smith',
  ],
  us_ssn: ['My SSN is {} and I need the W-2 form.', 'applicant ssn: {}', 'Employee record: social security number {}; start date 2021-03-01', 'User: here is my social security {} please verify'],
  email: ['Contact me at {} about the invoice.', 'user={} logged in from the mobile app', 'To: {}\nSubject: quarterly report', 'User: forward it to {} thanks'],
  phone: ['Call me on {} after 5pm.', 'INFO sms.sent to={} template=otp', 'Phone: {}\nFax: n/a', 'User: my number is {}, text me'],
  iban: ['Please wire the refund to IBAN {} by Friday.', 'beneficiary_iban: {}', 'Payout account {} (verified)', 'User: my bank account is {}'],
  ipv4: ['Connection from {} refused.', '{} - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 2326', 'server: {}', 'User: our VPN exit is {}'],
  ipv6: ['Connection from {} refused.', 'listen [{}]:8080', 'client_addr={} status=200', 'User: the host has address {}'],
};

function piiValue(entity: string): string {
  switch (entity) {
    case 'credit_card':
      return card();
    case 'us_ssn':
      return ssn();
    case 'email':
      return faker.internet.email();
    case 'phone':
      return phone();
    case 'iban':
      return faker.datatype.boolean() ? faker.finance.iban() : faker.finance.iban({ formatted: true });
    case 'ipv4':
      return faker.internet.ipv4();
    case 'ipv6':
      return faker.internet.ipv6();
    default:
      throw new Error(entity);
  }
}

const SECRET_TEMPLATES = [
  (v: string): string => `export TOKEN=${v}`,
  (v: string): string => `const client = new Client({ auth: "${v}" });`,
  (v: string): string => `credentials:\n  value: ${v}\n  region: us-east-1`,
  (v: string): string => `User: I get a 401 with this key ${v} — what is wrong?`,
  (v: string): string => `DEBUG http.request header=${v} path=/v1/items`,
  (v: string): string => `Here's my config, the key is ${v}. It worked yesterday.`,
];

const GENERIC_KEYS = ['password', 'DB_PASSWORD', 'api_key', 'apiKey', 'secret', 'client_secret', 'auth_token', 'SECRET_KEY', 'access_token', 'private_key_passphrase'];

function genericValue(key: string): string {
  if (/pass/i.test(key)) return faker.internet.password({ length: faker.number.int({ min: 10, max: 20 }) });
  return pick([() => rand(ALNUM, 32), () => faker.string.hexadecimal({ length: 40, prefix: '' }), () => rand(B64, 40), () => faker.internet.password({ length: 24 })])();
}

function genericCarrier(key: string, value: string): Built {
  const tpl = pick([
    `${key}={}`,
    `${key}: "{}"`,
    `${key} = '{}'`,
    `  ${key}: {}`,
    `{"user":"svc","${key}":"{}"}`,
    `settings.${key} = "{}";`,
  ]);
  // a value quoted in a template must not contain that quote
  const v = tpl.includes("'{}'") ? value.replace(/'/g, 'x') : tpl.includes('"{}"') ? value.replace(/["\\]/g, 'x') : value.replace(/[\s"',;&]/g, 'x');
  return fill(tpl, 'generic_secret', v);
}

function connString(): Built {
  const scheme = pick(['postgres', 'postgresql', 'mysql', 'mongodb+srv', 'redis', 'amqp']);
  const user = faker.internet.username().replace(/[^A-Za-z0-9_]/g, '');
  const pw = rand(`${ALNUM}-_~`, faker.number.int({ min: 10, max: 24 }));
  const host = faker.internet.domainName();
  const prefix = pick(['DATABASE_URL=', 'url: ', 'connecting to ', '"dsn": "']);
  const text = `${prefix}${scheme}://${user}:${pw}@${host}:5432/app${prefix.startsWith('"') ? '"' : ''}`;
  const at = text.indexOf(`:${pw}@`) + 1;
  return { text, gold: [{ entity: 'connection_string', start: at, end: at + pw.length }] };
}

function awsSecret(): Built {
  const v = rand(B64, 40);
  return fill(pick(['aws_secret_access_key = {}', 'AWS_SECRET_ACCESS_KEY={}', '"SecretAccessKey": "{}"']), 'aws_secret_access_key', v);
}

// ---------------------------------------------------------------------------------------------------------
// negatives

const NEGATIVE_GENERATORS: Record<string, () => string> = {
  luhn_failing_16: () => {
    for (;;) {
      const v = `4${digits(15)}`;
      const check = luhnCheckDigit(v.slice(0, 15));
      if (v[15] !== check) return `order ${v} shipped`;
    }
  },
  luhn_passing_non_issuer: () => {
    const head = `${pick(['1', '7', '8', '9'])}${digits(14)}`;
    return `reference id ${head}${luhnCheckDigit(head)} was created`;
  },
  zip4: () => `Ship to ${faker.location.streetAddress()}, ${faker.location.city()} ${faker.location.zipCode('#####-####')}`,
  epoch: () => `ts=${faker.number.int({ min: 1_500_000_000, max: 1_800_000_000 })} ms=${faker.number.int({ min: 1_500_000_000_000, max: 1_800_000_000_000 })}`,
  uuid: () => `request_id=${faker.string.uuid()} trace=${faker.string.uuid()}`,
  git_sha: () => `commit ${faker.git.commitSha()} (HEAD -> main)`,
  sha256: () => `sha256: ${faker.string.hexadecimal({ length: 64, casing: 'lower', prefix: '' })}`,
  version: () => `${pick(['version', 'v', 'Version:', 'release'])}${pick([' ', ''])}${faker.system.semver()}.${faker.number.int({ min: 0, max: 99 })}`,
  order_id: () => `Order #${digits(3)}-${digits(7)}-${digits(7)} confirmed`,
  placeholder_aws: () => pick(['AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE', 'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY']),
  placeholder_key: () =>
    pick([
      'OPENAI_API_KEY=sk-...xxxx',
      'api_key: ${OPENAI_API_KEY}',
      'Authorization: Bearer <token>',
      'password: changeme',
      'api_key = "your-api-key-here"',
      'token: xxxxxxxx',
      'GITHUB_TOKEN=${{ secrets.GITHUB_TOKEN }}',
      'password = os.environ["DB_PASSWORD"]',
      'const apiKey = process.env.API_KEY;',
      'postgres://user:password@localhost:5432/db',
    ]),
  phone_like: () => pick([`id ${digits(10)} created`, `call 1${digits(2)}-${digits(3)}-${digits(4)}`, `ext 911-${digits(3)}-${digits(4)}`]),
  ssn_like: () => pick([`part 000-${digits(2)}-${digits(4)}`, `code 666-${digits(2)}-${digits(4)}`, `lot 9${digits(2)}-${digits(2)}-${digits(4)}`, `batch ${digits(9)} processed`]),
  iban_bad_check: () => {
    const v = faker.finance.iban();
    const d = Number(v[2]);
    return `account ${v.slice(0, 2)}${(d + 1) % 10}${v.slice(3)} closed`;
  },
  dates_prices: () => `On ${faker.date.past().toISOString()} we sold ${faker.number.int(500)} items for $${faker.commerce.price()} (SKU ${faker.string.alphanumeric(8).toUpperCase()})`,
  tokens_config: () => pick([`max_tokens: ${faker.number.int({ min: 100, max: 8000 })}`, 'token_type: "Bearer"', `secret_name: ${faker.word.noun()}-prod`, `key: ${faker.word.noun()}`, `keyboard: ${faker.word.adjective()}`]),
  prose: () => faker.lorem.paragraph(),
  base64_blob: () => `data:image/png;base64,${rand(B64, 120)}`,
};

// ---------------------------------------------------------------------------------------------------------

const PII = ['credit_card', 'us_ssn', 'email', 'phone', 'iban', 'ipv4', 'ipv6'];

/** Builds the corpus for `seed`: `perEntity` positives per entity and `perNegative` of each near-miss kind. */
export function generateCorpus(seed: number, perEntity = 60, perNegative = 30): Sample[] {
  faker.seed(seed);
  const out: Sample[] = [];
  const formatOf = (tpl: string): Format => (tpl.startsWith('User:') ? 'chat' : /^(?:INFO|DEBUG|\d|\[|\{)/.test(tpl) || tpl.includes('=') ? 'log' : tpl.includes(': ') && tpl.includes('\n') ? 'yaml' : 'prose');
  for (const entity of PII) {
    for (let i = 0; i < perEntity; i++) {
      const value = piiValue(entity);
      if (i % 5 === 4) {
        const b = jsonCarrier(entity, value, pick(['note', 'value', 'contact', 'data']));
        out.push({ ...b, format: 'json', negative: false });
        continue;
      }
      const tpl = pick(PII_TEMPLATES[entity]!);
      out.push({ ...fill(tpl, entity, value), format: formatOf(tpl), negative: false });
    }
  }
  for (const [entity, gen] of Object.entries(SECRET_GENERATORS)) {
    for (let i = 0; i < perEntity; i++) {
      const value = gen();
      if (i % 5 === 4) {
        const b = jsonCarrier(entity, value, pick(['output', 'content', 'arguments']));
        out.push({ ...b, format: 'json', negative: false });
        continue;
      }
      const tpl = pick(SECRET_TEMPLATES);
      const text = tpl(value);
      const at = text.indexOf(value);
      out.push({ text, gold: [{ entity, start: at, end: at + value.length }], format: text.startsWith('User:') ? 'chat' : text.startsWith('export') ? 'env' : text.includes('\n') ? 'yaml' : text.startsWith('const') ? 'code' : 'log', negative: false });
    }
  }
  for (let i = 0; i < perEntity; i++) {
    const key = pick(GENERIC_KEYS);
    const b = genericCarrier(key, genericValue(key));
    out.push({ ...b, format: b.text.startsWith('{') ? 'json' : b.text.startsWith('settings') ? 'code' : b.text.includes('=') ? 'env' : 'yaml', negative: false });
    out.push({ ...connString(), format: 'env', negative: false });
    out.push({ ...awsSecret(), format: 'env', negative: false });
  }
  for (const [kind, gen] of Object.entries(NEGATIVE_GENERATORS)) {
    for (let i = 0; i < perNegative; i++) out.push({ text: gen(), format: 'log', gold: [], negative: true, nearMiss: kind });
  }
  return out;
}
