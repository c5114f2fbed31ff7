/**
 * Rotary position embedding reference kernel.
 * x is [..., S, D] contiguous (typically [B, H, S, D]); row r of x sits at sequence index r % S, whose
 * absolute position is positions[r % S]. For pair i (i < rotaryDim/2) the angle is pos * invFreq[i].
 *   rotate-half (HF Llama, default): pairs (i, i + rotaryDim/2)
 *     out[i] = x[i]·cos − x[i+half]·sin,   out[i+half] = x[i+half]·cos + x[i]·sin
 *   interleaved (GPT-J): pairs (2i, 2i+1), same formulas.
 * Dims >= rotaryDim pass through. cos/sin tables [S, half] are built once in float64.
 */
import { Arr, Out } from './types';

export interface RopeOptions {
  positions: ArrayLike<number>;
  invFreq: ArrayLike<number>;
  rotaryDim: number;
  interleaved?: boolean;
}

/** invFreq[i] = theta^(-2i/rotaryDim), i < rotaryDim/2, computed as 1 / theta^(2i/rotaryDim) like HF. */
export function ropeInvFreq(rotaryDim: number, theta: number): Float64Array {
  const half = Math.floor(rotaryDim / 2);
  const f = new Float64Array(half);
  for (let i = 0; i < half; i++) f[i] = 1 / Math.pow(theta, (2 * i) / rotaryDim);
  return f;
}

export function rope(x: Arr, opts: RopeOptions): Out {
  const rank = x.shape.length;
  const S = x.shape[rank - 2];
  const D = x.shape[rank - 1];
  const half = Math.floor(opts.rotaryDim / 2);
  const cos = new Float64Array(S * half);
  const sin = new Float64Array(S * half);
  for (let s = 0; s < S; s++) {
    for (let i = 0; i < half; i++) {
      const ang = opts.positions[s] * opts.invFreq[i];
      cos[s * half + i] = Math.cos(ang);
      sin[s * half + i] = Math.sin(ang);
    }
  }
  const src = x.data;
  const o = Float64Array.from(src); // pass-through dims keep their values
  const rows = S * D === 0 ? 0 : src.length / D;
  for (let r = 0; r < rows; r++) {
    const base = r * D;
    const t = (r % S) * half;
    for (let i = 0; i < half; i++) {
      const i0 = opts.interleaved ? base + 2 * i : base + i;
      const i1 = opts.interleaved ? i0 + 1 : i0 + half;
      const c = cos[t + i];
      const sn = sin[t + i];
      o[i0] = src[i0] * c - src[i1] * sn;
      o[i1] = src[i1] * c + src[i0] * sn;
    }
  }
  return { data: o, shape: x.shape.slice() };
}
