/**
 * The Llama decoder and the families that share it: Llama 1-3 (GQA, llama3 rope scaling, optional
 * attention/MLP biases), Mistral and Qwen2 (q/k/v biases).
 *
 * Per layer, on the residual stream x [1, S, hidden] (float32):
 *   h = rmsNorm(x) · input_layernorm
 *   q, k, v = h Wqᵀ (+bq), h Wkᵀ (+bk), h Wvᵀ (+bv) -> [1, H, S, D] (q: Hq heads, k/v: Hkv heads),
 *            computed as one GEMM with the three weights concatenated at load (same for gate/up below)
 *   q, k = rope(q, k) at absolute positions past .. past + S - 1 (rotate-half, HF convention)
 *   k, v appended to the KV cache; attention(q, k_all, v_all, causal, kvOffset = past)
 *   x += (attn [1, S, Hq·D]) Woᵀ (+bo)
 *   h = rmsNorm(x) · post_attention_layernorm;  x += (silu(h Wgᵀ) * h Wuᵀ) Wdᵀ
 * then logits = rmsNorm(x) · norm  @ lm_headᵀ (the embedding when tied).
 *
 * Weights stay in the checkpoint's float dtype (or the loader's dtype, or quantized after fusing: per output
 * channel scales make that identical to quantizing each projection alone); activations are
 * float32 throughout (bf16/f16 weights are widened by the kernels), so a bf16 checkpoint computes what
 * PyTorch computes for the same weights cast to float32. Every intermediate is disposed as soon as it is
 * used, so memory() stays flat across decode steps.
 *
 * On a device (loadModel(dir, { backend: 'cuda' })) the fused weights are uploaded once and every op of a
 * step runs there; only the ids go up and the logits come down. The KV cache lives on the device and is
 * written in place (KVCache.write: one strided copy per tensor). Attention runs in the weights' half dtype
 * through the device's fused flash kernel when it takes the shape (q/k/v rounded to bf16/f16: expect
 * bf16-sized differences, see test/model.test.js), else in float32 composed from matmul + softmax (the
 * device has no float32 attention kernel; composing it keeps the step free of host round trips).
 */
import { tensor, zeros } from '../creation';
import { TesseraError } from '../errors';
import { DType } from '../dtype';
import { add, mul, silu } from '../ops/elementwise';
import { attention, linear, matmul } from '../ops/linalg';
import { softmax } from '../ops/reduce';
import { BackendName, getKernel } from '../registry';
import { Device } from '../storage';
import { cat, embedding, rmsNorm, rope } from '../ops/nn';
import { QmatmulOptions, QuantizedTensor, qmatmul, quantize } from '../ops/quant';
import { Tensor } from '../tensor';
import { Architecture, BuildOptions, Decoder, Weight, WeightSpec, registerArchitecture } from './architectures';
import { ModelConfig, ropeInvFreqFor } from './config';
import { KVCache } from './kvcache';

export interface LlamaFamilyOptions {
  /** q/k/v projections have biases */
  qkvBias(cfg: ModelConfig): boolean;
  /** o_proj has a bias */
  oBias(cfg: ModelConfig): boolean;
  /** gate/up/down projections have biases */
  mlpBias(cfg: ModelConfig): boolean;
}

/** Collects tensors made inside one step and disposes them together. */
class Scope {
  private readonly ts: Tensor[] = [];
  t<T extends Tensor>(x: T): T {
    this.ts.push(x);
    return x;
  }
  dispose(): void {
    for (const x of this.ts) x.dispose();
    this.ts.length = 0;
  }
}

interface Linear {
  w: Weight;
  b: Tensor | null;
  /** output features */
  n: number;
  /** qmatmul options of a quantized weight */
  q?: QmatmulOptions;
}

