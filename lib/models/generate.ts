/**
 * Text generation over a Decoder: prefill the prompt into a KV cache, then one token per step.
 *
 * Sampling follows transformers' order: temperature, then top-k, then top-p (the smallest set of most
 * likely tokens whose probability reaches top_p), then one draw from a seeded xoshiro128** generator, so a
 * seed reproduces the same tokens for the same logits. temperature 0 is greedy (argmax, first index on
 * ties, as torch.argmax).
 *
 * Streaming text: tokens are decoded incrementally with the prefix/read-offset scheme of HF's
 * text-generation-inference: the text of ids[prefix..] minus the text of ids[prefix..read]; a piece that
 * ends in U+FFFD (an incomplete UTF-8 sequence from byte-level or byte-fallback tokens) is held back until
 * the bytes complete it. Stop strings are matched on the text; any text that could be the start of a stop
 * string is held back until it can be decided, so nothing past a stop string is ever streamed.
 */
import { Generator } from '../creation';
import { TesseraError, describe } from '../errors';
import { Tensor } from '../tensor';
import { KVCache } from './kvcache';

export interface GenerateOptions {
  /** tokens to generate at most (default: generation_config's max_new_tokens, else 64) */
  maxNewTokens?: number;
  /** 0 = greedy (default: generation_config's temperature when it samples, else 0) */
  temperature?: number;
  /** keep the k most likely tokens (0 = all; default from generation_config) */
  topK?: number;
  /** nucleus sampling mass in (0, 1] (default from generation_config) */
  topP?: number;
  /** seed of the sampler (default: a random one) */
  seed?: number;
  /** stop when the text contains any of these (the stop string is not part of the result) */
  stop?: string | string[];
  /** end-of-sequence ids (default: generation_config's eos_token_id) */
  eosTokenIds?: number[];
  /** for a string prompt: add the tokenizer's special tokens, e.g. <s> (default true) */
  addSpecialTokens?: boolean;
  /** false recomputes the whole sequence every step (for testing; default true) */
  useCache?: boolean;
}

export interface GenerateStats {
  promptTokens: number;
  generatedTokens: number;
  prefillMs: number;
  prefillTokensPerSec: number;
  /** forward passes after the prefill, each producing one token */
  decodeTokens: number;
  decodeMs: number;
  decodeTokensPerSec: number;
  timeToFirstTokenMs: number;
  /** compute time (prefill + decode + sampling), excluding time the consumer held the stream */
  totalMs: number;
}

export type FinishReason = 'eos' | 'stop' | 'length' | 'aborted';

export interface GenerateResult {
  text: string;
  /** generated ids (an eos token included) */
  ids: number[];
  promptIds: number[];
  finishReason: FinishReason;
  stats: GenerateStats;
}

export interface StreamPiece {
  token: number;
  /** text released with this token ('' while held back) */
  text: string;
}

export interface GenerationStream extends AsyncIterable<StreamPiece> {
  /** resolves once iteration ends (also when the loop breaks early: finishReason 'aborted') */
  readonly result: Promise<GenerateResult>;
}

/** What generation needs from a model. */
export interface Generatable {
  forward(ids: Int32Array, cache: KVCache | null, lastOnly: boolean): Tensor;
  newCache(maxLen: number): KVCache;
  readonly maxLength: number;
  readonly vocabSize: number;
  readonly tokenizer: TextCodec | null;
  readonly defaults: { eosTokenIds: number[]; doSample: boolean; temperature: number; topK: number; topP: number; maxNewTokens: number | null };
}

export interface TextCodec {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
}

const OP = 'generate';

// ------------------------------------------------------------------ sampling

export interface SamplingOptions {
  temperature: number;
  topK: number;
  topP: number;
}

function argmax(x: Float32Array): number {
  let best = -1;
  let bv = -Infinity;
  for (let i = 0; i < x.length; i++) {
    if (x[i] > bv || (best < 0 && !Number.isNaN(x[i]))) {
      bv = x[i];
      best = i;
    }
  }
  return Math.max(best, 0);
}

