/**
 * The tokenizer.json models: BPE and Unigram, each turning one pre-token into ids exactly as Hugging Face
 * tokenizers does.
 *
 * BPE: the word starts as one symbol per char (vocab lookup with continuing_subword_prefix /
 * end_of_word_suffix; else <0xNN> byte tokens with byte_fallback; else unk, fused if fuse_unk), then merges
 * run lowest rank first, leftmost first on ties, through a binary min-heap of (rank, position) over a
 * doubly linked list of symbols: O(n log n) for a word of n chars, so a 1 MB pre-token (SentencePiece-style
 * tokenizers with no pre-tokenizer see whole lines) is fine. Heap entries go stale when a neighbour merges;
 * like HF we check at pop time that the pair at that position still produces the same new id (this also
 * reproduces HF's choice when two different pairs make the same token). ignore_merges: a word that is
 * itself in the vocab is one token. Results are cached per pre-token.
 *
 * Unigram: sentencepiece's Viterbi over a trie of the vocab (best total log-prob, first-found wins ties,
 * unknown chars cost min_score - 10), consecutive unknowns fused, byte_fallback for unknown pieces.
 *
 * WordPiece (BERT) and WordLevel are the simple lookups at the end.
 */
import { tokError, isObject, field, type Json, type Source, utf8 } from './tokenizer-util';

export interface Model {
  /** Ids for one pre-token (non-empty). */
  tokenize(word: string): number[];
  readonly vocab: Map<string, number>;
  readonly idToToken: string[];
}

const CACHE_MAX_WORD = 256;
const CACHE_MAX_ENTRIES = 200_000;
const PAIR_MUL = 2 ** 21; // pair key = left * 2^21 + right (ids < 2^21, checked at load)
const POS_MUL = 2 ** 32; // heap key = rank * 2^32 + position (rank < 2^21 keeps it below 2^53)

const byteTokenName = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

function readVocab(src: Source, where: string, v: unknown): { vocab: Map<string, number>; idToToken: string[] } {
  if (!isObject(v)) throw tokError(src, where, 'model.vocab should be an object of token -> id');
  const vocab = new Map<string, number>();
  const idToToken: string[] = [];
  for (const [tok, id] of Object.entries(v)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= PAIR_MUL) {
      throw tokError(src, where, `vocab id for ${JSON.stringify(tok)} is ${JSON.stringify(id)}, want an integer in [0, ${PAIR_MUL})`);
    }
    vocab.set(tok, id);
    idToToken[id] = tok;
  }
  return { vocab, idToToken };
}

export class BPE implements Model {
  readonly vocab: Map<string, number>;
  readonly idToToken: string[];
  private readonly ranks = new Map<number, number>(); // pair key -> rank
  private readonly mergedId: Int32Array; // rank -> new id
  private readonly unkId: number;
  private readonly prefix: string | null;
  private readonly suffix: string | null;
  private readonly fuseUnk: boolean;
  private readonly byteFallback: boolean;
  private readonly ignoreMerges: boolean;
  private readonly byteIds: Int32Array; // byte -> id of <0xNN>, -1 if absent
  private readonly cache = new Map<string, number[]>();
  // Scratch space reused across words.
  private sym = new Int32Array(64);
  private len = new Int32Array(64);
  private prev = new Int32Array(64);
  private next = new Int32Array(64);

  constructor(src: Source, m: Json) {
    const where = 'model (BPE)';
    ({ vocab: this.vocab, idToToken: this.idToToken } = readVocab(src, where, m.vocab));
    const dropout = m.dropout;
    if (dropout !== undefined && dropout !== null && dropout !== 0) {
      throw tokError(src, where, `dropout ${JSON.stringify(dropout)} is not supported (encoding would not be deterministic)`);
    }
    const unk = field<string | null>(src, where, m, 'unk_token', 'string', null);
    this.unkId = unk === null ? -1 : this.vocab.get(unk) ?? -2;
    if (this.unkId === -2) throw tokError(src, where, `unk_token ${JSON.stringify(unk)} is not in the vocab`);
    this.prefix = field<string | null>(src, where, m, 'continuing_subword_prefix', 'string', null);
    this.suffix = field<string | null>(src, where, m, 'end_of_word_suffix', 'string', null);
    this.fuseUnk = field(src, where, m, 'fuse_unk', 'boolean', false);
    this.byteFallback = field(src, where, m, 'byte_fallback', 'boolean', false);
    this.ignoreMerges = field(src, where, m, 'ignore_merges', 'boolean', false);
    this.byteIds = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) this.byteIds[b] = this.vocab.get(byteTokenName(b)) ?? -1;