function applyLinear(x: Tensor, l: Linear): Tensor {
  if (l.w instanceof QuantizedTensor) {
    const y = qmatmul(x, l.w, l.q);
    if (!l.b) return y;
    const out = add(y, l.b);
    y.dispose();
    return out;
  }
  return linear(x, l.w, l.b);
}

function weightBytes(w: Weight): number {
  if (w instanceof QuantizedTensor) return w.values._s.bytes + w.scales._s.bytes + (w.zeros?._s.bytes ?? 0);
  return w._s.bytes;
}

interface Layer {
  inNorm: Tensor;
  postNorm: Tensor;
  /** q, k and v projections fused along the output dim: one GEMM instead of three */
  qkv: Linear;
  o: Linear;
  /** gate and up projections fused */
  gateUp: Linear;
  down: Linear;
}

export class LlamaDecoder implements Decoder {
  private readonly cfg: ModelConfig;
  private readonly embed: Tensor;
  private readonly lmHead: Tensor;
  private readonly norm: Tensor;
  private readonly layers: Layer[];
  private readonly invFreq: Float64Array;
  private readonly owned: Weight[] = [];
  /** where the weights live and the step runs */
  private readonly device: Device;
  /** dtype of q/k/v in attention and of the KV cache (float32 on the host) */
  private readonly attnDtype: DType;
  /** 1/sqrt(head_dim) as a device scalar (composed attention), or null */
  private readonly scale: Tensor | null = null;