/** One token from logits (one row, float32) under o, drawing from rng. */
export function sample(logits: Float32Array, o: SamplingOptions, rng: Generator): number {
  if (o.temperature <= 0 || o.topK === 1) return argmax(logits);
  const V = logits.length;
  // candidates: the top-k (all when topK is 0), most likely first, ties by lower index
  let cand: number[];
  if (o.topK > 0 && o.topK < V) {
    const sorted = Float32Array.from(logits).sort();
    const thr = sorted[V - o.topK];
    cand = [];
    for (let i = 0; i < V; i++) if (logits[i] >= thr) cand.push(i);
  } else cand = Array.from({ length: V }, (_, i) => i);
  cand = cand.filter((i) => !Number.isNaN(logits[i]));
  cand.sort((a, b) => logits[b] - logits[a] || a - b);
  if (o.topK > 0) cand.length = Math.min(cand.length, o.topK);
  if (cand.length === 0) return argmax(logits);
  const mx = logits[cand[0]] / o.temperature;
  const p = new Float64Array(cand.length);
  let sum = 0;
  for (let j = 0; j < cand.length; j++) sum += p[j] = Math.exp(logits[cand[j]] / o.temperature - mx);
  let keep = cand.length;
  if (o.topP < 1) {
    let cum = 0;
    for (let j = 0; j < cand.length; j++) {
      cum += p[j] / sum;
      if (cum >= o.topP) {
        keep = j + 1;
        break;
      }
    }
  }
  let total = 0;
  for (let j = 0; j < keep; j++) total += p[j];
  const u = rng.uniform() * total;
  let acc = 0;
  for (let j = 0; j < keep; j++) {
    acc += p[j];
    if (u < acc) return cand[j];
  }
  return cand[keep - 1];
}

// ------------------------------------------------------------------ incremental text

/** Decodes a growing id sequence piece by piece (see the header). */
export class IncrementalDecoder {
  private readonly ids: number[];
  private prefix: number;
  private read: number;
  constructor(private readonly codec: TextCodec | null, context: number[] = []) {
    this.ids = context.slice();
    this.prefix = 0;
    this.read = this.ids.length;
  }
  private text(a: number, b?: number): string {
    return this.codec ? this.codec.decode(this.ids.slice(a, b), { skipSpecialTokens: true }) : '';
  }
  push(id: number): string {
    this.ids.push(id);
    const before = this.text(this.prefix, this.read);
    const now = this.text(this.prefix);
    if (now.length > before.length && !now.endsWith('\uFFFD')) {
      this.prefix = this.read;
      this.read = this.ids.length;
      return now.slice(before.length);
    }
    return '';
  }
  /** Whatever is still held back (an incomplete character stays as U+FFFD). */
  flush(): string {
    const before = this.text(this.prefix, this.read);
    const now = this.text(this.prefix);
    this.prefix = this.read = this.ids.length;
    return now.length > before.length ? now.slice(before.length) : '';
  }
}

