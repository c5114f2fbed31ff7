/**
 * The tokenizer.json pipeline stages around the model, each built from its JSON and behaving like the Hugging
 * Face tokenizers component of the same name (only ids and strings are tracked, not offsets):
 *   normalizers   NFC NFD NFKC NFKD Lowercase Strip StripAccents Replace Prepend Append BertNormalizer
 *                 ByteLevel Sequence
 *   pre-tokenizers ByteLevel Split Metaspace Whitespace WhitespaceSplit Punctuation Digits BertPreTokenizer
 *                 CharDelimiterSplit Sequence
 *   decoders      ByteLevel Metaspace Replace ByteFallback Fuse Strip BPEDecoder WordPiece Sequence
 *   post-processors TemplateProcessing RobertaProcessing BertProcessing ByteLevel Sequence
 * Splitting follows HF's `NormalizedString::split`: the pattern's matches cover the string, the behaviour
 * (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous) groups them, empty pieces vanish.
 */
import { compileOniguruma, literalRegExp, RegexTranslateError } from './tokenizer-regex';
import {
  BYTE_TO_CHAR, CHAR_TO_BYTE, NUMERIC, PUNCT, field, isObject, tokError, utf8, utf8Lossy, utf8Strict,
  type Json, type Source,
} from './tokenizer-util';

export type Normalizer = (s: string) => string;
/** A pre-token; `atStart` = it begins at offset 0 of the original text (Metaspace's prepend_scheme "first"). */
export interface Piece {
  text: string;
  atStart: boolean;
}
export type PreTokenizer = (pieces: Piece[]) => Piece[];
export type Decoder = (tokens: string[]) => string[];
export interface PostProcessor {
  /** Ids to put before and after the sequence when special tokens are added. */
  readonly before: number[];
  readonly after: number[];
}

type Behavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
const BEHAVIORS = new Set(['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']);
type Span = [number, number, boolean]; // start, end, is a match

function typeOf(src: Source, where: string, j: unknown): string {
  if (!isObject(j) || typeof j.type !== 'string') throw tokError(src, where, `should be an object with a string 'type', got ${JSON.stringify(j)?.slice(0, 60)}`);
  return j.type;
}

function regex(src: Source, where: string, pattern: string): RegExp {
  try {
    return compileOniguruma(pattern);
  } catch (e) {
    if (e instanceof RegexTranslateError) throw tokError(src, where, `regex ${JSON.stringify(pattern)}: ${e.message}`);
    throw e;
  }
}

/** A {String: s} or {Regex: r} pattern object as a global RegExp. */
function patternOf(src: Source, where: string, p: unknown): RegExp | null {
  if (isObject(p) && typeof p.String === 'string') return p.String === '' ? null : literalRegExp(p.String);
  if (isObject(p) && typeof p.Regex === 'string') return regex(src, where, p.Regex);
  throw tokError(src, where, `pattern should be {"String": ...} or {"Regex": ...}, got ${JSON.stringify(p)?.slice(0, 60)}`);
}

/** Matches of `re` covering `s`, as HF's `Pattern::find_matches` (no match on an empty string). */
function findMatches(re: RegExp, s: string, invert: boolean): Span[] {
  const out: Span[] = [];
  let prev = 0;
  re.lastIndex = 0;
  for (const m of s.matchAll(re)) {
    const start = m.index!;
    const end = start + m[0].length;
    if (prev !== start) out.push([prev, start, invert]);
    out.push([start, end, !invert]);
    prev = end;
  }
  if (prev !== s.length) out.push([prev, s.length, invert]);
  return out;
}

