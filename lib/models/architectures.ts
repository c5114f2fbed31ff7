/**
 * Architecture registry: config.json's `architectures` (e.g. LlamaForCausalLM) or `model_type` picks an
 * entry that lists the checkpoint tensors it needs (names, shapes implied by the config, roles) and builds
 * a Decoder from them. Adding a family is one small file that calls registerArchitecture (see llama.ts,
 * which registers Llama, Mistral and Qwen2 from one decoder with per-family bias options).
 */
import { TesseraError } from '../errors';
import { QuantizedTensor } from '../ops/quant';
import { Device } from '../storage';
import { Tensor } from '../tensor';
import { ModelConfig } from './config';
import { KVCache, KVCacheOptions } from './kvcache';

/** What a tensor is for ('linear' weights are the ones a decoder quantizes on request). */
export type WeightRole = 'embedding' | 'linear' | 'lmHead' | 'norm' | 'bias';

export interface WeightSpec {
  name: string;
  shape: number[];
  role: WeightRole;
  /** which config fields give the shape (for error messages) */
  from: string;
  optional?: boolean;
}

export type Weight = Tensor | QuantizedTensor;

/** A built model body: ids -> logits, with or without a KV cache. */
export interface Decoder {
  /**
   * Logits [1, S, vocab] (float32) for ids at positions cache.length .. cache.length + S - 1 (0 .. S - 1
   * without a cache), appending their keys/values to the cache. lastOnly computes only the last row.
   */
  forward(ids: Int32Array, cache: KVCache | null, lastOnly: boolean): Tensor;
  /** bytes of the weights it holds */
  weightBytes(): number;
  /** where and in which dtype its KV caches live (default: host, float32) */
  cacheOptions?(): KVCacheOptions;
  dispose(): void;
}

export interface BuildOptions {
  /** quantize the Linear weights ([out, in] -> quantize(w.transpose())) after any fusing */
  quantize?: 'int8' | 'int4' | 'float8_e4m3fn';
  /** qmatmul's options.activations for the quantized Linears (default: the weight format's) */
  activations?: 'float' | 'int8';
  /** upload the (fused) weights to this device once; forward then runs there (default: host) */
  device?: Device;
}

export interface Architecture {
  /** short family name ('llama') */
  name: string;
  /** config.architectures entries it serves */
  architectures: string[];
  /** config.model_type values it serves */
  modelTypes: string[];
  /** extra config checks (throw TesseraError naming the field) */
  check?(cfg: ModelConfig): void;
  weights(cfg: ModelConfig): WeightSpec[];
  /** takes ownership of weights (float tensors as loaded) */
  build(cfg: ModelConfig, weights: Map<string, Tensor>, options: BuildOptions): Decoder;
  /** longest sequence this implementation computes exactly (default max_position_embeddings) */
  maxLength?(cfg: ModelConfig): number;
}

const registry: Architecture[] = [];

export function registerArchitecture(a: Architecture): void {
  const i = registry.findIndex((r) => r.name === a.name);
  if (i >= 0) registry[i] = a;
  else registry.push(a);
}

/** Names of every registered architecture (config.architectures values). */
export function supportedArchitectures(): string[] {
  return registry.flatMap((a) => a.architectures);
}

export function findArchitecture(cfg: ModelConfig, file = 'config.json'): Architecture {
  const archs = Array.isArray(cfg.raw.architectures) ? (cfg.raw.architectures as unknown[]).filter((a): a is string => typeof a === 'string') : [];
  for (const name of archs) {
    const a = registry.find((r) => r.architectures.includes(name));
    if (a) return a;
  }
  const byType = registry.find((r) => r.modelTypes.includes(cfg.modelType));
  if (byType) return byType;
  const what = archs.length ? `architecture ${archs.join(', ')}` : `model_type '${cfg.modelType}'`;
  throw new TesseraError('E_ARG', 'loadModel', `${file}: ${what} is not supported; supported: ${supportedArchitectures().join(', ')}`);
}
