/**
 * tokenizer.json reader that reproduces Hugging Face tokenizers' ids exactly (checked line by line against
 * tokenizers 0.23 on the fixtures in test/fixtures/tokenizers, made by scripts/tokenizer_fixtures.py).
 *
 * encode(text) runs HF's pipeline:
 *   1. added tokens with normalized=false (special tokens, usually) are cut out of the raw text:
 *      leftmost-longest match, honouring single_word / lstrip / rstrip;
 *   2. each remaining piece is normalized, then added tokens with normalized=true are cut out of it
 *      (matched against their normalized content);
 *   3. the pre-tokenizer splits what is left; the model (BPE, Unigram, WordPiece, WordLevel) maps each
 *      pre-token to ids;
 *   4. with addSpecialTokens the post-processor's tokens go around the result (TemplateProcessing etc.);
 *      tokenizer_config.json's add_bos_token / add_eos_token add bos / eos when the post-processor
 *      does not already (transformers' behaviour for Llama-style configs).
 * decode(ids) maps ids to tokens (unknown ids are dropped, specials too with skipSpecialTokens) and runs
 * the decoder chain; with no decoder the tokens are joined with spaces, as HF does.
 *
 * The component types supported are listed in tokenizer-pipeline.ts and tokenizer-models.ts; any other
 * type is a TesseraError (E_ARG) naming the file and the component. Offsets are not tracked, and only
 * single sequences are encoded (no pair templates, truncation or padding).
 */
import * as fs from 'fs';
import * as path from 'path';
import { TesseraError, describe } from '../errors';
import { buildModel, type Model } from './tokenizer-models';
import {
  buildDecoder, buildNormalizer, buildPostProcessor, buildPreTokenizer,
  type Decoder, type Normalizer, type Piece, type PostProcessor, type PreTokenizer,
} from './tokenizer-pipeline';
import { WHITESPACE, isObject, tokError, type Json, type Source } from './tokenizer-util';

export interface EncodeOptions {
  /** Add the post-processor's special tokens (bos for Llama, <s> ... </s> for RoBERTa). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop tokens flagged special in added_tokens. Default false. */
  skipSpecialTokens?: boolean;
}

interface AddedToken {
  id: number;
  content: string;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

type Segment = { text: string; atStart: boolean; id: number }; // id -1: not an added token

// regex crate's Unicode \w, used by HF for single_word boundaries.
const WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;

/** Leftmost-longest matcher over a set of literal strings, bucketed by first UTF-16 unit. */
class Matcher {
  private readonly byFirst = new Map<number, { text: string; token: AddedToken }[]>();
  readonly empty: boolean;

  constructor(entries: { text: string; token: AddedToken }[]) {
    for (const e of entries) {
      if (!e.text.length) continue;
      const k = e.text.charCodeAt(0);
      let list = this.byFirst.get(k);
      if (!list) this.byFirst.set(k, (list = []));
      list.push(e);
    }
    for (const list of this.byFirst.values()) list.sort((a, b) => b.text.length - a.text.length);
    this.empty = this.byFirst.size === 0;
  }