  /** Takes ownership of the float weights; fuses q/k/v and gate/up, then quantizes Linears on request. */
  constructor(cfg: ModelConfig, w: Map<string, Tensor>, options: BuildOptions = {}) {
    this.cfg = cfg;
    const take = (n: string): Tensor => {
      const t = w.get(n);
      if (!t) throw new TesseraError('E_IO', 'loadModel', `internal: weight ${n} was not loaded`);
      return t;
    };
    this.device = options.device ?? 'cpu';
    const own = <T extends Weight>(t: T): T => {
      if (this.device !== 'cpu' && t instanceof Tensor && t.device !== this.device) {
        const d = t.to(this.device) as T;
        t.dispose();
        t = d;
      }
      this.owned.push(t);
      return t;
    };
    const fused = (names: string[]): Linear => {
      const ws = names.map((n) => take(`${n}.weight`));
      const bs = names.map((n) => w.get(`${n}.bias`) ?? null);
      let wt = ws.length === 1 ? ws[0] : cat(ws, 0);
      let b: Tensor | null = null;
      if (bs.some((x) => x)) {
        const parts = bs.map((x, i) => x ?? zeros([ws[i].shape[0]]));
        b = parts.length === 1 ? parts[0] : cat(parts, 0);
        if (parts.length > 1) parts.forEach((x) => x.dispose());
      }
      if (ws.length > 1) ws.forEach((x) => x.dispose());
      const n = wt.shape[0];
      if (options.quantize) {
        const tr = wt.transpose();
        const q = quantize(tr, { dtype: options.quantize });
        tr.dispose();
        wt.dispose();
        return { w: own(q), b: b && own(b), n, q: options.activations ? { activations: options.activations } : undefined };
      }
      wt = own(wt);
      return { w: wt, b: b && own(b), n };
    };
    this.embed = own(take('model.embed_tokens.weight'));
    this.norm = own(take('model.norm.weight'));
    this.lmHead = cfg.tieWordEmbeddings || !w.has('lm_head.weight') ? this.embed : own(take('lm_head.weight'));
    this.attnDtype = 'float32';
    this.layers = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `model.layers.${i}`;
      this.layers.push({
        inNorm: own(take(`${p}.input_layernorm.weight`)),
        postNorm: own(take(`${p}.post_attention_layernorm.weight`)),
        qkv: fused([`${p}.self_attn.q_proj`, `${p}.self_attn.k_proj`, `${p}.self_attn.v_proj`]),
        o: fused([`${p}.self_attn.o_proj`]),
        gateUp: fused([`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`]),
        down: fused([`${p}.mlp.down_proj`]),
      });
    }
    this.invFreq = ropeInvFreqFor(cfg.rope, cfg.headDim);
    if (this.device !== 'cpu') {
      const wd = this.layers[0]?.qkv.w.dtype;
      if ((wd === 'bfloat16' || wd === 'float16') && this.flashTakes(wd)) this.attnDtype = wd;
      this.scale = tensor(1 / Math.sqrt(cfg.headDim), { dtype: 'float32', device: this.device });
    }
  }

  /** Does the device's fused attention kernel take this model's heads in dtype (probed on a 1-token step)? */
  private flashTakes(dtype: DType): boolean {
    const k = getKernel('attention', this.device as BackendName);
    if (!k?.supports) return false;
    const { numHeads: Hq, numKvHeads: Hkv, headDim: D } = this.cfg;
    const q = zeros([1, Hq, 1, D], { dtype, device: this.device });
    const kv = zeros([1, Hkv, 1, D], { dtype, device: this.device });
    try {
      const attrs = { causal: true, scale: 1 / Math.sqrt(D), kvOffset: 0, hasMask: false, outDtype: dtype, B: 1, Hq, Hkv, Sq: 1, Sk: 1, D, Dv: D };
      return k.supports([q, kv, kv], attrs) === true;
    } finally {
      q.dispose();
      kv.dispose();
    }
  }

  cacheOptions(): { device: Device; dtype: DType } {
    return { device: this.device, dtype: this.attnDtype };
  }

  /**
   * Causal attention on the device: the fused kernel in the half dtype (k, v gathered dense from the cache
   * views), else float32 from primitives, q's G = Hq / Hkv heads per kv head batched as rows:
   * softmax(q kᵀ · scale + mask) v with the mask [S, L] (-1e30 above the diagonal; none for S = 1).
   */
  private deviceAttention(q: Tensor, k: Tensor, v: Tensor, past: number, mask: Tensor | null, sc: Scope): Tensor {
    if (q.dtype !== 'float32') {
      const kd = k.isContiguous() ? k : sc.t(k.contiguous());
      const vd = v.isContiguous() ? v : sc.t(v.contiguous());
      return sc.t(attention(q, kd, vd, { causal: true, kvOffset: past }));
    }
    const [, Hq, S, D] = q.shape;
    const Hkv = k.shape[1];
    const L = k.shape[2];
    const G = Hq / Hkv;
    const q5 = sc.t(q.reshape(1, Hkv, G * S, D));
    const scores = sc.t(mul(sc.t(matmul(q5, sc.t(k.transpose(2, 3)))), this.scale!));
    const masked = mask ? sc.t(add(sc.t(scores.reshape(1, Hkv, G, S, L)), mask)) : scores;
    const p = sc.t(sc.t(softmax(masked, -1)).reshape(1, Hkv, G * S, L));
    return sc.t(sc.t(matmul(p, v)).reshape(1, Hq, S, D));
  }

  weightBytes(): number {
    return this.owned.reduce((n, t) => n + weightBytes(t), 0);
  }

  forward(ids: Int32Array, cache: KVCache | null, lastOnly: boolean): Tensor {
    const { numHeads: Hq, numKvHeads: Hkv, headDim: D, intermediateSize: I, rmsNormEps: eps } = this.cfg;
    const S = ids.length;
    const past = cache ? cache.length : 0;
    if (cache && !cache.fits(S)) {
      throw new TesseraError('E_ARG', 'forward', `the KV cache holds ${cache.length} of ${cache.maxLen} tokens; ${S} more do not fit`);
    }
    const ropeOpts = { offset: past, invFreq: this.invFreq };
    const dev = this.device !== 'cpu';
    const idT = tensor(ids, { dtype: 'int32', shape: [1, S], device: this.device });
    let x = embedding(idT, this.embed);
    idT.dispose();
    if (x.dtype !== 'float32') {
      const f = x.to('float32');
      x.dispose();
      x = f;
    }
    const sc = new Scope();
    let mask: Tensor | null = null;
    if (dev && this.attnDtype === 'float32' && S > 1) {
      const L = past + S;
      const m = new Float32Array(S * L);
      for (let i = 0; i < S; i++) m.fill(-1e30, i * L + past + i + 1, (i + 1) * L);
      mask = tensor(m, { shape: [S, L], device: this.device });
    }
    try {
      for (let li = 0; li < this.layers.length; li++) {
        const L = this.layers[li];
        const h = sc.t(rmsNorm(x, L.inNorm, eps));
        // [1, S, (Hq + 2 Hkv) D] viewed as [1, S, Hq + 2 Hkv, D]; q, k, v are head ranges of it
        let qkv = sc.t(sc.t(applyLinear(h, L.qkv)).reshape(1, S, Hq + 2 * Hkv, D));
        if (qkv.dtype !== this.attnDtype) qkv = sc.t(qkv.to(this.attnDtype));
        const heads = (from: number, n: number) => sc.t(sc.t(qkv.slice(2, from, from + n)).transpose(1, 2));
        const q = sc.t(rope(heads(0, Hq), ropeOpts));
        const k = sc.t(rope(heads(Hq, Hkv), ropeOpts));
        const v = heads(Hq + Hkv, Hkv);
        let kAll = k;
        let vAll = v;
        if (cache) {
          cache.write(li, k, v);
          const kv = cache.view(li, past + S);
          kAll = sc.t(kv.k);
          vAll = sc.t(kv.v);
        }
        const a = dev ? this.deviceAttention(q, kAll, vAll, past, mask, sc) : sc.t(attention(q, kAll, vAll, { causal: true, kvOffset: past }));
        let merged = sc.t(sc.t(a.transpose(1, 2)).reshape(1, S, Hq * D));
        if (merged.dtype !== 'float32') merged = sc.t(merged.to('float32'));
        const o = sc.t(applyLinear(merged, L.o));
        const x1 = add(x, o);
        x.dispose();
        x = x1;
        const h2 = sc.t(rmsNorm(x, L.postNorm, eps));
        const gu = sc.t(applyLinear(h2, L.gateUp));
        const g = sc.t(gu.slice(2, 0, I));
        const u = sc.t(gu.slice(2, I, 2 * I));
        const m = sc.t(mul(sc.t(silu(g)), u));
        const d = sc.t(applyLinear(m, L.down));
        const x2 = add(x, d);
        x.dispose();
        x = x2;
        sc.dispose();
      }
      if (cache) cache.advance(S);
      const last = lastOnly && S > 1 ? sc.t(x.slice(1, S - 1, S)) : x;
      const hn = sc.t(rmsNorm(last, this.norm, eps));
      const logits = linear(hn, this.lmHead);
      if (logits.dtype === 'float32' && !dev) return logits;
      // the one copy to the host of a device step
      const f = logits.to({ dtype: 'float32', device: 'cpu' });
      logits.dispose();
      return f;
    } finally {
      sc.dispose();
      x.dispose();
      mask?.dispose();
    }
  }

  dispose(): void {
    for (const w of this.owned) w.dispose();
    this.owned.length = 0;
    this.scale?.dispose();
  }
}