    const merges = m.merges ?? [];
    if (!Array.isArray(merges)) throw tokError(src, where, 'merges should be an array');
    if (merges.length >= PAIR_MUL) throw tokError(src, where, `${merges.length} merges is more than supported (${PAIR_MUL})`);
    this.mergedId = new Int32Array(merges.length);
    const plen = this.prefix ? this.prefix.length : 0;
    merges.forEach((mg: unknown, rank) => {
      let a: unknown;
      let b: unknown;
      if (typeof mg === 'string') {
        const parts = mg.split(' ');
        if (parts.length !== 2) throw tokError(src, where, `merge ${rank} ${JSON.stringify(mg)} is not "left right"`);
        [a, b] = parts;
      } else if (Array.isArray(mg) && mg.length === 2) {
        [a, b] = mg;
      }
      if (typeof a !== 'string' || typeof b !== 'string') throw tokError(src, where, `merge ${rank} is malformed: ${JSON.stringify(mg)?.slice(0, 60)}`);
      const ia = this.vocab.get(a);
      const ib = this.vocab.get(b);
      const merged = a + b.slice(plen);
      const im = this.vocab.get(merged);
      if (ia === undefined || ib === undefined || im === undefined) {
        const missing = ia === undefined ? a : ib === undefined ? b : merged;
        throw tokError(src, where, `merge ${rank} (${JSON.stringify(a)} ${JSON.stringify(b)}) uses ${JSON.stringify(missing)}, which is not in the vocab`);
      }
      this.ranks.set(ia * PAIR_MUL + ib, rank); // a repeated pair keeps its last rank, like HF's HashMap
      this.mergedId[rank] = im;
    });
  }

  tokenize(word: string): number[] {
    if (this.ignoreMerges) {
      const id = this.vocab.get(word);
      if (id !== undefined) return [id];
    }
    const hit = this.cache.get(word);
    if (hit) return hit;
    const ids = this.mergeWord(word);
    if (word.length < CACHE_MAX_WORD) {
      if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.clear();
      this.cache.set(word, ids);
    }
    return ids;
  }

  private grow(n: number): void {
    if (this.sym.length >= n) return;
    const cap = Math.max(n, this.sym.length * 2);
    const copy = (old: Int32Array) => {
      const a = new Int32Array(cap);
      a.set(old);
      return a;
    };
    this.sym = copy(this.sym);
    this.len = copy(this.len);
    this.prev = new Int32Array(cap);
    this.next = new Int32Array(cap);
  }

  private mergeWord(w: string): number[] {
    let n = 0;
    const push = (id: number, len: number) => {
      if (n >= this.sym.length) this.grow(n + 1);
      this.sym[n] = id;
      this.len[n++] = len;
    };
    this.grow(w.length + 1);
    let unk = -1; // pending unk id and its length
    let unkLen = 0;
    let i = 0;
    while (i < w.length) {
      const hi = w.charCodeAt(i);
      const cpLen = hi >= 0xd800 && hi < 0xdc00 && i + 1 < w.length ? 2 : 1;
      let s = w.slice(i, i + cpLen);
      const first = i === 0;
      i += cpLen;
      if (!first && this.prefix !== null) s = this.prefix + s;
      if (i >= w.length && this.suffix !== null) s = s + this.suffix;
      const id = this.vocab.get(s);
      if (id !== undefined) {
        if (unk >= 0) push(unk, unkLen);
        unk = -1;
        push(id, cpLen);
        continue;
      }
      if (this.byteFallback) {
        // Like HF: the bytes of `s` including any prefix/suffix; a pending unk is not flushed first.
        const bytes = utf8(s);
        if (bytes.every((b) => this.byteIds[b] >= 0)) {
          for (const b of bytes) push(this.byteIds[b], 1);
          continue;
        }
      }
      if (this.unkId >= 0) {
        if (unk >= 0 && this.fuseUnk) {
          unkLen += cpLen;
        } else {
          if (unk >= 0) push(unk, unkLen);
          unk = this.unkId;
          unkLen = cpLen;
        }
      }
    }
    if (unk >= 0) push(unk, unkLen);
    return this.mergeAll(n);
  }

  private mergeAll(n: number): number[] {
    const { sym, prev, next, ranks, mergedId } = this;
    for (let k = 0; k < n; k++) {
      prev[k] = k - 1;
      next[k] = k + 1 < n ? k + 1 : -1;
    }
    const heap: number[] = [];
    for (let k = 0; k + 1 < n; k++) {
      const r = ranks.get(sym[k] * PAIR_MUL + sym[k + 1]);
      if (r !== undefined) heapPush(heap, r * POS_MUL + k);
    }
    const alive = this.len; // len 0 marks a symbol merged into its left neighbour
    while (heap.length) {
      const top = heapPop(heap);
      const rank = Math.floor(top / POS_MUL);
      const pos = top - rank * POS_MUL;
      if (alive[pos] === 0) continue;
      const right = next[pos];
      if (right < 0) continue;
      const cur = ranks.get(sym[pos] * PAIR_MUL + sym[right]);
      const newId = mergedId[rank];
      if (cur === undefined || mergedId[cur] !== newId) continue; // stale entry
      sym[pos] = newId;
      alive[pos] += alive[right];
      alive[right] = 0;
      const nn = next[right];
      next[pos] = nn;
      if (nn >= 0) prev[nn] = pos;
      const pv = prev[pos];
      if (pv >= 0) {
        const r = ranks.get(sym[pv] * PAIR_MUL + newId);
        if (r !== undefined) heapPush(heap, r * POS_MUL + pv);
      }
      if (nn >= 0) {
        const r = ranks.get(newId * PAIR_MUL + sym[nn]);
        if (r !== undefined) heapPush(heap, r * POS_MUL + pos);
      }
    }
    const out: number[] = [];
    for (let k = 0; k >= 0 && k < n; k = next[k]) out.push(sym[k]);
    return out;
  }
}

