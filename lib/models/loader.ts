/**
 * loadModel(dir): a Hugging Face checkpoint directory (config.json, model.safetensors or a sharded
 * model.safetensors.index.json, optional generation_config.json and tokenizer.json) -> Model.
 *
 * Loading checks everything it can before reading any weight: the architecture is registered, every
 * tensor the config implies exists with the implied shape and a float dtype (E_IO names the missing
 * tensor and the files searched, E_SHAPE the file, the tensor, both shapes and the config fields). Then
 * each tensor is read straight into its storage (see io/safetensors.ts), optionally converted
 * (options.dtype) or quantized (options.quantize: the decoder's Linear weights [out, in] become
 * quantize(w.transpose()) for qmatmul; embeddings, norms and a tied lm_head stay float; with quantize
 * 'int4', options.activations 'int8' runs them as W4A8). A progress bar is drawn on stderr when it is a
 * TTY and the checkpoint is large.
 *
 * With a device backend (backend: 'cuda') the fused weights are uploaded once, in the dtype they were
 * loaded in; the decoder then runs every op of a step on the device, keeps its KV caches there, and only
 * the logits come back to the host (see llama.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import { DType } from '../dtype';
import { TesseraError, describe } from '../errors';
import { Tokenizer, loadTokenizer } from '../io/tokenizer';
import { Checkpoint } from '../io/safetensors';
import { BACKEND_ORDER, BackendName, backends, getBackend, setBackend } from '../registry';
import { Tensor } from '../tensor';
import { fmtShape } from '../validate';
import { Decoder, WeightSpec, findArchitecture } from './architectures';
import { GenerationDefaults, ModelConfig, parseConfig, readGenerationConfig, readJsonFile } from './config';
import { GenerateOptions, GenerateResult, GenerationStream, generate, streamTokens } from './generate';
import { KVCache } from './kvcache';
import './llama';

export type QuantizeMode = 'int8' | 'int4' | 'float8_e4m3fn';

export interface LoadOptions {
  /** backend the model's ops start at (default: the global dispatch order) */
  backend?: BackendName;
  /** convert float weights to this dtype on load (default: keep the checkpoint's) */
  dtype?: 'float32' | 'float16' | 'bfloat16';
  /** quantize the decoder's Linear weights on load */
  quantize?: QuantizeMode;
  /**
   * how the quantized Linears take their input (qmatmul's options.activations): 'int8' with quantize 'int4'
   * is W4A8 (activations rounded to int8 per row and group of 32; the fast CPU decode path), 'float' (the
   * default for int4 / fp8) keeps them float; int8 weights always quantize activations
   */
  activations?: 'float' | 'int8';
  /** progress bar on a TTY stderr (default true; drawn only for checkpoints over 32 MB) */
  progress?: boolean;
}

const OP = 'loadModel';
const FLOAT_DTYPES = new Set<DType>(['float32', 'float16', 'bfloat16', 'float64']);

/** Runs f with dispatch starting at backend (restoring the previous choice). */
function withBackend<T>(backend: BackendName | null, f: () => T): T {
  if (!backend) return f();
  const prev = getBackend();
  setBackend(null);
  const wasDefault = getBackend() === prev;
  setBackend(backend);
  try {
    return f();
  } finally {
    setBackend(wasDefault ? null : prev);
  }
}

export class Model {
  readonly dir: string;
  readonly config: ModelConfig;
  /** the architecture family serving it ('llama', 'mistral', 'qwen2', ...) */
  readonly family: string;
  readonly generationConfig: GenerationDefaults;
  readonly tokenizer: Tokenizer | null;
  readonly backend: BackendName | null;
  /** dtype the float weights are kept in ('mixed' when the checkpoint mixes them) */
  readonly weightDtype: string;
  readonly quantized: QuantizeMode | null;
  /** longest sequence (prompt + generated) this model runs */
  readonly maxLength: number;
  /** bytes of weights held */
  readonly weightBytes: number;
  private decoder: Decoder | null;