function group(spans: Span[], behavior: Behavior): [number, number][] {
  const out: [number, number][] = [];
  switch (behavior) {
    case 'Isolated':
      for (const [a, b] of spans) out.push([a, b]);
      break;
    case 'Removed':
      for (const [a, b, m] of spans) if (!m) out.push([a, b]);
      break;
    case 'Contiguous': {
      let prevMatch = false;
      for (const [a, b, m] of spans) {
        if (m === prevMatch && out.length) out[out.length - 1][1] = b;
        else out.push([a, b]);
        prevMatch = m;
      }
      break;
    }
    case 'MergedWithPrevious': {
      let prevMatch = false;
      for (const [a, b, m] of spans) {
        if (m && !prevMatch && out.length) out[out.length - 1][1] = b;
        else out.push([a, b]);
        prevMatch = m;
      }
      break;
    }
    case 'MergedWithNext': {
      let prevMatch = false;
      for (let k = spans.length - 1; k >= 0; k--) {
        const [a, b, m] = spans[k];
        if (m && !prevMatch && out.length) out[out.length - 1][0] = a;
        else out.push([a, b]);
        prevMatch = m;
      }
      out.reverse();
      break;
    }
  }
  return out;
}

function splitPieces(pieces: Piece[], re: RegExp, behavior: Behavior, invert = false): Piece[] {
  const out: Piece[] = [];
  for (const p of pieces) {
    for (const [a, b] of group(findMatches(re, p.text, invert), behavior)) {
      if (b > a) out.push({ text: p.text.slice(a, b), atStart: p.atStart && a === 0 });
    }
  }
  return out;
}

// ---- normalizers -----------------------------------------------------------------------------------

const lowercase: Normalizer = (s) => {
  // Per code point, like Rust's char::to_lowercase (no final-sigma rule, unlike String.toLowerCase).
  let out = '';
  for (const c of s) out += c.toLowerCase();
  return out;
};
const MARKS = /\p{M}/gu; // StripAccents drops every mark...
const NONSPACING = /\p{Mn}/gu; // ...BertNormalizer's strip_accents only Mn
const CLEAN = /[\x00\ufffd]|(?![\t\n\r])[\p{Cc}\p{Cf}\p{Co}]/gu; // HF's is_other misses unassigned (Cn)
const WS_ALL = /[\t\n\r]|\p{White_Space}/gu;
const CJK = /[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\u{20000}-\u{2a6df}\u{2a700}-\u{2b73f}\u{2b740}-\u{2b81f}\u{2b920}-\u{2ceaf}\u{2f800}-\u{2fa1f}]/gu;

export function buildNormalizer(src: Source, j: unknown, where = 'normalizer'): Normalizer | null {
  if (j === null || j === undefined) return null;
  const type = typeOf(src, where, j);
  const o = j as Json;
  switch (type) {
    case 'Sequence': {
      if (!Array.isArray(o.normalizers)) throw tokError(src, where, 'Sequence needs a normalizers array');
      const parts = o.normalizers.map((n, k) => buildNormalizer(src, n, `${where}.normalizers[${k}]`)!);
      return (s) => parts.reduce((acc, f) => f(acc), s);
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return (s) => s.normalize(type);
    case 'Lowercase':
      return lowercase;
    case 'Strip': {
      const left = field(src, where, o, 'strip_left', 'boolean', true);
      const right = field(src, where, o, 'strip_right', 'boolean', true);
      return (s) => {
        let out = s;
        if (left) out = out.replace(/^\p{White_Space}+/u, '');
        if (right) out = out.replace(/\p{White_Space}+$/u, '');
        return out;
      };
    }
    case 'StripAccents':
      return (s) => s.replace(MARKS, '');
    case 'Replace': {
      const re = patternOf(src, where, o.pattern);
      const content = field(src, where, o, 'content', 'string', '');
      return re ? (s) => s.replace(re, () => content) : (s) => s;
    }
    case 'Prepend': {
      const pre = field(src, where, o, 'prepend', 'string', '');
      return (s) => (s.length ? pre + s : s);
    }
    case 'Append': {
      const app = field(src, where, o, 'append', 'string', '');
      return (s) => (s.length ? s + app : s);
    }
    case 'ByteLevel':
      return (s) => Array.from(utf8(s), (b) => BYTE_TO_CHAR[b]).join('');
    case 'BertNormalizer': {
      const clean = field(src, where, o, 'clean_text', 'boolean', true);
      const chinese = field(src, where, o, 'handle_chinese_chars', 'boolean', true);
      const lower = field(src, where, o, 'lowercase', 'boolean', true);
      const strip = field<boolean | null>(src, where, o, 'strip_accents', 'boolean', null) ?? lower;
      return (s) => {
        let out = s;
        if (clean) out = out.replace(CLEAN, '').replace(WS_ALL, ' ');
        if (chinese) out = out.replace(CJK, (c) => ` ${c} `);
        if (strip) out = out.normalize('NFD').replace(NONSPACING, '');
        if (lower) out = lowercase(out);
        return out;
      };
    }
    default:
      throw tokError(src, where, `unsupported normalizer type ${JSON.stringify(type)}`);
  }
}

// ---- pre-tokenizers --------------------------------------------------------------------------------

const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const WS_RE = /\p{White_Space}/gu;
const PUNCT_RE = new RegExp(PUNCT.source, 'gu');
const NUM_RE = new RegExp(NUMERIC.source, 'gu');
// Rust regex crate's Unicode \w (used by the Whitespace pre-tokenizer): Alphabetic, M, Nd, Pc, Join_Control.
const RW = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}';
const WHITESPACE_RE = new RegExp(`[${RW}]+|[^${RW}\\p{White_Space}]+`, 'gu');