  /** HF's AddedVocabulary::find_matches: splits `s` into added-token and plain segments. */
  split(s: string, atStart: boolean, out: Segment[]): void {
    let startOffset = 0;
    let i = 0;
    while (i < s.length) {
      const list = this.byFirst.get(s.charCodeAt(i));
      const hit = list?.find((e) => s.startsWith(e.text, i));
      if (!hit) {
        i++;
        continue;
      }
      let start = i;
      let stop = i + hit.text.length;
      i = stop; // matches never overlap, also when a single_word match is discarded
      const tok = hit.token;
      if (tok.singleWord) {
        const before = start === 0 || !WORD_CHAR.test(lastChar(s, start));
        const after = stop === s.length || !WORD_CHAR.test(String.fromCodePoint(s.codePointAt(stop)!));
        if (!before || !after) continue;
      }
      // White_Space chars are all in the BMP, so testing UTF-16 units one by one is exact.
      if (tok.lstrip) {
        while (start > 0 && WHITESPACE.test(s[start - 1])) start--;
        start = Math.max(start, startOffset);
      }
      if (tok.rstrip) while (stop < s.length && WHITESPACE.test(s[stop])) stop++;
      if (startOffset < start) out.push({ text: s.slice(startOffset, start), atStart: atStart && startOffset === 0, id: -1 });
      out.push({ text: s.slice(start, stop), atStart: atStart && start === 0, id: tok.id });
      startOffset = stop;
    }
    if (startOffset < s.length) out.push({ text: s.slice(startOffset), atStart: atStart && startOffset === 0, id: -1 });
  }
}

function lastChar(s: string, end: number): string {
  const lo = s.charCodeAt(end - 1);
  return lo >= 0xdc00 && lo < 0xe000 && end >= 2 ? s.slice(end - 2, end) : s.slice(end - 1, end);
}

/** A token name from tokenizer_config.json: a string or an AddedToken-like {content}. */
function tokenName(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

export class Tokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** tokenizer_config.json's chat_template, as stored (a Jinja string, or a list of named templates). */
  readonly chatTemplate: string | unknown[] | null;
  /** tokenizer_config.json's add_bos_token / add_eos_token when given. */
  readonly addBosToken: boolean | null;
  readonly addEosToken: boolean | null;
  /** Ids of the added tokens flagged special. */
  readonly specialIds: ReadonlySet<number>;
  private readonly model: Model;
  private readonly added: AddedToken[];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly rawMatcher: Matcher;
  private readonly normMatcher: Matcher;
  private readonly normalizer: Normalizer | null;
  private readonly preTokenizer: PreTokenizer | null;
  private readonly decoder: Decoder | null;
  private readonly post: PostProcessor | null;
  private readonly before: number[];
  private readonly after: number[];

  private constructor(j: Json, config: Json, src: Source) {
    this.model = buildModel(src, j.model);
    this.normalizer = buildNormalizer(src, j.normalizer);
    this.preTokenizer = buildPreTokenizer(src, j.pre_tokenizer);
    this.decoder = buildDecoder(src, j.decoder);

    this.added = readAddedTokens(src, j.added_tokens, config.added_tokens_decoder);
    for (const t of this.added) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
    }
    this.specialIds = new Set(this.added.filter((t) => t.special).map((t) => t.id));
    this.rawMatcher = new Matcher(this.added.filter((t) => !t.normalized).map((t) => ({ text: t.content, token: t })));
    this.normMatcher = new Matcher(
      this.added.filter((t) => t.normalized).map((t) => ({ text: this.normalizer ? this.normalizer(t.content) : t.content, token: t })),
    );
    this.post = buildPostProcessor(src, j.post_processor, (t) => this.tokenToId(t));

    this.bosToken = tokenName(config.bos_token);
    this.eosToken = tokenName(config.eos_token);
    // Without bos_token / eos_token in the config, the post-processor's first / last special stands in.
    const post = this.post ?? { before: [], after: [] };
    this.bosId = this.bosToken !== null ? this.tokenToId(this.bosToken) ?? null : post.before[0] ?? null;
    this.eosId = this.eosToken !== null ? this.tokenToId(this.eosToken) ?? null : post.after[post.after.length - 1] ?? null;
    const ct = config.chat_template;
    this.chatTemplate = typeof ct === 'string' || Array.isArray(ct) ? ct : null;
    this.addBosToken = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : null;
    this.addEosToken = typeof config.add_eos_token === 'boolean' ? config.add_eos_token : null;
    this.before = [...(this.post?.before ?? [])];
    this.after = [...(this.post?.after ?? [])];
    if (this.addBosToken && this.bosId !== null && this.before[0] !== this.bosId) this.before.unshift(this.bosId);
    if (this.addEosToken && this.eosId !== null && this.after[this.after.length - 1] !== this.eosId) this.after.push(this.eosId);
  }

  /** Builds from a parsed tokenizer.json (and optionally a parsed tokenizer_config.json). */
  static fromJSON(obj: unknown, config?: unknown, name = 'tokenizer.json'): Tokenizer {
    const src: Source = { name };
    if (!isObject(obj)) throw tokError(src, 'top level', `should be an object, got ${describe(obj)}`);
    if (config !== undefined && config !== null && !isObject(config)) throw tokError(src, 'tokenizer_config', `should be an object, got ${describe(config)}`);
    return new Tokenizer(obj, (config ?? {}) as Json, src);
  }

  /** Reads a tokenizer.json file, and tokenizer_config.json beside it when present. */
  static fromFile(file: string): Tokenizer {
    const j = readJson(file);
    const cfgPath = path.join(path.dirname(file), 'tokenizer_config.json');
    let cfg = fs.existsSync(cfgPath) ? readJson(cfgPath) : undefined;
    // transformers 5 saves the chat template beside the config rather than in it.
    const jinja = path.join(path.dirname(file), 'chat_template.jinja');
    if ((cfg === undefined || (isObject(cfg) && cfg.chat_template === undefined)) && fs.existsSync(jinja)) {
      cfg = { ...(cfg as Json | undefined), chat_template: fs.readFileSync(jinja, 'utf8') };
    }
    return Tokenizer.fromJSON(j, cfg, `tokenizer.json (${file})`);
  }