/** Holds back text that may begin a stop string; reports the first stop string found. */
export class StopFilter {
  private pending = '';
  constructor(private readonly stops: string[]) {}
  push(s: string): { out: string; stopped: boolean } {
    this.pending += s;
    let at = -1;
    for (const st of this.stops) {
      const i = this.pending.indexOf(st);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      const out = this.pending.slice(0, at);
      this.pending = '';
      return { out, stopped: true };
    }
    let hold = 0;
    for (const st of this.stops) {
      for (let k = Math.min(st.length - 1, this.pending.length); k > hold; k--) {
        if (this.pending.endsWith(st.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    const out = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { out, stopped: false };
  }
  flush(): string {
    const o = this.pending;
    this.pending = '';
    return o;
  }
}

// ------------------------------------------------------------------ the loop

function checkOpts(m: Generatable, o: GenerateOptions) {
  if (o === null || typeof o !== 'object') throw new TesseraError('E_TYPE', OP, `options must be an object, got ${describe(o)}`);
  const d = m.defaults;
  const int = (v: unknown, name: string, min: number, fallback: number) => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new TesseraError('E_ARG', OP, `options.${name} must be an integer >= ${min}, got ${describe(v)}`);
    return v;
  };
  const maxNewTokens = int(o.maxNewTokens, 'maxNewTokens', 0, d.maxNewTokens ?? 64);
  let temperature = d.doSample ? d.temperature : 0;
  if (o.temperature !== undefined) {
    if (typeof o.temperature !== 'number' || !(o.temperature >= 0) || !Number.isFinite(o.temperature)) {
      throw new TesseraError('E_ARG', OP, `options.temperature must be a number >= 0, got ${describe(o.temperature)}`);
    }
    temperature = o.temperature;
  }
  const topK = int(o.topK, 'topK', 0, d.topK);
  let topP = d.topP;
  if (o.topP !== undefined) {
    if (typeof o.topP !== 'number' || !(o.topP > 0 && o.topP <= 1)) throw new TesseraError('E_ARG', OP, `options.topP must be in (0, 1], got ${describe(o.topP)}`);
    topP = o.topP;
  }
  if (o.seed !== undefined && (typeof o.seed !== 'number' || !Number.isFinite(o.seed))) throw new TesseraError('E_ARG', OP, `options.seed must be a number, got ${describe(o.seed)}`);
  const stops = o.stop === undefined ? [] : Array.isArray(o.stop) ? o.stop : [o.stop];
  stops.forEach((s, i) => {
    if (typeof s !== 'string' || !s.length) throw new TesseraError('E_ARG', OP, `options.stop[${i}] must be a non-empty string, got ${describe(s)}`);
  });
  const eos = o.eosTokenIds ?? d.eosTokenIds;
  if (!Array.isArray(eos) || eos.some((e) => !Number.isInteger(e))) throw new TesseraError('E_ARG', OP, `options.eosTokenIds must be an array of integers, got ${describe(eos)}`);
  return { maxNewTokens, sampling: { temperature, topK, topP }, stops, eos: new Set(eos), seed: o.seed, useCache: o.useCache !== false };
}

function promptIds(m: Generatable, prompt: unknown, addSpecialTokens: boolean): number[] {
  let ids: number[];
  if (typeof prompt === 'string') {
    if (!m.tokenizer) throw new TesseraError('E_ARG', OP, 'this model has no tokenizer.json: pass the prompt as token ids');
    ids = m.tokenizer.encode(prompt, { addSpecialTokens });
  } else if (Array.isArray(prompt) || prompt instanceof Int32Array) {
    ids = Array.from(prompt as ArrayLike<number>);
  } else throw new TesseraError('E_TYPE', OP, `prompt must be a string or an array of token ids, got ${describe(prompt)}`);
  if (ids.length === 0) throw new TesseraError('E_ARG', OP, 'the prompt has no tokens');
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= m.vocabSize) throw new TesseraError('E_ARG', OP, `prompt id ${describe(id)} at index ${i} is outside [0, ${m.vocabSize})`);
  });
  if (ids.length >= m.maxLength) throw new TesseraError('E_ARG', OP, `the prompt has ${ids.length} tokens; this model handles at most ${m.maxLength} in all`);
  return ids;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;
const tick = () => new Promise<void>((r) => setImmediate(r));

/** Streams generated tokens (see GenerationStream); generate() collects the same stream. */
export function streamTokens(m: Generatable, prompt: string | number[] | Int32Array, options: GenerateOptions = {}): GenerationStream {
  const o = checkOpts(m, options);
  const pids = promptIds(m, prompt, options.addSpecialTokens !== false);
  let settle!: (r: GenerateResult) => void;
  let fail!: (e: unknown) => void;
  const result = new Promise<GenerateResult>((res, rej) => {
    settle = res;
    fail = rej;
  });
  result.catch(() => undefined); // the iterator rethrows; an unobserved result must not crash the process
  let started = false;

  async function* run(): AsyncGenerator<StreamPiece> {
    const rng = new Generator(o.seed ?? Math.floor(Math.random() * 2 ** 32));
    const maxLen = Math.min(m.maxLength, pids.length + o.maxNewTokens);
    const cache = o.useCache ? m.newCache(maxLen) : null;
    const detok = new IncrementalDecoder(m.tokenizer, pids.slice(-4));
    const stop = new StopFilter(o.stops);
    const ids: number[] = [];
    const all = pids.slice();
    let text = '';
    let finish: FinishReason = 'aborted';
    const st: GenerateStats = {
      promptTokens: pids.length, generatedTokens: 0, prefillMs: 0, prefillTokensPerSec: 0, decodeTokens: 0, decodeMs: 0,
      decodeTokensPerSec: 0, timeToFirstTokenMs: 0, totalMs: 0,
    };
    const lastRow = (seq: number[], fresh: number[]): Float32Array => {
      const logits = cache ? m.forward(Int32Array.from(fresh), cache, true) : m.forward(Int32Array.from(seq), null, true);
      try {
        const f = logits.toFloat32();
        const V = logits.shape[logits.ndim - 1];
        return f.subarray(f.length - V);
      } finally {
        logits.dispose();
      }
    };
    const done = () => {
      st.generatedTokens = ids.length;
      st.totalMs = st.prefillMs + st.decodeMs;
      st.prefillTokensPerSec = st.prefillMs > 0 ? (1000 * st.promptTokens) / st.prefillMs : 0;
      st.decodeTokensPerSec = st.decodeMs > 0 ? (1000 * st.decodeTokens) / st.decodeMs : 0;
      return { text, ids, promptIds: pids, finishReason: finish, stats: st };
    };
    try {
      if (o.maxNewTokens === 0) {
        finish = 'length';
        return;
      }
      let t = now();
      let row = lastRow(all, pids);
      st.prefillMs = now() - t;
      for (let step = 0; ; step++) {
        t = now();
        const tok = sample(row, o.sampling, rng);
        const dt = now() - t;
        if (step === 0) {
          st.prefillMs += dt;
          st.timeToFirstTokenMs = st.prefillMs;
        } else st.decodeMs += dt;
        ids.push(tok);
        all.push(tok);
        let piece = '';
        let last = false;
        if (o.eos.has(tok)) {
          finish = 'eos';
          last = true;
          piece = stop.push(detok.flush()).out + stop.flush();
        } else {
          const r = stop.push(detok.push(tok));
          piece = r.out;
          if (r.stopped) {
            finish = 'stop';
            last = true;
          } else if (ids.length >= o.maxNewTokens || all.length >= maxLen) {
            finish = 'length';
            last = true;
            const tail = stop.push(detok.flush());
            piece += tail.out + (tail.stopped ? '' : stop.flush());
            if (tail.stopped) finish = 'stop';
          }
        }
        text += piece;
        yield { token: tok, text: piece };
        if (last) return;
        await tick();
        t = now();
        row = lastRow(all, [tok]);
        st.decodeMs += now() - t;
        st.decodeTokens++;
      }
    } catch (e) {
      fail(e);
      throw e;
    } finally {
      cache?.dispose();
      settle(done());
    }
  }

  return {
    result,
    [Symbol.asyncIterator]() {
      if (started) throw new TesseraError('E_ARG', 'stream', 'a generation stream can be iterated only once');
      started = true;
      return run();
    },
  };
}

/** Generates to the end and returns the text, ids and timing. */
export async function generate(m: Generatable, prompt: string | number[] | Int32Array, options: GenerateOptions = {}): Promise<GenerateResult> {
  const s = streamTokens(m, prompt, options);
  for await (const _ of s) {
    /* collected by the stream */
  }
  return s.result;
}