function byteLevelChars(s: string): string {
  let out = '';
  for (const b of utf8(s)) out += BYTE_TO_CHAR[b];
  return out;
}

export function buildPreTokenizer(src: Source, j: unknown, where = 'pre_tokenizer'): PreTokenizer | null {
  if (j === null || j === undefined) return null;
  const type = typeOf(src, where, j);
  const o = j as Json;
  switch (type) {
    case 'Sequence': {
      if (!Array.isArray(o.pretokenizers)) throw tokError(src, where, 'Sequence needs a pretokenizers array');
      const parts = o.pretokenizers.map((n, k) => buildPreTokenizer(src, n, `${where}.pretokenizers[${k}]`)!);
      return (pieces) => parts.reduce((acc, f) => f(acc), pieces);
    }
    case 'ByteLevel': {
      const prefix = field(src, where, o, 'add_prefix_space', 'boolean', true);
      const re = field(src, where, o, 'use_regex', 'boolean', true) ? regex(src, where, GPT2_PATTERN) : null;
      return (pieces) => {
        const withPrefix = prefix ? pieces.map((p) => (p.text.startsWith(' ') ? p : { ...p, text: ' ' + p.text })) : pieces;
        const split = re ? splitPieces(withPrefix, re, 'Isolated') : withPrefix;
        return split.map((p) => ({ text: byteLevelChars(p.text), atStart: p.atStart }));
      };
    }
    case 'Split': {
      const re = patternOf(src, where, o.pattern);
      const behavior = o.behavior;
      if (typeof behavior !== 'string' || !BEHAVIORS.has(behavior)) throw tokError(src, where, `unknown split behavior ${JSON.stringify(behavior)}`);
      const invert = field(src, where, o, 'invert', 'boolean', false);
      if (!re) return (pieces) => pieces;
      return (pieces) => splitPieces(pieces, re, behavior as Behavior, invert);
    }
    case 'Metaspace': {
      const rep = field(src, where, o, 'replacement', 'string', '\u2581');
      if (Array.from(rep).length !== 1) throw tokError(src, where, `replacement ${JSON.stringify(rep)} should be one character`);
      const scheme = metaspaceScheme(src, where, o);
      const split = field(src, where, o, 'split', 'boolean', true);
      const re = literalRegExp(rep);
      return (pieces) => {
        const out = pieces.map((p) => {
          let text = p.text.replaceAll(' ', rep);
          if (!text.startsWith(rep) && (scheme === 'always' || (scheme === 'first' && p.atStart))) text = rep + text;
          return { text, atStart: p.atStart };
        });
        return split ? splitPieces(out, re, 'MergedWithNext') : out;
      };
    }
    case 'Whitespace':
      return (pieces) => splitPieces(pieces, WHITESPACE_RE, 'Removed', true);
    case 'WhitespaceSplit':
      return (pieces) => splitPieces(pieces, WS_RE, 'Removed');
    case 'Punctuation': {
      const behavior = (o.behavior ?? 'Isolated') as Behavior;
      if (!BEHAVIORS.has(behavior)) throw tokError(src, where, `unknown punctuation behavior ${JSON.stringify(behavior)}`);
      return (pieces) => splitPieces(pieces, PUNCT_RE, behavior);
    }
    case 'Digits': {
      const single = field(src, where, o, 'individual_digits', 'boolean', false);
      return (pieces) => splitPieces(pieces, NUM_RE, single ? 'Isolated' : 'Contiguous');
    }
    case 'BertPreTokenizer':
      return (pieces) => splitPieces(splitPieces(pieces, WS_RE, 'Removed'), PUNCT_RE, 'Isolated');
    case 'CharDelimiterSplit': {
      const d = field(src, where, o, 'delimiter', 'string', '');
      if (Array.from(d).length !== 1) throw tokError(src, where, `delimiter ${JSON.stringify(d)} should be one character`);
      const re = literalRegExp(d);
      return (pieces) => splitPieces(pieces, re, 'Removed');
    }
    default:
      throw tokError(src, where, `unsupported pre_tokenizer type ${JSON.stringify(type)}`);
  }
}