function heapPush(h: number[], v: number): void {
  let i = h.length;
  h.push(v);
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (h[p] <= v) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = v;
}

function heapPop(h: number[]): number {
  const top = h[0];
  const last = h.pop()!;
  const n = h.length;
  if (n === 0) return top;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && h[r] < h[l] ? r : l;
    if (h[c] >= last) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = last;
  return top;
}

interface TrieNode {
  next: Map<string, TrieNode>;
  id: number; // -1 when no token ends here
}

export class Unigram implements Model {
  readonly vocab = new Map<string, number>();
  readonly idToToken: string[] = [];
  private readonly scores: number[] = [];
  private readonly root: TrieNode = { next: new Map(), id: -1 };
  private readonly unkId: number;
  private readonly minScore: number;
  private readonly byteFallback: boolean;
  private readonly cache = new Map<string, number[]>();

  constructor(private readonly src: Source, m: Json) {
    const where = 'model (Unigram)';
    if (!Array.isArray(m.vocab)) throw tokError(src, where, 'vocab should be an array of [piece, score]');
    let min = Infinity;
    m.vocab.forEach((e: unknown, id: number) => {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number') {
        throw tokError(src, where, `vocab entry ${id} should be [piece, score], got ${JSON.stringify(e)?.slice(0, 60)}`);
      }
      const [piece, score] = e as [string, number];
      this.vocab.set(piece, id);
      this.idToToken[id] = piece;
      this.scores[id] = score;
      if (score < min) min = score;
      let node = this.root;
      for (const ch of piece) {
        let nx = node.next.get(ch);
        if (!nx) node.next.set(ch, (nx = { next: new Map(), id: -1 }));
        node = nx;
      }
      node.id = id;
    });
    this.minScore = min;
    const unk = m.unk_id;
    this.unkId = typeof unk === 'number' ? unk : -1;
    if (this.unkId >= this.idToToken.length) throw tokError(src, where, `unk_id ${unk} is outside the vocab`);
    this.byteFallback = field(src, where, m, 'byte_fallback', 'boolean', false);
  }

  tokenize(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const ids = this.encode(word);
    if (word.length < CACHE_MAX_WORD) {
      if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.clear();
      this.cache.set(word, ids);
    }
    return ids;
  }

  private encode(w: string): number[] {
    const chars = Array.from(w);
    const n = chars.length;
    const unkScore = this.minScore - 10;
    const best = new Float64Array(n + 1);
    const from = new Int32Array(n + 1).fill(-1);
    const tokId = new Int32Array(n + 1).fill(-1);
    for (let s = 0; s < n; s++) {
      if (s > 0 && from[s] < 0) continue; // unreachable (cannot happen: every char has a path)
      const base = best[s];
      let single = false;
      let node: TrieNode | undefined = this.root;
      for (let e = s; e < n; e++) {
        node = node.next.get(chars[e]);
        if (!node) break;
        if (node.id < 0) continue;
        const cand = base + this.scores[node.id];
        if (from[e + 1] < 0 || cand > best[e + 1]) {
          best[e + 1] = cand;
          from[e + 1] = s;
          tokId[e + 1] = node.id;
        }
        if (e === s) single = true;
      }
      if (!single) {
        if (this.unkId < 0) throw tokError(this.src, 'model (Unigram)', `${JSON.stringify(chars[s])} is not in the vocab and the model has no unk_id`);
        const cand = base + unkScore;
        if (from[s + 1] < 0 || cand > best[s + 1]) {
          best[s + 1] = cand;
          from[s + 1] = s;
          tokId[s + 1] = this.unkId;
        }
      }
    }
    // Walk back; consecutive unknown pieces fuse into one.
    const pieces: [number, number, number][] = []; // start, end, id
    for (let e = n; e > 0; ) {
      const s = from[e];
      const id = tokId[e];
      const lastPiece = pieces[pieces.length - 1];
      if (id === this.unkId && this.unkId >= 0 && lastPiece && lastPiece[2] === this.unkId) lastPiece[0] = s;
      else pieces.push([s, e, id]);
      e = s;
    }
    pieces.reverse();
    const out: number[] = [];
    for (const [s, e, id] of pieces) {
      if (id !== this.unkId || this.unkId < 0) {
        out.push(id);
        continue;
      }
      const text = chars.slice(s, e).join('');
      const known = this.vocab.get(text);
      if (known !== undefined) {
        out.push(known);
        continue;
      }
      if (this.byteFallback) {
        const ids = Array.from(utf8(text), (b) => this.vocab.get(byteTokenName(b)));
        if (ids.every((x) => x !== undefined)) {
          out.push(...(ids as number[]));
          continue;
        }
      }
      out.push(this.unkId);
    }
    return out;
  }
}

