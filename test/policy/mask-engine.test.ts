import { describe, expect, it } from 'vitest';
import { MaskEngineCache } from '../../src/policy/mask-engine.js';
import type { MaskDirective } from '../../src/policy/types.js';

const rule = (entities: string[], w?: MaskDirective['with'], keep?: number): MaskDirective => ({
  policy: 'p',
  rule: 'r',
  entities,
  ...(w ? { with: w } : {}),
  ...(keep !== undefined ? { keep } : {}),
});

describe('MaskEngineCache', () => {
  it('one engine per distinct rule set, the same one for an equal set built again', () => {
    const cache = new MaskEngineCache();
    const a = cache.for([rule(['email'], 'redact')]);
    expect(a).not.toBeNull();
    expect(cache.for([rule(['email'], 'redact')])).toBe(a);
    // a different masker, keep, entity list or split of entities across rules is another engine
    for (const other of [[rule(['email'], 'partial')], [rule(['email'], 'partial', 2)], [rule(['email', 'us_ssn'])], [rule(['email']), rule(['us_ssn'])], [rule(['us_ssn', 'email'])]]) {
      expect(cache.for(other)).not.toBe(a);
    }
    expect(cache.for([rule(['email'], 'partial', 2)])).toBe(cache.for([rule(['email'], 'partial', 2)]));
    expect(cache.for([rule(['email'], 'partial', 2)])).not.toBe(cache.for([rule(['email'], 'partial', 3)]));
  });

  it('masks with what each rule says', () => {
    const cache = new MaskEngineCache();
    expect(cache.for([rule(['email'], 'redact')])!.maskText('mail ann@example.com').text).toBe('mail [REDACTED:email]');
    expect(cache.for([rule(['email'], 'null')])!.maskText('mail ann@example.com').text).not.toContain('ann@example.com');
    expect(cache.for([{ policy: 'p', rule: 'c', columns: ['t.c'] }])).toBeNull();
  });
});