type Scheme = 'always' | 'first' | 'never';

function metaspaceScheme(src: Source, where: string, o: Json): Scheme {
  const s = o.prepend_scheme;
  if (s === undefined || s === null) return o.add_prefix_space === false ? 'never' : 'always';
  if (s === 'always' || s === 'first' || s === 'never') return s;
  throw tokError(src, where, `unknown prepend_scheme ${JSON.stringify(s)}`);
}

// ---- decoders --------------------------------------------------------------------------------------

function wordpieceCleanup(s: string): string {
  return s
    .replaceAll(' .', '.').replaceAll(' ?', '?').replaceAll(' !', '!').replaceAll(' ,', ',')
    .replaceAll(" ' ", "'").replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(' do not', " don't")
    .replaceAll(" 's", "'s").replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}

function flushBytes(out: string[], bytes: number[]): void {
  if (!bytes.length) return;
  const s = utf8Strict(Uint8Array.from(bytes));
  if (s !== null) out.push(s);
  else for (let k = 0; k < bytes.length; k++) out.push('\ufffd');
  bytes.length = 0;
}

export function buildDecoder(src: Source, j: unknown, where = 'decoder'): Decoder | null {
  if (j === null || j === undefined) return null;
  const type = typeOf(src, where, j);
  const o = j as Json;
  switch (type) {
    case 'Sequence': {
      if (!Array.isArray(o.decoders)) throw tokError(src, where, 'Sequence needs a decoders array');
      const parts = o.decoders.map((n, k) => buildDecoder(src, n, `${where}.decoders[${k}]`)!);
      return (tokens) => parts.reduce((acc, f) => f(acc), tokens);
    }
    case 'ByteLevel':
      return (tokens) => {
        const bytes: number[] = [];
        for (const t of tokens) {
          const mark = bytes.length;
          let ok = true;
          for (const c of t) {
            const b = CHAR_TO_BYTE.get(c);
            if (b === undefined) {
              ok = false;
              break;
            }
            bytes.push(b);
          }
          if (!ok) {
            bytes.length = mark;
            for (const b of utf8(t)) bytes.push(b);
          }
        }
        return [utf8Lossy(Uint8Array.from(bytes))];
      };
    case 'Metaspace': {
      const rep = field(src, where, o, 'replacement', 'string', '\u2581');
      const scheme = metaspaceScheme(src, where, o);
      return (tokens) => tokens.map((t, i) => (i === 0 && scheme !== 'never' ? t.replaceAll(rep, '') : t.replaceAll(rep, ' ')));
    }
    case 'Replace': {
      const re = patternOf(src, where, o.pattern);
      const content = field(src, where, o, 'content', 'string', '');
      return (tokens) => (re ? tokens.map((t) => t.replace(re, () => content)) : tokens);
    }
    case 'ByteFallback':
      return (tokens) => {
        const out: string[] = [];
        const bytes: number[] = [];
        for (const t of tokens) {
          if (t.length === 6 && t.startsWith('<0x') && t.endsWith('>') && /^[0-9a-fA-F]{2}$/.test(t.slice(3, 5))) {
            bytes.push(parseInt(t.slice(3, 5), 16));
          } else {
            flushBytes(out, bytes);
            out.push(t);
          }
        }
        flushBytes(out, bytes);
        return out;
      };
    case 'Fuse':
      return (tokens) => [tokens.join('')];
    case 'Strip': {
      const content = field(src, where, o, 'content', 'string', ' ');
      const start = field(src, where, o, 'start', 'number', 0);
      const stop = field(src, where, o, 'stop', 'number', 0);
      return (tokens) =>
        tokens.map((t) => {
          const cs = Array.from(t);
          let a = 0;
          while (a < start && a < cs.length && cs[a] === content) a++;
          let b = cs.length;
          while (cs.length - b < stop && b > a && cs[b - 1] === content) b--;
          return cs.slice(a, b).join('');
        });
    }
    case 'BPEDecoder': {
      const suffix = field(src, where, o, 'suffix', 'string', '</w>');
      return (tokens) => tokens.map((t, i) => (suffix ? t.replaceAll(suffix, i === tokens.length - 1 ? '' : ' ') : t));
    }
    case 'WordPiece': {
      const prefix = field(src, where, o, 'prefix', 'string', '##');
      const cleanup = field(src, where, o, 'cleanup', 'boolean', true);
      return (tokens) =>
        tokens.map((t, i) => {
          let s = t;
          if (i !== 0) s = s.startsWith(prefix) ? s.slice(prefix.length) : ' ' + s;
          return cleanup ? wordpieceCleanup(s) : s;
        });
    }
    default:
      throw tokError(src, where, `unsupported decoder type ${JSON.stringify(type)}`);
  }
}