/** WordPiece (BERT): greedy longest match from the left, ## on non-initial pieces; a word with an unmatched
 * remainder, or longer than max_input_chars_per_word, is one unk. */
class WordPiece implements Model {
  readonly vocab: Map<string, number>;
  readonly idToToken: string[];
  constructor(src: Source, m: Json, private readonly unk: number, private readonly prefix: string, private readonly maxChars: number) {
    ({ vocab: this.vocab, idToToken: this.idToToken } = readVocab(src, 'model (WordPiece)', m.vocab));
  }
  tokenize(word: string): number[] {
    const chars = Array.from(word);
    if (chars.length > this.maxChars) return [this.unk];
    const out: number[] = [];
    for (let start = 0; start < chars.length; ) {
      let end = chars.length;
      let id: number | undefined;
      for (; end > start; end--) {
        id = this.vocab.get((start > 0 ? this.prefix : '') + chars.slice(start, end).join(''));
        if (id !== undefined) break;
      }
      if (id === undefined) return [this.unk];
      out.push(id);
      start = end;
    }
    return out;
  }
}

/** WordLevel: the whole pre-token is looked up; unk otherwise. */
class WordLevel implements Model {
  readonly vocab: Map<string, number>;
  readonly idToToken: string[];
  constructor(src: Source, m: Json, private readonly unk: number) {
    ({ vocab: this.vocab, idToToken: this.idToToken } = readVocab(src, 'model (WordLevel)', m.vocab));
  }
  tokenize(word: string): number[] {
    return [this.vocab.get(word) ?? this.unk];
  }
}

export function buildModel(src: Source, m: unknown): Model {
  if (isObject(m) && (m.type === 'WordPiece' || m.type === 'WordLevel')) {
    const where = `model (${m.type})`;
    if (!isObject(m.vocab)) throw tokError(src, where, 'vocab should be an object of token -> id');
    const unkName = typeof m.unk_token === 'string' ? m.unk_token : '[UNK]';
    const unk = (m.vocab as Json)[unkName];
    if (!Number.isInteger(unk)) throw tokError(src, where, `unk_token ${JSON.stringify(unkName)} is not in the vocab`);
    if (m.type === 'WordLevel') return new WordLevel(src, m, unk as number);
    const prefix = typeof m.continuing_subword_prefix === 'string' ? m.continuing_subword_prefix : '##';
    const max = typeof m.max_input_chars_per_word === 'number' ? m.max_input_chars_per_word : 100;
    return new WordPiece(src, m, unk as number, prefix, max);
  }
  if (!isObject(m)) throw tokError(src, 'model', 'missing or not an object');
  const type = m.type ?? (m.merges !== undefined ? 'BPE' : undefined);
  if (type === 'BPE') return new BPE(src, m);
  if (type === 'Unigram') return new Unigram(src, m);
  throw tokError(src, 'model', `unsupported model type ${JSON.stringify(type)} (supported: BPE, Unigram, WordPiece, WordLevel)`);
}