/** Weight list of the Llama layout for cfg, with the family's biases. */
export function llamaWeights(cfg: ModelConfig, o: LlamaFamilyOptions): WeightSpec[] {
  const { hiddenSize: H, intermediateSize: I, numHeads: Hq, numKvHeads: Hkv, headDim: D, vocabSize: V } = cfg;
  const specs: WeightSpec[] = [
    { name: 'model.embed_tokens.weight', shape: [V, H], role: 'embedding', from: 'vocab_size, hidden_size' },
  ];
  const lin = (name: string, out: number, inp: number, from: string, bias: boolean) => {
    specs.push({ name: `${name}.weight`, shape: [out, inp], role: 'linear', from });
    if (bias) specs.push({ name: `${name}.bias`, shape: [out], role: 'bias', from });
  };
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    specs.push({ name: `${p}.input_layernorm.weight`, shape: [H], role: 'norm', from: 'hidden_size' });
    lin(`${p}.self_attn.q_proj`, Hq * D, H, 'num_attention_heads x head_dim, hidden_size', o.qkvBias(cfg));
    lin(`${p}.self_attn.k_proj`, Hkv * D, H, 'num_key_value_heads x head_dim, hidden_size', o.qkvBias(cfg));
    lin(`${p}.self_attn.v_proj`, Hkv * D, H, 'num_key_value_heads x head_dim, hidden_size', o.qkvBias(cfg));
    lin(`${p}.self_attn.o_proj`, H, Hq * D, 'hidden_size, num_attention_heads x head_dim', o.oBias(cfg));
    specs.push({ name: `${p}.post_attention_layernorm.weight`, shape: [H], role: 'norm', from: 'hidden_size' });
    lin(`${p}.mlp.gate_proj`, I, H, 'intermediate_size, hidden_size', o.mlpBias(cfg));
    lin(`${p}.mlp.up_proj`, I, H, 'intermediate_size, hidden_size', o.mlpBias(cfg));
    lin(`${p}.mlp.down_proj`, H, I, 'hidden_size, intermediate_size', o.mlpBias(cfg));
  }
  specs.push({ name: 'model.norm.weight', shape: [H], role: 'norm', from: 'hidden_size' });
  if (!cfg.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [V, H], role: 'lmHead', from: 'vocab_size, hidden_size' });
  return specs;
}