// ---- post-processors -------------------------------------------------------------------------------

export function buildPostProcessor(
  src: Source, j: unknown, tokenId: (t: string) => number | undefined, where = 'post_processor',
): PostProcessor | null {
  if (j === null || j === undefined) return null;
  const type = typeOf(src, where, j);
  const o = j as Json;
  const pairId = (key: string): number => {
    const v = o[key];
    if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'number') {
      throw tokError(src, where, `${key} should be [token, id], got ${JSON.stringify(v)?.slice(0, 60)}`);
    }
    return v[1];
  };
  switch (type) {
    case 'ByteLevel':
      return { before: [], after: [] };
    case 'RobertaProcessing':
    case 'BertProcessing':
      return { before: [pairId('cls')], after: [pairId('sep')] };
    case 'TemplateProcessing': {
      if (!Array.isArray(o.single)) throw tokError(src, where, 'TemplateProcessing needs a single template');
      const specials = isObject(o.special_tokens) ? o.special_tokens : {};
      const before: number[] = [];
      const after: number[] = [];
      let seen = false;
      for (const piece of o.single) {
        if (isObject(piece) && isObject(piece.Sequence)) {
          if (seen) throw tokError(src, where, 'the single template uses $A twice');
          seen = true;
        } else if (isObject(piece) && isObject(piece.SpecialToken) && typeof piece.SpecialToken.id === 'string') {
          const name = piece.SpecialToken.id;
          const spec = specials[name];
          let ids: unknown = isObject(spec) ? spec.ids : undefined;
          if (ids === undefined) {
            const id = tokenId(name);
            if (id === undefined) throw tokError(src, where, `template token ${JSON.stringify(name)} is neither in special_tokens nor in the vocab`);
            ids = [id];
          }
          if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x))) throw tokError(src, where, `special token ${JSON.stringify(name)} has bad ids`);
          (seen ? after : before).push(...(ids as number[]));
        } else {
          throw tokError(src, where, `unknown template piece ${JSON.stringify(piece)?.slice(0, 60)}`);
        }
      }
      return { before, after };
    }
    case 'Sequence': {
      if (!Array.isArray(o.processors)) throw tokError(src, where, 'Sequence needs a processors array');
      const parts = o.processors.map((p, k) => buildPostProcessor(src, p, tokenId, `${where}.processors[${k}]`)!);
      // Each processor wraps the result of the previous one.
      return parts.reduce((acc, p) => ({ before: [...p.before, ...acc.before], after: [...acc.after, ...p.after] }), { before: [], after: [] } as PostProcessor);
    }
    default:
      throw tokError(src, where, `unsupported post_processor type ${JSON.stringify(type)}`);
  }
}
