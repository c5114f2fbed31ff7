/**
 * Hugging Face config.json and generation_config.json, read into the few numbers a decoder needs.
 *
 * Rotary embedding: `rope_theta` at the top level (transformers 4) or the newer `rope_parameters` object
 * (transformers 5: {rope_type, rope_theta, ...}); the older `rope_scaling` object is read the same way.
 * rope_type 'default', 'linear' (positions divided by factor, i.e. inverse frequencies divided) and
 * 'llama3' (Llama 3.1's band-wise scaling: wavelengths above original_max / low_freq_factor are slowed
 * by factor, below original_max / high_freq_factor kept, smoothly interpolated between) are computed
 * here as inverse frequencies for rope({ invFreq }); any other type is an E_ARG error naming it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { TesseraError, describe } from '../errors';

export interface RopeConfig {
  type: 'default' | 'linear' | 'llama3';
  theta: number;
  /** the scaling parameters as given (factor, low_freq_factor, ...) */
  params: Record<string, number>;
}

export interface ModelConfig {
  /** config.architectures[0] (or the model_type when architectures is absent) */
  architecture: string;
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  rope: RopeConfig;
  /** the checkpoint's dtype as config.json states it (torch_dtype / dtype), or null */
  dtype: string | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  hiddenAct: string;
  /** the whole config.json, for architecture files that need more */
  raw: Readonly<Record<string, unknown>>;
}

export interface GenerationDefaults {
  bosTokenId: number | null;
  eosTokenIds: number[];
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  maxNewTokens: number | null;
}

const OP = 'loadModel';

