import { describe, expect, it } from 'vitest';
import { generateCorpus } from '../dlp-eval/corpus.js';
import { evaluate, formatReport } from '../dlp-eval/evaluate.js';

const CHECKSUM_AND_PREFIXED = [
  'credit_card', 'iban', 'us_ssn', 'aws_access_key_id', 'github_token', 'gitlab_token', 'openai_api_key', 'anthropic_api_key',
  'slack_token', 'slack_webhook', 'stripe_key', 'google_api_key', 'npm_token', 'jwt', 'private_key',
];
const FUZZY = ['email', 'phone', 'generic_secret', 'aws_secret_access_key', 'connection_string', 'ipv4', 'ipv6'];

describe('DLP evaluation (seeded corpus)', () => {
  const report = evaluate(generateCorpus(20240601, 100, 40));
  const by = new Map(report.entities.map((e) => [e.entity, e]));

  it('prints the report', () => {
    console.log(formatReport(report));
    expect(report.entities.length).toBeGreaterThan(15);
  });
  it.each(CHECKSUM_AND_PREFIXED)('recall ≥ 0.99 for %s', (e) => expect(by.get(e)!.recall).toBeGreaterThanOrEqual(0.99));
  it.each(FUZZY)('recall ≥ 0.95 for %s', (e) => expect(by.get(e)!.recall).toBeGreaterThanOrEqual(0.95));
  it('precision ≥ 0.98 for every entity, and ≥ 98% of near-miss negatives clean', () => {
    for (const e of report.entities) expect(e.precision, e.entity).toBeGreaterThanOrEqual(0.98);
    expect(report.negativeClean, report.fpExamples.join('\n')).toBeGreaterThanOrEqual(0.98);
  });
  it('zero partial leaks', () => expect(report.partialLeaks, report.leakExamples.join('\n')).toBe(0));
});
