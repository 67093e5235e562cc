/**
 * Client encodings. PostgreSQL converts text between the database encoding and the session's
 * client_encoding, so SQL text from the client and text cells toward it are in client_encoding. Policy
 * must read the SQL as the server will, and masking must write cells back in the same encoding.
 *
 * Supported: UTF8, SQL_ASCII on a UTF8 database (no conversion: the bytes are UTF-8), PostgreSQL's
 * single-byte encodings (LATIN1-10, ISO_8859_5-8, WIN866, WIN874, WIN1250-1258, KOI8R, KOI8U), and the EUC
 * encodings EUC_JP, EUC_CN and EUC_KR. A single-byte encoding is a table of 256 characters, built once from
 * the platform's decoder, which gives an exact decoder and, reversed, an exact encoder. An EUC encoding is
 * decoded by the platform's strict decoder and encoded through the reverse of its code table, built once by
 * decoding every code of the encoding's own ranges (so the encoder writes only valid EUC bytes). Every byte
 * of an EUC multi-byte character is ≥ 0x80: no byte of one can be read as a quote, a backslash or a tab.
 * Refused: SJIS, BIG5, GBK, UHC and GB18030, whose second bytes include ASCII (a `\` or a letter inside a
 * character: text the tunnel would have to split as the server does before it could read a statement or a
 * COPY row), and EUC_TW, EUC_JIS_2004, SHIFT_JIS_2004, JOHAB and MULE_INTERNAL, which the platform cannot
 * decode. A cell that cannot be masked must not pass.
 */
import { ProtocolError } from './errors.js';

export interface TextCodec {
  /** PostgreSQL's name of the encoding (as in ParameterStatus client_encoding). */
  readonly name: string;
  readonly utf8: boolean;
  /** Strict: an invalid byte sequence is a ProtocolError PG_INVALID_ENCODING (SQLSTATE 22021). */
  decode(bytes: Buffer, what?: string): string;
  /** A character the encoding lacks becomes '?' (masked output is ASCII in practice). */
  encode(text: string): Buffer;
}

/** A strict decoder of the platform's: an invalid sequence is the ProtocolError PostgreSQL's 22021 answers. */
function strictDecode(decoder: { decode(input: Uint8Array): string }, name: string, code: 'PG_INVALID_UTF8' | 'PG_INVALID_ENCODING') {
  return (bytes: Buffer, what = 'text'): string => {
    try {
      return decoder.decode(bytes);
    } catch {
      throw new ProtocolError(code, `${what}: invalid byte sequence for encoding "${name}"`);
    }
  };
}

const UTF8: TextCodec = {
  name: 'UTF8',
  utf8: true,
  decode: strictDecode(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }), 'UTF8', 'PG_INVALID_UTF8'),
  encode: (text) => Buffer.from(text, 'utf8'),
};

/** PostgreSQL encoding name → WHATWG label of its table (latin1 and LATIN5 are patched below). */
const SINGLE_BYTE: Record<string, string> = {
  LATIN1: 'latin1',
  LATIN2: 'iso-8859-2',
  LATIN3: 'iso-8859-3',
  LATIN4: 'iso-8859-4',
  LATIN5: 'windows-1254',
  LATIN6: 'iso-8859-10',
  LATIN7: 'iso-8859-13',
  LATIN8: 'iso-8859-14',
  LATIN9: 'iso-8859-15',
  LATIN10: 'iso-8859-16',
  ISO_8859_5: 'iso-8859-5',
  ISO_8859_6: 'iso-8859-6',
  ISO_8859_7: 'iso-8859-7',
  ISO_8859_8: 'iso-8859-8',
  WIN866: 'ibm866',
  WIN874: 'windows-874',
  WIN1250: 'windows-1250',
  WIN1251: 'windows-1251',
  WIN1252: 'windows-1252',
  WIN1253: 'windows-1253',
  WIN1254: 'windows-1254',
  WIN1255: 'windows-1255',
  WIN1256: 'windows-1256',
  WIN1257: 'windows-1257',
  WIN1258: 'windows-1258',
  KOI8R: 'koi8-r',
  KOI8U: 'koi8-u',
};