  /** Number of ids: one more than the largest id of the model vocab or the added tokens. */
  get vocabSize(): number {
    let n = this.model.idToToken.length;
    for (const t of this.added) n = Math.max(n, t.id + 1);
    return n;
  }

  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.idToToken[id];
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.vocab.get(token);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TesseraError('E_TYPE', 'Tokenizer.encode', `text should be a string, got ${describe(text)}`);
    const ids: number[] = [];
    const addSpecial = opts.addSpecialTokens ?? true;
    if (addSpecial) ids.push(...this.before);
    const raw: Segment[] = [];
    if (this.rawMatcher.empty) raw.push({ text, atStart: true, id: -1 });
    else this.rawMatcher.split(text, true, raw);
    for (const seg of raw) {
      if (seg.id >= 0) {
        ids.push(seg.id);
        continue;
      }
      const norm = this.normalizer ? this.normalizer(seg.text) : seg.text;
      const parts: Segment[] = [];
      if (this.normMatcher.empty) parts.push({ text: norm, atStart: seg.atStart, id: -1 });
      else this.normMatcher.split(norm, seg.atStart, parts);
      for (const part of parts) {
        if (part.id >= 0) {
          ids.push(part.id);
          continue;
        }
        if (!part.text.length) continue;
        const first: Piece[] = [{ text: part.text, atStart: part.atStart }];
        const pieces = this.preTokenizer ? this.preTokenizer(first) : first;
        for (const p of pieces) if (p.text.length) for (const id of this.model.tokenize(p.text)) ids.push(id);
      }
    }
    if (addSpecial) ids.push(...this.after);
    return ids;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    if (!Array.isArray(ids) && !ArrayBuffer.isView(ids)) throw new TesseraError('E_TYPE', 'Tokenizer.decode', `ids should be an array of integers, got ${describe(ids)}`);
    const skip = opts.skipSpecialTokens ?? false;
    const tokens: string[] = [];
    for (let k = 0; k < ids.length; k++) {
      const id = Number(ids[k]);
      if (!Number.isInteger(id)) throw new TesseraError('E_ARG', 'Tokenizer.decode', `ids[${k}] is ${describe(ids[k])}, want an integer`);
      const t = this.idToToken(id);
      if (t === undefined) continue; // HF drops unknown ids
      if (skip && this.specialIds.has(id)) continue;
      tokens.push(t);
    }
    return this.decoder ? this.decoder(tokens).join('') : tokens.join(' ');
  }
}

function readAddedTokens(src: Source, list: unknown, fromConfig: unknown): AddedToken[] {
  const out: AddedToken[] = [];
  const seen = new Set<number>();
  const add = (e: unknown, where: string, idOverride?: number) => {
    if (!isObject(e) || typeof e.content !== 'string') throw tokError(src, where, `should be {id, content, ...}, got ${JSON.stringify(e)?.slice(0, 60)}`);
    const id = idOverride ?? e.id;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw tokError(src, where, `id ${JSON.stringify(id)} is not a non-negative integer`);
    if (seen.has(id) || !e.content.length) return;
    seen.add(id);
    const special = e.special === true;
    out.push({
      id, content: e.content, special,
      singleWord: e.single_word === true, lstrip: e.lstrip === true, rstrip: e.rstrip === true,
      normalized: typeof e.normalized === 'boolean' ? e.normalized : !special,
    });
  };
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) throw tokError(src, 'added_tokens', 'should be an array');
    list.forEach((e, k) => add(e, `added_tokens[${k}]`));
  }
  // tokenizer_config.json's added_tokens_decoder may list tokens tokenizer.json lacks.
  if (isObject(fromConfig)) {
    for (const [k, e] of Object.entries(fromConfig)) if (/^\d+$/.test(k)) add(e, `tokenizer_config added_tokens_decoder[${k}]`, Number(k));
  }
  return out;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TesseraError('E_IO', 'loadTokenizer', `cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TesseraError('E_IO', 'loadTokenizer', `${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Loads a tokenizer from a tokenizer.json path or from a folder holding one (plus tokenizer_config.json). */
export function loadTokenizer(dirOrFile: string): Tokenizer {
  if (typeof dirOrFile !== 'string') throw new TesseraError('E_TYPE', 'loadTokenizer', `path should be a string, got ${describe(dirOrFile)}`);
  let file = dirOrFile;
  if (fs.existsSync(dirOrFile) && fs.statSync(dirOrFile).isDirectory()) file = path.join(dirOrFile, 'tokenizer.json');
  if (!fs.existsSync(file)) throw new TesseraError('E_IO', 'loadTokenizer', `no tokenizer.json at ${file}`);
  return Tokenizer.fromFile(file);
}