  /** @internal use loadModel() */
  constructor(init: {
    dir: string; config: ModelConfig; family: string; generationConfig: GenerationDefaults; tokenizer: Tokenizer | null;
    backend: BackendName | null; weightDtype: string; quantized: QuantizeMode | null; maxLength: number; weightBytes: number; decoder: Decoder;
  }) {
    this.dir = init.dir;
    this.config = init.config;
    this.family = init.family;
    this.generationConfig = init.generationConfig;
    this.tokenizer = init.tokenizer;
    this.backend = init.backend;
    this.weightDtype = init.weightDtype;
    this.quantized = init.quantized;
    this.maxLength = init.maxLength;
    this.weightBytes = init.weightBytes;
    this.decoder = init.decoder;
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }
  /** generation defaults in the form generate() reads */
  get defaults() {
    return this.generationConfig;
  }

  private body(op: string): Decoder {
    if (!this.decoder) throw new TesseraError('E_DISPOSED', op, 'the model was disposed');
    return this.decoder;
  }

  /** A KV cache for up to maxLen positions (default: the model's maxLength). */
  newCache(maxLen = this.maxLength): KVCache {
    if (!Number.isInteger(maxLen) || maxLen < 1 || maxLen > this.maxLength) {
      throw new TesseraError('E_ARG', 'newCache', `maxLen must be an integer in [1, ${this.maxLength}], got ${describe(maxLen)}`);
    }
    const where = this.body('newCache').cacheOptions?.() ?? {};
    return new KVCache({ numLayers: this.config.numLayers, numKvHeads: this.config.numKvHeads, headDim: this.config.headDim }, maxLen, where);
  }

  /**
   * Logits [1, S, vocab] (float32) for token ids (array, Int32Array, or an int tensor [S] / [1, S]).
   * With options.cache the ids continue the cached sequence and are appended to it.
   */
  forward(ids: ArrayLike<number> | Tensor | Int32Array, options?: { cache?: KVCache | null; lastOnly?: boolean }): Tensor;
  /** @internal the Generatable form */
  forward(ids: Int32Array, cache: KVCache | null, lastOnly: boolean): Tensor;
  forward(ids: unknown, a?: unknown, b?: unknown): Tensor {
    const op = 'forward';
    const dec = this.body(op);
    let cache: KVCache | null = null;
    let lastOnly = false;
    if (a instanceof KVCache || a === null) {
      cache = a as KVCache | null;
      lastOnly = b === true;
    } else if (a !== undefined) {
      if (typeof a !== 'object') throw new TesseraError('E_TYPE', op, `options must be an object, got ${describe(a)}`);
      const o = a as { cache?: unknown; lastOnly?: unknown };
      if (o.cache !== undefined && o.cache !== null && !(o.cache instanceof KVCache)) throw new TesseraError('E_TYPE', op, `options.cache must be a KVCache (model.newCache()), got ${describe(o.cache)}`);
      cache = (o.cache as KVCache | undefined) ?? null;
      lastOnly = o.lastOnly === true;
    }
    let arr: Int32Array;
    if (ids instanceof Tensor) {
      if (!(ids.ndim === 1 || (ids.ndim === 2 && ids.shape[0] === 1))) throw new TesseraError('E_SHAPE', op, `ids must be [S] or [1, S], got ${fmtShape(ids.shape)}`);
      arr = Int32Array.from(ids.toFloat64());
    } else if (ids instanceof Int32Array) arr = ids;
    else if (Array.isArray(ids) || ArrayBuffer.isView(ids)) arr = Int32Array.from(ids as ArrayLike<number>);
    else throw new TesseraError('E_TYPE', op, `ids must be an array of token ids or a Tensor, got ${describe(ids)}`);
    if (arr.length === 0) throw new TesseraError('E_SHAPE', op, 'ids is empty');
    const V = this.config.vocabSize;
    for (let i = 0; i < arr.length; i++) {
      if (arr[i] < 0 || arr[i] >= V || (!(ids instanceof Tensor) && (ids as ArrayLike<number>)[i] !== arr[i])) {
        throw new TesseraError('E_ARG', op, `ids[${i}] = ${(ids as ArrayLike<number>)[i] ?? arr[i]} is not a token id in [0, ${V})`);
      }
    }
    const past = cache ? cache.length : 0;
    if (past + arr.length > this.maxLength) {
      throw new TesseraError('E_ARG', op, `position ${past + arr.length - 1} is past this model's maximum length ${this.maxLength}`);
    }
    return withBackend(this.backend, () => dec.forward(arr, cache, lastOnly));
  }