/** Aliases PostgreSQL accepts in SET client_encoding, normalised (upper case, no '-' or '_'). */
const ALIASES: Record<string, string> = {
  UNICODE: 'UTF8',
  EUCJP: 'EUC_JP',
  EUCCN: 'EUC_CN',
  EUCKR: 'EUC_KR',
  UTF8: 'UTF8',
  SQLASCII: 'SQL_ASCII',
  ISO88591: 'LATIN1',
  ISO88592: 'LATIN2',
  ISO88593: 'LATIN3',
  ISO88594: 'LATIN4',
  ISO88599: 'LATIN5',
  ISO885910: 'LATIN6',
  ISO885913: 'LATIN7',
  ISO885914: 'LATIN8',
  ISO885915: 'LATIN9',
  ISO885916: 'LATIN10',
  ISO88595: 'ISO_8859_5',
  ISO88596: 'ISO_8859_6',
  ISO88597: 'ISO_8859_7',
  ISO88598: 'ISO_8859_8',
  KOI8: 'KOI8R',
  ALT: 'WIN866',
  WIN: 'WIN1251',
  TCVN: 'WIN1258',
  TCVN5712: 'WIN1258',
  VSCII: 'WIN1258',
  ABC: 'WIN1258',
};

/** PostgreSQL's canonical name for an encoding name or alias as a client may write it. */
export function canonicalEncoding(name: string): string {
  const key = name.toUpperCase().replace(/[-_]/g, '');
  if (ALIASES[key]) return ALIASES[key];
  for (const canonical of Object.keys(SINGLE_BYTE)) if (canonical.replace(/_/g, '') === key) return canonical;
  if (key.startsWith('WIN') || key.startsWith('CP')) {
    const n = key.replace(/^(WIN|CP)/, '');
    if (SINGLE_BYTE[`WIN${n}`]) return `WIN${n}`;
  }
  return name.toUpperCase();
}

const cache = new Map<string, TextCodec>();

/** The codec of a client encoding, or null when the tunnel cannot read and write it (see the module doc). */
export function clientCodec(name: string, serverEncoding = 'UTF8'): TextCodec | null {
  const canonical = canonicalEncoding(name);
  if (canonical === 'UTF8') return UTF8;
  if (canonical === 'SQL_ASCII') return canonicalEncoding(serverEncoding) === 'UTF8' ? UTF8 : null;
  const label = SINGLE_BYTE[canonical];
  const euc = EUC[canonical];
  if (!label && !euc) return null;
  let codec = cache.get(canonical);
  if (!codec) {
    codec = label ? singleByte(canonical, label) : eucCodec(canonical, euc!);
    cache.set(canonical, codec);
  }
  return codec;
}

/** The EUC encodings: WHATWG label, and the byte sequences of the encoding (ASCII aside) as [prefix, rows]. */
const EUC: Record<string, { label: string; planes: { prefix: number[]; lead: [number, number]; trail: [number, number] | null }[] }> = {
  // JIS X 0208 in two bytes, half-width katakana after SS2 (0x8E), JIS X 0212 after SS3 (0x8F)
  EUC_JP: {
    label: 'euc-jp',
    planes: [
      { prefix: [], lead: [0xa1, 0xfe], trail: [0xa1, 0xfe] },
      { prefix: [0x8e], lead: [0xa1, 0xdf], trail: null },
      { prefix: [0x8f], lead: [0xa1, 0xfe], trail: [0xa1, 0xfe] },
    ],
  },
  EUC_CN: { label: 'gb2312', planes: [{ prefix: [], lead: [0xa1, 0xfe], trail: [0xa1, 0xfe] }] },
  EUC_KR: { label: 'euc-kr', planes: [{ prefix: [], lead: [0xa1, 0xfe], trail: [0xa1, 0xfe] }] },
};

/**
 * An EUC codec (see the module doc). The platform's decoders are supersets (WHATWG euc-kr is UHC, gb2312 is
 * GBK): the decoder also accepts a few sequences PostgreSQL rejects, which the server then refuses (22021),
 * and the encoder, built from the EUC ranges alone, never writes one.
 */
