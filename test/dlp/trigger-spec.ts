/**
 * The specification of the trigger (src/dlp/trigger.ts): the combined regex it replaced, built for an
 * entity set. The trigger tests check that the hand-written matcher finds exactly the matches of this
 * regex, with the same lengths, on corpora and on random text.
 */
/** Roots of the secret key words (pass(word|wd|phrase), pwd, secret, token, (api|access|private)key, auth, credential). */
const SECRET_KEY_ROOTS = 'p(?:ass|wd)|secret|token|auth|credential|key';

/**
 * `[pP][aA]…` for each ASCII letter: case-insensitive matching of one part of a regex without the `(?i:)`
 * modifier group, which Node 22 (V8 12.4) does not support. Only for sources whose letters are all literal.
 */
function caseless(source: string): string {
  return source.replace(/[a-z]/gi, (ch) => `[${ch.toLowerCase()}${ch.toUpperCase()}]`);
}

/**
 * `(?<!cls)`, except that the letter of a `\n`, `\t`, `\r`, `\b`, `\f` or `\v` escape is a separator, not the
 * character it is (src/dlp/text-bytes.ts, markEscapeLetters): no word character comes before.
 */
export function notAfter(cls: string): string {
  return `(?<!${cls}(?<!\\\\[bfnrtv]))`;
}

/**
 * Builds the combined trigger regex for the enabled entities. Every alternative starts on a character that
 * is rare in ordinary text (a digit not inside a word, `@`, `:`, `=`, `_`, `-`, `J`, `A`, two capitals and
 * two digits, …); the context that makes it a candidate is checked by a look-behind inside the regex engine,
 * so clean text costs one native scan and no JavaScript per character.
 */
export function buildTriggerRegex(entities: ReadonlySet<string>): RegExp {
  const has = (e: string): boolean => entities.has(e);
  const numeric = has('credit_card') || has('us_ssn') || has('phone') || has('ipv4') || has('ipv6');
  // Each alternative starts with a concrete character and checks its context with a look-behind *after*
  // it, so that the regex engine can skip quickly to the next possible first character. Alternatives are
  // grouped by their first character (one top-level branch per character: fewer branches to try at every
  // position; within a group the original order is kept, so every match is the same as ungrouped).
  const alts: string[] = [];
  // digit runs: only the shapes a numeric detector can start on (13-19 digits; 9-11 digits; a group of
  // 1-6 digits followed by a separator and a digit; the first group of an IPv6 address). Rejected in the
  // regex, because `onDigits` would reject them: a digit after a word character or `.`, a digit continuing
  // a number (`1-2`, `1:2`, `1/2`), and a date's year (`2024-01-…`: four digits, a dash and two digits can
  // start no card, SSN, phone or IP unless preceded by `+`). Long runs that no issuer, NANP area or SSN
  // can start are rejected too (unless after `+`): 13-19 digits not starting with 2-6 (epoch milliseconds),
  // 10 digits starting with 0 or 1 (epoch seconds), 11 digits not of the form 1[2-9]….
  // Unlike the other alternatives, this one checks its look-behinds *before* the digit: digits inside words
  // (UUIDs, hashes, timestamps) are the most common rejection, and this form rejects them faster (measured
  // on the bench corpora, paired runs: JSON and logs ~10% faster, the same matches).
  if (numeric) {
    alts.push(
      notAfter('[\\w.]') + '(?<!\\d[\\-:/])\\d(?!(?<!\\+\\d)\\d{3}-\\d\\d(?!\\d))(?:(?<=\\+\\d|[2-6])\\d{12,18}(?!\\d)|(?:(?<=\\+\\d)\\d{8,10}|\\d{8}|(?<=[2-9])\\d{9}|(?<=1)[2-9]\\d{9})(?!\\d)|\\d{0,5}(?=[ .\\-/][\\d(]|\\) ?\\d)|\\d{0,3}(?=[0-9a-fA-F]{0,3}:(?:[0-9a-fA-F]{1,4}:){2}|[0-9a-fA-F]{0,3}:(?:[0-9a-fA-F]{1,4}:){0,5}:))',
    );
  }
  if (has('email')) alts.push('@|\\\\u0040|%40');
  const keyed = has('generic_secret') || has('aws_secret_access_key');
  // The look-behind of a key separator: a secret keyword within the key characters before it. Only a
  // filter (onSeparator classifies the key itself), so it may match more than the keyword list: the short
  // roots below with a longer window (46 = 40 + the longest suffix a root stands for, "phrase") match
  // every key the full list does, and run at every `:` and `=` about 15% faster. The window is lazy: a
  // keyword next to the separator, the common case, is found first (the same set of matches).
  const keyLB = `(?<=(?:${caseless(SECRET_KEY_ROOTS)})[\\w.-]{0,46}?["']?[ \\t]*[:=])`;
  // `<password>`: the `>` of a start tag (no attributes) whose name holds a secret keyword
  const tagLB = `(?<=<[\\w.-]{1,64}>)(?<=(?:${caseless(SECRET_KEY_ROOTS)})[\\w.-]{0,46}?>)`;
  const colon: string[] = [];
  if (has('connection_string') || has('slack_webhook')) colon.push('\\/\\/');
  if (keyed) colon.push(keyLB);
  if (has('ipv6')) colon.push(`(?<=${notAfter('[\\w:]')}:):[0-9a-fA-F]`, `(?<=${notAfter('[\\w:]')}(?<!\\\\(?=[bf]))[a-fA-F][0-9a-fA-F]{0,3}:)(?=[0-9a-fA-F:])`);
  if (colon.length > 0) alts.push(`:(?:${colon.join('|')})`);
  if (keyed) alts.push(`=${keyLB}`, `>${tagLB}`);
  const dash: string[] = [];
  if (has('private_key')) dash.push('----BEGIN ');
  dash.push(`(?<=${notAfter('[\\w-]')}(?:sk|gl(?:pat|ptt|dt|rt|cbt|imt|soat|ft|oas|agent)|xox[abposr])-)`);
  alts.push(`-(?:${dash.join('|')})`);
  alts.push(`_(?<=${notAfter('[\\w-]')}(?:gh[pousr]|github|[sr]k|npm)_)`);
  alts.push('\\.(?<=hooks\\.)slack\\.com\\/');
  // capitals: `eyJ` (JWT), `AKIA`… and `AIza`, then two capitals and two digits (IBAN, GR1348941)
  const caps = [`(?<=${notAfter('[\\w-]')}eyJ)`, `(?<=${notAfter('[\\w-]')}A)(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA|Iza)`];
  if (has('iban') || has('gitlab_token')) caps.push(`(?<=${notAfter('[A-Za-z0-9]')}[A-Z])[A-Z]\\d\\d`);
  alts.push(`[A-Z](?:${caps.join('|')})`);
  return new RegExp(alts.join('|'), 'g');
}