  /** Text (or ids) in, generated text and ids out, with timing stats. */
  generate(prompt: string | number[] | Int32Array, options: GenerateOptions = {}): Promise<GenerateResult> {
    this.body('generate');
    return generate(this, prompt, options);
  }

  /** An async iterator of { token, text } pieces; `.result` resolves to what generate() returns. */
  stream(prompt: string | number[] | Int32Array, options: GenerateOptions = {}): GenerationStream {
    this.body('stream');
    return streamTokens(this, prompt, options);
  }

  encode(text: string, options?: { addSpecialTokens?: boolean }): number[] {
    if (!this.tokenizer) throw new TesseraError('E_ARG', 'encode', `${this.dir} has no tokenizer.json`);
    return this.tokenizer.encode(text, options);
  }
  decode(ids: ArrayLike<number>, options?: { skipSpecialTokens?: boolean }): string {
    if (!this.tokenizer) throw new TesseraError('E_ARG', 'decode', `${this.dir} has no tokenizer.json`);
    return this.tokenizer.decode(ids, options);
  }

  dispose(): void {
    this.decoder?.dispose();
    this.decoder = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

class Progress {
  private done = 0;
  private last = 0;
  private readonly on: boolean;
  constructor(private readonly total: number, enabled: boolean) {
    this.on = enabled && !!process.stderr.isTTY && total > 32 * 1024 * 1024;
  }
  add(bytes: number, label: string): void {
    this.done += bytes;
    if (!this.on) return;
    const t = Date.now();
    if (t - this.last < 100 && this.done < this.total) return;
    this.last = t;
    const frac = this.done / this.total;
    const width = 30;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, ' ');
    const mb = (n: number) => (n / 1048576).toFixed(0);
    process.stderr.write(`\rloading [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${mb(this.done)}/${mb(this.total)} MB ${label.slice(-40)}\x1b[K`);
  }
  end(): void {
    if (this.on) process.stderr.write('\r\x1b[K');
  }
}

function checkLoadOptions(o: unknown): LoadOptions {
  if (o === undefined || o === null) return {};
  if (typeof o !== 'object') throw new TesseraError('E_TYPE', OP, `options must be an object, got ${describe(o)}`);
  const r = o as LoadOptions;
  if (r.backend !== undefined) {
    if (!(BACKEND_ORDER as readonly string[]).includes(r.backend)) throw new TesseraError('E_BACKEND', OP, `options.backend must be one of ${BACKEND_ORDER.join(', ')}, got ${describe(r.backend)}`);
    const b = backends().find((x) => x.name === r.backend)!;
    if (!b.available) throw new TesseraError('E_BACKEND', OP, `backend '${r.backend}' is unavailable: ${b.reason}`);
  }
  if (r.dtype !== undefined && !['float32', 'float16', 'bfloat16'].includes(r.dtype)) {
    throw new TesseraError('E_DTYPE', OP, `options.dtype must be float32, float16 or bfloat16, got ${describe(r.dtype)}`);
  }
  if (r.quantize !== undefined && !['int8', 'int4', 'float8_e4m3fn'].includes(r.quantize)) {
    throw new TesseraError('E_DTYPE', OP, `options.quantize must be int8, int4 or float8_e4m3fn, got ${describe(r.quantize)}`);
  }
  if (r.activations !== undefined) {
    if (r.activations !== 'float' && r.activations !== 'int8') {
      throw new TesseraError('E_ARG', OP, `options.activations must be 'float' or 'int8', got ${describe(r.activations)}`);
    }
    const ok = r.quantize === 'int4' || (r.quantize === 'int8' && r.activations === 'int8') || (r.quantize === 'float8_e4m3fn' && r.activations === 'float');
    if (!ok) {
      throw new TesseraError('E_ARG', OP, `options.activations '${r.activations}' does not go with quantize ${describe(r.quantize)}: 'int8' (W4A8) needs quantize 'int4'; int8 weights always take int8 activations, fp8 weights float ones`);
    }
  }
  if (r.quantize !== undefined && r.backend !== undefined && backends().find((x) => x.name === r.backend)!.device !== 'cpu') {
    throw new TesseraError('E_ARG', OP, `options.quantize runs on host backends only (cpu, js), not on '${r.backend}'`);
  }
  return r;
}

/** Checks every expected tensor against the checkpoint before reading any. */
function checkTensors(ck: Checkpoint, specs: WeightSpec[], cfg: ModelConfig, dir: string): WeightSpec[] {
  const present: WeightSpec[] = [];
  for (const s of specs) {
    if (!ck.has(s.name)) {
      if (s.optional) continue;
      throw new TesseraError('E_IO', OP, `${dir}: tensor "${s.name}" (${cfg.architecture}, shape ${fmtShape(s.shape)}) is missing from ${ck.files.join(', ')}`);
    }
    const info = ck.info(s.name);
    const file = path.basename(info.file);
    if (info.shape.length !== s.shape.length || info.shape.some((d, i) => d !== s.shape[i])) {
      throw new TesseraError('E_SHAPE', OP, `${path.join(dir, file)}: tensor "${s.name}" has shape ${fmtShape(info.shape)} but config.json (${s.from}) implies ${fmtShape(s.shape)}`);
    }
    if (!info.dtype || !FLOAT_DTYPES.has(info.dtype)) {
      throw new TesseraError('E_DTYPE', OP, `${path.join(dir, file)}: tensor "${s.name}" is ${info.stDtype}; model weights must be F32, F16 or BF16 (pre-quantized checkpoints are not read: use options.quantize)`);
    }
    present.push(s);
  }
  return present;
}

/** Loads a Hugging Face checkpoint directory (see the header). */
export async function loadModel(dir: string, options?: LoadOptions): Promise<Model> {
  if (typeof dir !== 'string') throw new TesseraError('E_TYPE', OP, `dir must be a path string, got ${describe(dir)}`);
  const o = checkLoadOptions(options);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new TesseraError('E_IO', OP, `model directory ${dir} does not exist`);
  const cfgFile = path.join(dir, 'config.json');
  const cfg = parseConfig(readJsonFile(cfgFile, 'model config'), cfgFile);
  const arch = findArchitecture(cfg, cfgFile);
  arch.check?.(cfg);
  const gen = readGenerationConfig(dir, cfg);
  const tokenizer = fs.existsSync(path.join(dir, 'tokenizer.json')) ? loadTokenizer(dir) : null;
  const ck = Checkpoint.open(dir);
  const weights = new Map<string, Tensor>();
  const dtypes = new Set<string>();
  try {
    const specs = checkTensors(ck, arch.weights(cfg), cfg, dir);
    const bar = new Progress(specs.reduce((n, s) => n + ck.info(s.name).end - ck.info(s.name).begin, 0), o.progress !== false);
    for (const s of specs) {
      const info = ck.info(s.name);
      let t: Tensor = await ck.read(s.name);
      bar.add(info.end - info.begin, path.basename(info.file));
      const want: DType | null = o.dtype ?? (t.dtype === 'float64' ? 'float32' : null);
      if (want && t.dtype !== want) {
        const c = t.to(want);
        t.dispose();
        t = c;
      }
      dtypes.add(t.dtype);
      weights.set(s.name, t);
    }
    bar.end();
    const device = o.backend ? backends().find((x) => x.name === o.backend)!.device : 'cpu';
    const decoder = withBackend(o.backend ?? null, () => arch.build(cfg, weights, { quantize: o.quantize, activations: o.activations, device }));
    weights.clear(); // the decoder owns them now
    const maxLength = arch.maxLength ? arch.maxLength(cfg) : cfg.maxPositionEmbeddings;
    return new Model({
      dir, config: cfg, family: arch.name, generationConfig: gen, tokenizer, backend: o.backend ?? null,
      weightDtype: dtypes.size === 1 ? [...dtypes][0] : 'mixed', quantized: o.quantize ?? null, maxLength, weightBytes: decoder.weightBytes(), decoder,
    });
  } catch (e) {
    for (const w of weights.values()) w.dispose();
    throw e;
  } finally {
    ck.close();
  }
}