function eucCodec(name: string, spec: (typeof EUC)[string]): TextCodec {
  const strict = new TextDecoder(spec.label, { fatal: true });
  const reverse = new Map<string, Buffer>();
  for (const plane of spec.planes) {
    for (let a = plane.lead[0]; a <= plane.lead[1]; a++) {
      const trails = plane.trail ? plane.trail : [-1, -1];
      for (let b = trails[0]!; b <= trails[1]!; b++) {
        const bytes = Buffer.from([...plane.prefix, a, ...(b < 0 ? [] : [b])]);
        let ch: string;
        try {
          ch = strict.decode(bytes);
        } catch {
          continue;
        }
        if ([...ch].length === 1 && !reverse.has(ch)) reverse.set(ch, bytes);
      }
    }
  }
  return {
    name,
    utf8: false,
    decode: strictDecode(strict, name, 'PG_INVALID_ENCODING'),
    encode(text) {
      const parts: Buffer[] = [];
      let ascii = '';
      for (const ch of text) {
        if (ch.charCodeAt(0) < 0x80) {
          ascii += ch;
          continue;
        }
        if (ascii) parts.push(Buffer.from(ascii, 'latin1'));
        ascii = '';
        parts.push(reverse.get(ch) ?? QUESTION);
      }
      if (ascii) parts.push(Buffer.from(ascii, 'latin1'));
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    },
  };
}
const QUESTION = Buffer.from('?');

/** Why a client encoding is refused, and what to use instead (see the module doc). */
export function unsupportedEncodingMessage(name: string): string {
  return `client_encoding ${name} is not supported through the tunnel (policy and masking must read the session's text); use UTF8, EUC_JP, EUC_CN, EUC_KR or a single-byte encoding such as LATIN1-10, WIN1250-1258, KOI8R`;
}

function singleByte(name: string, label: string): TextCodec {
  const table: string[] = new Array<string>(256);
  if (label === 'latin1') {
    for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(b);
  } else {
    const d = new TextDecoder(label);
    for (let b = 0; b < 256; b++) table[b] = d.decode(Uint8Array.of(b));
    // WHATWG decodes ISO-8859-9 as windows-1254; LATIN5 proper has the C1 controls at 0x80-0x9F.
    if (name === 'LATIN5') for (let b = 0x80; b < 0xa0; b++) table[b] = String.fromCharCode(b);
  }
  const reverse = new Map<number, number>();
  for (let b = 255; b >= 0; b--) if (table[b] !== '\ufffd') reverse.set(table[b]!.codePointAt(0)!, b);
  return {
    name,
    utf8: false,
    decode(bytes, what = 'text') {
      let out = '';
      for (let i = 0; i < bytes.length; i++) {
        const c = table[bytes[i]!]!;
        if (c === '\ufffd') {
          throw new ProtocolError('PG_INVALID_ENCODING', `${what}: invalid byte sequence for encoding "${name}": 0x${bytes[i]!.toString(16).padStart(2, '0')}`);
        }
        out += c;
      }
      return out;
    },
    encode(text) {
      const out = Buffer.allocUnsafe(text.length);
      let n = 0;
      for (const ch of text) out[n++] = reverse.get(ch.codePointAt(0)!) ?? 0x3f;
      return out.subarray(0, n);
    },
  };
}

/**
 * The encoding a statement sets with `SET [SESSION|LOCAL] client_encoding TO|= x` or `SET NAMES x`, if it
 * does (a cheap look before the server acts on it; the ParameterStatus that follows is the authority).
 */
export function requestedClientEncoding(sql: string): string | null {
  if (!/client_encoding|names/i.test(sql)) return null;
  const m = /\bset\s+(?:session\s+|local\s+)?(?:client_encoding\s*(?:to|=)|names)\s*(?:'([^']*)'|"([^"]*)"|([A-Za-z0-9_-]+))/i.exec(sql);
  if (!m) return null;
  const v = m[1] ?? m[2] ?? m[3] ?? '';
  return /^default$/i.test(v) ? null : v;
}