function checkAct(cfg: ModelConfig): void {
  if (cfg.hiddenAct !== 'silu' && cfg.hiddenAct !== 'swish') {
    throw new TesseraError('E_ARG', 'loadModel', `config.json: hidden_act '${cfg.hiddenAct}' is not supported by the ${cfg.architecture} decoder (silu only)`);
  }
}

/** An Architecture entry for a Llama-layout family. */
export function llamaFamily(name: string, architectures: string[], modelTypes: string[], o: LlamaFamilyOptions, extra: Partial<Architecture> = {}): Architecture {
  return {
    name,
    architectures,
    modelTypes,
    check: checkAct,
    weights: (cfg) => llamaWeights(cfg, o),
    build: (cfg, w, opts) => new LlamaDecoder(cfg, w, opts),
    ...extra,
  };
}

const flag = (key: string) => (cfg: ModelConfig) => cfg.raw[key] === true;
const never = () => false;

registerArchitecture(llamaFamily('llama', ['LlamaForCausalLM'], ['llama'], { qkvBias: flag('attention_bias'), oBias: flag('attention_bias'), mlpBias: flag('mlp_bias') }));

// Mistral: Llama's layout; a sliding window (when set) limits attention, so sequences are capped at it.
const slidingWindow = (cfg: ModelConfig) => (typeof cfg.raw.sliding_window === 'number' && cfg.raw.sliding_window > 0 ? cfg.raw.sliding_window : Infinity);
registerArchitecture(
  llamaFamily('mistral', ['MistralForCausalLM'], ['mistral'], { qkvBias: never, oBias: never, mlpBias: never }, {
    maxLength: (cfg) => Math.min(cfg.maxPositionEmbeddings, slidingWindow(cfg)),
  }),
);

// Qwen2: biases on q/k/v only; sliding-window layers are only used when use_sliding_window is set.
registerArchitecture(
  llamaFamily('qwen2', ['Qwen2ForCausalLM'], ['qwen2'], { qkvBias: () => true, oBias: never, mlpBias: never }, {
    maxLength: (cfg) => Math.min(cfg.maxPositionEmbeddings, cfg.raw.use_sliding_window === true ? slidingWindow(cfg) : Infinity),
  }),
);
