import { describe, expect, it } from 'vitest';
import { checkRegexSafety, compileCustomDetector, createDlpEngine } from '../../src/dlp/index.js';
import { DlpctlError } from '../../src/errors.js';

describe('checkRegexSafety', () => {
  it.each(['(a+)+', '(a|a)*', '(.*)*', '(\\w|\\d)+$', '(a|ab)*c', '(x+x+)+y', '(\\1)', '(a)\\1', '(?<n>a)\\k<n>', '(a*)*', '(a?)*b', '\\d+\\d+x', '.*.*=', '(', '[a-'])(
    'rejects %s',
    (src) => expect(checkRegexSafety(src)).toEqual(expect.any(String)),
  );
  it.each(['EMP-\\d{6}', '\\b[A-Z]{2}\\d{6}\\b', 'x(?:-\\d+)*', '\\d+(?:\\.\\d+)*', 'ACME_[A-Za-z0-9]{32}', '(?:foo|bar)baz', '[a-z]+@acme\\.test', '(ab|cd)+'])('accepts %s', (src) =>
    expect(checkRegexSafety(src)).toBeNull(),
  );
  it('says why', () => {
    expect(checkRegexSafety('(a+)+')).toMatch(/nested quantifiers/);
    expect(checkRegexSafety('(a|a)*')).toMatch(/overlapping alternatives/);
    expect(checkRegexSafety('(a)\\1')).toMatch(/backreference/);
    expect(checkRegexSafety('(')).toMatch(/does not compile/);
  });
});

describe('custom detectors', () => {
  it('rejects unsafe patterns with DLP_PATTERN', () => {
    try {
      compileCustomDetector({ name: 'bad', pattern: '(a+)+$' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DlpctlError);
      expect((err as DlpctlError).code).toBe('DLP_PATTERN');
      expect((err as DlpctlError).message).toMatch(/nested quantifiers/);
    }
    expect(() => compileCustomDetector({ name: 'email', pattern: 'x' })).toThrow(/built-in/);
    expect(() => compileCustomDetector({ name: 'ok', pattern: 'x\\d', validator: 'nope' })).toThrow(/unknown validator/);
  });

  it('detects with validator and context', () => {
    const e = createDlpEngine({
      customDetectors: [
        { name: 'employee_id', pattern: 'EMP-\\d{6}' },
        { name: 'member_card', pattern: '\\b\\d{16}\\b', validator: 'luhn', context: ['member'] },
      ],
      entities: ['employee_id', 'member_card', 'email'],
    });
    const filler = ' '.repeat(60);
    expect(e.maskText(`EMP-123456 member 1234567812345670${filler}other 1234567812345670${filler}member 1234567812345678`).text).toBe(
      `[REDACTED:employee_id] member [REDACTED:member_card]${filler}other 1234567812345670${filler}member 1234567812345678`,
    );
    expect(() => createDlpEngine({ entities: ['employee_idx'] })).toThrow(/employee_idx/);
  });
});
