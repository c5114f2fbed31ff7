/**
 * Normalization reference kernels over the last dim: RMSNorm and LayerNorm.
 * x is [..., D] contiguous, so row r is x[r*D .. r*D+D). Weight and bias are [D] (null = absent).
 * Two passes per row in float64 (statistics, then scale), the plain textbook formulas.
 */
import { Arr, Out } from './types';

/** rmsNorm: x / sqrt(mean(x^2) + eps) * w, over the last dim. */
export function rmsNorm(x: Arr, w: Arr | null, eps: number): Out {
  const D = x.shape[x.shape.length - 1];
  const src = x.data;
  const o = new Float64Array(src.length);
  const rows = D === 0 ? 0 : src.length / D;
  const wd = w ? w.data : null;
  for (let r = 0; r < rows; r++) {
    const base = r * D;
    let ss = 0;
    for (let i = 0; i < D; i++) ss += src[base + i] * src[base + i];
    const inv = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) o[base + i] = src[base + i] * inv * (wd ? wd[i] : 1);
  }
  return { data: o, shape: x.shape.slice() };
}

/** layerNorm: (x - mean) / sqrt(var + eps) * w + b over the last dim; biased variance like torch. */
export function layerNorm(x: Arr, w: Arr | null, b: Arr | null, eps: number): Out {
  const D = x.shape[x.shape.length - 1];
  const src = x.data;
  const o = new Float64Array(src.length);
  const rows = D === 0 ? 0 : src.length / D;
  const wd = w ? w.data : null;
  const bd = b ? b.data : null;
  for (let r = 0; r < rows; r++) {
    const base = r * D;
    let mean = 0;
    for (let i = 0; i < D; i++) mean += src[base + i];
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (src[base + i] - mean) * (src[base + i] - mean);
    const inv = 1 / Math.sqrt(v / D + eps);
    for (let i = 0; i < D; i++) o[base + i] = (src[base + i] - mean) * inv * (wd ? wd[i] : 1) + (bd ? bd[i] : 0);
  }
  return { data: o, shape: x.shape.slice() };
}
