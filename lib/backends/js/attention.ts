/**
 * Scaled dot-product attention reference kernel (PyTorch SDPA layout), the oracle for the fused
 * CPU/CUDA kernels. Materializes one row of scores at a time:
 *   q [B, Hq, Sq, D], k [B, Hkv, Sk, D], v [B, Hkv, Sk, Dv] -> out [B, Hq, Sq, Dv]
 *   s_j = scale · (q_i · k_j) + mask[b, h, i, j]     for each visible key j
 *   out_i = Σ_j softmax(s)_j · v_j                    (max-subtracted, float64)
 * GQA/MQA: Hq % Hkv == 0 and query head h reads kv head floor(h / (Hq / Hkv)).
 * Causal: query i sits at absolute position kvOffset + i and sees key j iff j <= kvOffset + i
 * (the op layer passes kvOffset = Sk - Sq, aligning the causal diagonal to the end for KV-cache decode).
 * mask: optional additive float mask broadcastable to [B, Hq, Sq, Sk], read through broadcast strides.
 * A query row with no visible key (causal with kvOffset + i < 0, or every score -Infinity from the
 * mask) outputs ZEROS. This is a deliberate choice; torch returns NaN for such rows.
 */
import { Arr, Num, Out, broadcastStrides } from './types';

export interface AttentionOptions {
  causal: boolean;
  scale: number;
  kvOffset: number;
  mask?: Arr | null;
}

function f64(x: Num): Float64Array {
  return x instanceof Float64Array ? x : Float64Array.from(x);
}

export function attention(q: Arr, k: Arr, v: Arr, opts: AttentionOptions): Out {
  const [B, Hq, Sq, D] = q.shape;
  const Hkv = k.shape[1];
  const Sk = k.shape[2];
  const Dv = v.shape[3];
  const group = Hq / Hkv;
  const Q = f64(q.data);
  const Kd = f64(k.data);
  const V = f64(v.data);
  const mask = opts.mask ?? null;
  const M = mask ? f64(mask.data) : null;
  const ms = mask ? broadcastStrides(mask.shape, [B, Hq, Sq, Sk]) : [0, 0, 0, 0];
  const O = new Float64Array(B * Hq * Sq * Dv);
  const s = new Float64Array(Sk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      const kBase = (b * Hkv + hk) * Sk * D;
      const vBase = (b * Hkv + hk) * Sk * Dv;
      for (let i = 0; i < Sq; i++) {
        const qRow = ((b * Hq + h) * Sq + i) * D;
        const oRow = ((b * Hq + h) * Sq + i) * Dv;
        const mRow = b * ms[0] + h * ms[1] + i * ms[2];
        // Keys 0..visible-1 are visible (all of them when not causal).
        const visible = opts.causal ? Math.max(0, Math.min(Sk, opts.kvOffset + i + 1)) : Sk;
        let mx = -Infinity;
        for (let j = 0; j < visible; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += Q[qRow + d] * Kd[kBase + j * D + d];
          let sc = opts.scale * dot;
          if (M) sc += M[mRow + j * ms[3]];
          s[j] = sc;
          mx = Math.max(mx, sc);
        }
        if (mx === -Infinity) continue; // no visible key: the row stays zero
        let sum = 0;
        for (let j = 0; j < visible; j++) {
          s[j] = Math.exp(s[j] - mx);
          sum += s[j];
        }
        for (let j = 0; j < visible; j++) {
          const p = s[j] / sum;
          for (let d = 0; d < Dv; d++) O[oRow + d] += p * V[vBase + j * Dv + d];
        }
      }
    }
  }
  return { data: O, shape: [B, Hq, Sq, Dv] };
}
