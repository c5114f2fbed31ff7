/**
 * Shared pieces of the tokenizer.json reader: error helper, the GPT-2 byte<->char table, UTF-8 codecs that
 * behave like Rust's (`from_utf8_lossy`, strict `from_utf8`, BOM kept), and Unicode character tests that
 * match the Rust `char` methods Hugging Face tokenizers calls.
 */
import { TesseraError, type ErrorCode } from '../errors';

/** Where a tokenizer came from, for error messages ("tokenizer.json at /x/y"). */
export interface Source {
  readonly name: string;
}

export function tokError(src: Source, where: string, message: string, code: ErrorCode = 'E_ARG'): TesseraError {
  return new TesseraError(code, 'loadTokenizer', `${src.name}: ${where}: ${message}`);
}

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads an optional field with a type check; `undefined` and `null` give `dflt`. */
export function field<T>(src: Source, where: string, obj: Json, key: string, kind: 'string' | 'number' | 'boolean', dflt: T): T {
  const v = obj[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== kind) throw tokError(src, where, `field '${key}' should be a ${kind}, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return v as T;
}

// GPT-2's reversible byte <-> printable char map: printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100.. in byte order.
export const BYTE_TO_CHAR: string[] = new Array(256);
export const CHAR_TO_BYTE = new Map<string, number>();
{
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    const c = String.fromCharCode(printable ? b : 256 + n++);
    BYTE_TO_CHAR[b] = c;
    CHAR_TO_BYTE.set(c, b);
  }
}

const encoder = new TextEncoder();
// WHATWG's decoder replaces each maximal invalid subsequence with one U+FFFD, as Rust's from_utf8_lossy does.
// ignoreBOM keeps a leading U+FEFF (the default would swallow it).
const lossy = new TextDecoder('utf-8', { ignoreBOM: true });
const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

export function utf8Lossy(bytes: Uint8Array): string {
  return lossy.decode(bytes);
}

/** Strict UTF-8 decode; null where the bytes are not valid UTF-8. */
export function utf8Strict(bytes: Uint8Array): string | null {
  try {
    return strict.decode(bytes);
  } catch {
    return null;
  }
}

/** Rust `char::is_whitespace` (the White_Space property). */
export const WHITESPACE = /\p{White_Space}/u;
/** Rust `char::is_numeric` (general category N). */
export const NUMERIC = /\p{N}/u;
/** tokenizers' `is_punc`: ASCII punctuation or Unicode P*. (HF's table is an older Unicode: U+061D, new in
 * Unicode 14, is punctuation here but not there.) */
export const PUNCT = /[!-\/:-@\[-`{-~\p{P}]/u;
