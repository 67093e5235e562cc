import { createDlpEngine } from '../src/dlp/index.js';
const e = createDlpEngine();
const cases: Record<string,string> = {
 pem: '-----BEGIN RSA PRIVATE KEY-----\n'.repeat(20_000), kv: 'password='.repeat(100_000), pre: 'ghp_ sk- AKIA eyJ xoxb- '.repeat(20_000),
 colons: ':'.repeat(200_000) + 'a:'.repeat(100_000), dots: '1.'.repeat(100_000), esc: '\x1b['.repeat(100_000) + '4111111111111111', esc2: '\x1b[31m'.repeat(100_000) + '4111111111111111',
 kvq: 'token="'.repeat(100_000), at: 'a@'.repeat(100000), jwt: 'eyJaaaaaaaaaaaa.'.repeat(50000), ip6: 'a:'.repeat(100000), d: '1-'.repeat(100000), sp: '1 '.repeat(100000),
};
for (const [k, v] of Object.entries(cases)) { const t = performance.now(); e.maskText(v); console.log(k, v.length, (performance.now() - t).toFixed(0), 'ms'); }