export function readJsonFile(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TesseraError('E_IO', OP, `cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new TesseraError('E_IO', OP, `${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new TesseraError('E_IO', OP, `${file} must hold a JSON object, got ${describe(j)}`);
  return j as Record<string, unknown>;
}

function ids(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
  return [];
}

/** Parses a config.json object (file names the source in errors). */
export function parseConfig(j: Record<string, unknown>, file = 'config.json'): ModelConfig {
  // multimodal checkpoints nest the language model's config; read that one
  const c = (j.text_config && typeof j.text_config === 'object' ? { ...j, ...(j.text_config as object) } : j) as Record<string, unknown>;
  const int = (key: string, fallback?: number): number => {
    const v = c[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new TesseraError('E_ARG', OP, `${file} has no ${key}`);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new TesseraError('E_ARG', OP, `${file}: ${key} must be a positive integer, got ${describe(v)}`);
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new TesseraError('E_ARG', OP, `${file}: ${key} must be a positive number, got ${describe(v)}`);
    return v;
  };
  const archs = Array.isArray(c.architectures) ? c.architectures.filter((a): a is string => typeof a === 'string') : [];
  const modelType = typeof c.model_type === 'string' ? c.model_type : '';
  if (!archs.length && !modelType) throw new TesseraError('E_ARG', OP, `${file} names no architectures and no model_type`);
  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new TesseraError('E_ARG', OP, `${file}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  }
  let headDim: number;
  if (c.head_dim !== undefined && c.head_dim !== null) headDim = int('head_dim');
  else {
    if (hiddenSize % numHeads !== 0) throw new TesseraError('E_ARG', OP, `${file}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads} and head_dim is not given`);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) throw new TesseraError('E_ARG', OP, `${file}: head_dim ${headDim} must be even for rotary embedding`);
  const dt = c.torch_dtype ?? c.dtype;
  return {
    architecture: archs[0] ?? modelType,
    modelType,
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num('rms_norm_eps', 1e-6),
    vocabSize: int('vocab_size'),
    maxPositionEmbeddings: int('max_position_embeddings', 2048),
    tieWordEmbeddings: c.tie_word_embeddings === undefined ? false : c.tie_word_embeddings === true,
    rope: parseRope(c, file),
    dtype: typeof dt === 'string' ? dt : null,
    bosTokenId: typeof c.bos_token_id === 'number' ? c.bos_token_id : null,
    eosTokenIds: ids(c.eos_token_id),
    hiddenAct: typeof c.hidden_act === 'string' ? c.hidden_act : 'silu',
    raw: Object.freeze({ ...c }),
  };
}

function parseRope(c: Record<string, unknown>, file: string): RopeConfig {
  const obj = [c.rope_parameters, c.rope_scaling].find((v) => v && typeof v === 'object' && !Array.isArray(v)) as Record<string, unknown> | undefined;
  const thetaRaw = obj?.rope_theta ?? c.rope_theta ?? 10000;
  if (typeof thetaRaw !== 'number' || !(thetaRaw > 0)) throw new TesseraError('E_ARG', OP, `${file}: rope_theta must be a positive number, got ${describe(thetaRaw)}`);
  const typ = (obj?.rope_type ?? obj?.type ?? 'default') as unknown;
  const params: Record<string, number> = {};
  for (const [k, v] of Object.entries(obj ?? {})) if (typeof v === 'number') params[k] = v;
  const need = (keys: string[]) => {
    for (const k of keys) {
      if (!(typeof params[k] === 'number' && params[k] > 0)) throw new TesseraError('E_ARG', OP, `${file}: rope_type '${typ}' needs a positive ${k}, got ${describe(obj?.[k])}`);
    }
  };
  if (typ === 'default') return { type: 'default', theta: thetaRaw, params };
  if (typ === 'linear') {
    need(['factor']);
    return { type: 'linear', theta: thetaRaw, params };
  }
  if (typ === 'llama3') {
    need(['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings']);
    return { type: 'llama3', theta: thetaRaw, params };
  }
  throw new TesseraError('E_ARG', OP, `${file}: rope_type ${typeof typ === 'string' ? `'${typ}'` : describe(typ)} is not supported (supported: default, linear, llama3)`);
}

/** Inverse frequencies of rotary embedding for dim features (dim/2 entries), with the config's scaling. */
export function ropeInvFreqFor(rope: RopeConfig, dim: number): Float64Array {
  const half = dim / 2;
  const inv = new Float64Array(half);
  // as transformers computes them: float32 powers, so positions * invFreq round the same way
  for (let i = 0; i < half; i++) inv[i] = Math.fround(1 / Math.fround(Math.pow(rope.theta, Math.fround((2 * i) / dim))));
  if (rope.type === 'linear') for (let i = 0; i < half; i++) inv[i] = Math.fround(inv[i] / rope.params.factor);
  if (rope.type === 'llama3') {
    const { factor, low_freq_factor: lo, high_freq_factor: hi, original_max_position_embeddings: oldLen } = rope.params;
    const lowWavelen = oldLen / lo;
    const highWavelen = oldLen / hi;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen < highWavelen) continue; // high frequencies: unchanged
      if (wavelen > lowWavelen) inv[i] = Math.fround(inv[i] / factor); // low frequencies: slowed by factor
      else {
        const smooth = (oldLen / wavelen - lo) / (hi - lo);
        inv[i] = Math.fround((1 - smooth) * (inv[i] / factor) + smooth * inv[i]);
      }
    }
  }
  return inv;
}

/** generation_config.json (optional) merged over the config's bos/eos. */
export function readGenerationConfig(dir: string, cfg: ModelConfig): GenerationDefaults {
  const file = path.join(dir, 'generation_config.json');
  const g = fs.existsSync(file) ? readJsonFile(file, 'generation config') : {};
  const eos = ids(g.eos_token_id);
  const numOr = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
  return {
    bosTokenId: typeof g.bos_token_id === 'number' ? g.bos_token_id : cfg.bosTokenId,
    eosTokenIds: eos.length ? eos : cfg.eosTokenIds,
    doSample: g.do_sample === true,
    temperature: numOr(g.temperature, 1),
    topK: numOr(g.top_k, 0),
    topP: numOr(g.top_p, 1),
    maxNewTokens: typeof g.max_new_tokens === 'number' ? g.max_new_tokens : null,
  };
}
