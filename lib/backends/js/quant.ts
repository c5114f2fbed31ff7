/**
 * Pure-JS reference kernels for quantized weights and low-precision matmul: the oracle that the native
 * and CUDA qgemm kernels are tested against. Simple loops, float64 math except where the emulated
 * low-precision arithmetic is the point. Raw arrays in, raw arrays out; the op layer wraps Tensors.
 *
 * Weight layout. `qmatmulRef(x, M, q) = x @ dequant(q)` with x [M, K] and the weight of logical shape
 * [K, N] (K = reduction dim = rows, N = output features = columns), row-major, element (k, n) at k*N + n.
 *
 * Scales. One scale per output channel n and per group of `groupSize` consecutive rows along K:
 * scales [G, N] with G = ceil(K / groupSize), element (g, n) at g*N + n; the last group is shorter when
 * groupSize does not divide K. groupSize >= K (stored as K) is per-channel, scales [1, N]. `perTensor`
 * is a single scale, scales [1]. Scales are float32 and quantization divides by the float32-rounded
 * scale, so dequant(q) = (q - zero) * scale is the exact inverse the kernels see.
 *
 * Storage of `values`:
 *   int8           Int8Array [K*N], symmetric, q in [-127, 127] (decode also accepts -128)
 *   int4           Uint8Array [ceil(K*N/2)], two's-complement nibbles in [-8, 7], symmetric
 *   uint4          Uint8Array [ceil(K*N/2)], nibbles in [0, 15] with float32 integer zero points
 *                  `zeros` shaped like `scales` (asymmetric quantization)
 *   float8_e4m3fn  Uint8Array [K*N] of e4m3fn bit patterns (bias 7, no inf, NaN = 0x7f/0xff, max 448)
 * int4/uint4 pack element 2i in the low nibble of byte i and 2i+1 in the high nibble, in row-major element
 * order; for odd K*N the last high nibble is 0.
 *
 * Quantization (round = round-half-even throughout, computed in float64 on the float32 scale):
 *   int8 sym   scale = fround(maxabs/127)  q = clamp(round(w/scale), -127, 127)
 *   int4 sym   scale = fround(maxabs/7)    q = clamp(round(w/scale), -8, 7)
 *   uint4      [min, max] widened to include 0; scale = fround((max-min)/15),
 *              zero = clamp(round(-min/scale), 0, 15), q = clamp(round(w/scale) + zero, 0, 15)
 *   fp8 e4m3fn scale = fround(maxabs/448)  q = e4m3(w/scale), round-to-nearest-even, saturating to ±448
 * A scale that comes out 0 (all-zero group, or float32 underflow) is stored as 1 so zeros stay zero.
 * Error bounds: |w - dequant| <= scale/2 for the integer formats (up to float32 scale rounding), and
 * <= 2^-4 |w| for fp8 normals (absolute 2^-10 * scale in the subnormal range).
 *
 * Matmul emulation (qmatmulRef):
 *   int8  W8A8: per row m, dynamic symmetric activation quantization sx = fround(maxabs(x[m,:])/127)
 *         (0 -> 1), xq = clamp(round(x/sx), -127, 127); per K-group g an exact integer dot product
 *         acc_g = sum_k xq*wq (|acc| < 2^53 for any K below ~5e11, so JS numbers are exact);
 *         out[m,n] = sum_g acc_g * sx * scale[g,n] in float64, g ascending. A row of x with a
 *         non-finite value yields a NaN output row. x is used as given: pass float32 data to match a
 *         kernel fed float32 activations.
 *   int4 / uint4 / fp8  weight-only: w = fround((q - zero) * scale), x = fround(x), sum over k ascending
 *         in float64, i.e. the exact value a float32-accumulating kernel approximates; such a kernel
 *         stays within about K * 2^-24 * sum|x*w| of it.
 *   int4 / uint4 with act8  W4A8: the W8A8 arithmetic with one activation scale per row and weight group
 *         (the weight's groups: groupSize rows, or all of K per channel / per tensor): sx = fround(maxabs of
 *         x[m, group] / 127) (0 -> 1), xq = clamp(round(x/sx), -127, 127); acc = sum_k xq * (q - zero)
 *         exactly; then in float32, g ascending, each operation rounded (what a float32 kernel does, and
 *         a quarter of the cost of a float64 epilogue): out = out + (fround(acc) * sx_g) * scale[g,n]. A non-finite value
 *         anywhere in a row yields a NaN output row. Faster on CPUs (integer dot products; the decode GEMV
 *         becomes memory-bound) at the cost of rounding activations to 8 bits per group.
 */
import { TesseraError } from '../../errors';

export type QuantDtype = 'int8' | 'int4' | 'uint4' | 'float8_e4m3fn';

export interface QuantOptions {
  dtype: QuantDtype;
  /** Rows of K per scale group; null (or >= K) = per-channel. Ignored when perTensor. */
  groupSize: number | null;
  /** One scale for the whole matrix. */
  perTensor?: boolean;
  /** int8/int4/fp8 require true; false selects asymmetric uint4 (dtype 'int4' or 'uint4'). */
  symmetric: boolean;
}

export interface QuantRaw {
  dtype: QuantDtype;
  K: number;
  N: number;
  /** Rows per scale group; K for per-channel and per-tensor. */
  groupSize: number;
  perTensor: boolean;
  values: Int8Array | Uint8Array;
  /** [ceil(K/groupSize), N], or [1] when perTensor. */
  scales: Float32Array;
  /** uint4 only, same shape as scales, integer zero points in [0, 15]; null otherwise. */
  zeros: Float32Array | null;
}

type FloatArray = Float64Array | Float32Array;

const E4M3_MAX = 448;
const QMAX: Record<QuantDtype, number> = { int8: 127, int4: 7, uint4: 15, float8_e4m3fn: E4M3_MAX };

function isQuantDtype(d: unknown): d is QuantDtype {
  return typeof d === 'string' && Object.prototype.hasOwnProperty.call(QMAX, d);
}

/** Round half to even (Math.round rounds half toward +inf). */
function rne(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

// ---- float8 e4m3fn (private; lib/dtype.ts owns the public conversions, the test cross-checks both) ----

/** Largest e with 2^e <= a, for finite a > 0. */
function floorLog2(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return e;
}

/** float64 -> e4m3fn bits: round-to-nearest-even, saturating to ±448 (inf included), NaN -> 0x7f. */
function e4m3Encode(x: number): number {
  if (Number.isNaN(x)) return 0x7f;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  const a = Math.abs(x);
  if (a >= E4M3_MAX) return sign | 0x7e;
  if (a === 0) return sign;
  // Quantum of the binade (subnormals share the quantum of the lowest normal binade, 2^-9).
  const quantum = 2 ** (Math.max(floorLog2(a), -6) - 3);
  const v = rne(a / quantum) * quantum; // a / quantum is exact: quantum is a power of two
  if (v >= E4M3_MAX) return sign | 0x7e;
  if (v < 2 ** -6) return sign | (v / 2 ** -9); // subnormal mantissa 0..7 (8 would be 2^-6, normal)
  const e = floorLog2(v);
  return sign | ((e + 7) << 3) | (v / 2 ** e * 8 - 8);
}

function e4m3Decode(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const man = b & 7;
  if (exp === 15 && man === 7) return NaN;
  return sign * (exp === 0 ? man * 2 ** -9 : (1 + man / 8) * 2 ** (exp - 7));
}

// ---- int4 packing ----

/** Packs int4 (signed, [-8, 7]) or uint4 ([0, 15]) values two per byte, element 2i in the low nibble. */
export function packInt4(vals: ArrayLike<number>, signed: boolean): Uint8Array {
  const lo = signed ? -8 : 0;
  const hi = signed ? 7 : 15;
  const out = new Uint8Array(Math.ceil(vals.length / 2));
  for (let i = 0; i < vals.length; i++) {
    const v = vals[i];
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new TesseraError('E_ARG', 'packInt4', `value ${v} at index ${i} is not an integer in [${lo}, ${hi}]`);
    }
    out[i >> 1] |= (v & 0xf) << ((i & 1) * 4);
  }
  return out;
}

/** Inverse of packInt4: the first n nibbles, sign-extended when signed. */
export function unpackInt4(bytes: Uint8Array, n: number, signed: boolean): Int8Array {
  checkCount('unpackInt4', 'n', n, 0);
  if (bytes.length < Math.ceil(n / 2)) {
    throw new TesseraError('E_SHAPE', 'unpackInt4', `${n} values need ${Math.ceil(n / 2)} bytes, got ${bytes.length}`);
  }
  const out = new Int8Array(n);
  for (let i = 0; i < n; i++) {
    const nib = (bytes[i >> 1] >> ((i & 1) * 4)) & 0xf;
    out[i] = signed && nib >= 8 ? nib - 16 : nib;
  }
  return out;
}

// ---- validation ----

function checkCount(op: string, name: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) {
    throw new TesseraError('E_ARG', op, `${name} must be an integer >= ${min}, got ${String(v)}`);
  }
}

function checkLength(op: string, name: string, arr: ArrayLike<number>, want: number): void {
  if (arr.length !== want) throw new TesseraError('E_SHAPE', op, `${name} has length ${arr.length}, expected ${want}`);
}

function groupCount(q: { K: number; groupSize: number; perTensor: boolean }): number {
  return q.perTensor ? 1 : Math.ceil(q.K / q.groupSize);
}

/** Structural check of a QuantRaw (sizes, types, value ranges). Returns an error message or null. */
export function validateQuantRaw(q: QuantRaw): string | null {
  if (typeof q !== 'object' || q === null) return 'not an object';
  if (!isQuantDtype(q.dtype)) return `unknown dtype ${String(q.dtype)}`;
  for (const [name, v] of [['K', q.K], ['N', q.N], ['groupSize', q.groupSize]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) return `${name} must be a positive integer, got ${String(v)}`;
  }
  if (q.groupSize > q.K) return `groupSize ${q.groupSize} exceeds K ${q.K} (per-channel is groupSize = K)`;
  if (q.perTensor && q.groupSize !== q.K) return `perTensor requires groupSize = K`;
  const kn = q.K * q.N;
  const four = q.dtype === 'int4' || q.dtype === 'uint4';
  const wantType = q.dtype === 'int8' ? Int8Array : Uint8Array;
  if (!(q.values instanceof wantType)) return `${q.dtype} values must be a ${wantType.name}`;
  const wantLen = four ? Math.ceil(kn / 2) : kn;
  if (q.values.length !== wantLen) return `values has length ${q.values.length}, expected ${wantLen}`;
  if (four && kn % 2 === 1 && q.values[wantLen - 1] >> 4 !== 0) return `padding nibble of the last byte is not 0`;
  const ns = q.perTensor ? 1 : groupCount(q) * q.N;
  if (!(q.scales instanceof Float32Array) || q.scales.length !== ns) return `scales must be a Float32Array of length ${ns}`;
  for (let i = 0; i < ns; i++) if (!Number.isFinite(q.scales[i])) return `scale ${i} is not finite`;
  if (q.dtype === 'uint4') {
    if (!(q.zeros instanceof Float32Array) || q.zeros.length !== ns) return `zeros must be a Float32Array of length ${ns}`;
    for (let i = 0; i < ns; i++) {
      const z = q.zeros[i];
      if (!Number.isInteger(z) || z < 0 || z > 15) return `zero point ${i} = ${z} is not an integer in [0, 15]`;
    }
  } else if (q.zeros !== null) {
    return `zeros must be null for ${q.dtype}`;
  }
  return null;
}

function assertValid(op: string, q: QuantRaw): void {
  const err = validateQuantRaw(q);
  if (err !== null) throw new TesseraError('E_ARG', op, `invalid QuantRaw: ${err}`);
}

// ---- quantize / dequantize ----

/** Quantizes w [K, N] (row-major) per the header comment. */
export function quantizeRef(w: FloatArray, K: number, N: number, opts: QuantOptions): QuantRaw {
  const op = 'quantizeRef';
  checkCount(op, 'K', K, 1);
  checkCount(op, 'N', N, 1);
  checkLength(op, 'w', w, K * N);
  const perTensor = opts.perTensor === true;
  let dtype = opts.dtype;
  if (!isQuantDtype(dtype)) throw new TesseraError('E_DTYPE', op, `unsupported dtype ${String(dtype)}`);
  if (opts.symmetric) {
    if (dtype === 'uint4') throw new TesseraError('E_ARG', op, `uint4 is asymmetric: pass symmetric: false`);
  } else {
    if (dtype !== 'int4' && dtype !== 'uint4') {
      throw new TesseraError('E_ARG', op, `asymmetric quantization is only supported for int4/uint4, not ${dtype}`);
    }
    dtype = 'uint4';
  }
  let groupSize = K;
  if (opts.groupSize !== null) {
    checkCount(op, 'groupSize', opts.groupSize, 1);
    if (perTensor && opts.groupSize < K) {
      throw new TesseraError('E_ARG', op, `perTensor conflicts with groupSize ${opts.groupSize} < K ${K}`);
    }
    groupSize = Math.min(opts.groupSize, K);
  }
  for (let i = 0; i < w.length; i++) {
    if (!Number.isFinite(w[i])) throw new TesseraError('E_ARG', op, `weight ${i} is not finite (${w[i]})`);
  }

  const G = perTensor ? 1 : Math.ceil(K / groupSize);
  const cols = perTensor ? 1 : N; // scale columns
  const scales = new Float32Array(G * cols);
  const zeros = dtype === 'uint4' ? new Float32Array(G * cols) : null;
  const qmax = QMAX[dtype];
  // Scale (and zero) per (group, column); for perTensor the single "group" spans every element.
  for (let g = 0; g < G; g++) {
    for (let c = 0; c < cols; c++) {
      const k0 = g * groupSize;
      const k1 = perTensor ? K : Math.min(K, k0 + groupSize);
      const n0 = perTensor ? 0 : c;
      const n1 = perTensor ? N : c + 1;
      let lo = 0;
      let hi = 0;
      for (let k = k0; k < k1; k++) {
        for (let n = n0; n < n1; n++) {
          const v = w[k * N + n];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
      let s = zeros ? Math.fround((hi - lo) / qmax) : Math.fround(Math.max(hi, -lo) / qmax);
      if (s === 0) s = 1;
      scales[g * cols + c] = s;
      if (zeros) zeros[g * cols + c] = clamp(rne(-lo / s), 0, 15) + 0; // + 0: no -0 zero point when lo = 0
    }
  }

  const codes = new Int32Array(K * N); // integer codes, or e4m3 bits for fp8
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      const si = perTensor ? 0 : Math.floor(k / groupSize) * N + n;
      const r = w[k * N + n] / scales[si];
      let code: number;
      if (dtype === 'float8_e4m3fn') code = e4m3Encode(r);
      else if (dtype === 'uint4') code = clamp(rne(r) + zeros![si], 0, 15);
      else code = clamp(rne(r), dtype === 'int4' ? -8 : -127, qmax);
      codes[k * N + n] = code;
    }
  }
  let values: Int8Array | Uint8Array;
  if (dtype === 'int8') values = Int8Array.from(codes);
  else if (dtype === 'float8_e4m3fn') values = Uint8Array.from(codes);
  else values = packInt4(codes, dtype === 'int4');
  return { dtype, K, N, groupSize, perTensor, values, scales, zeros };
}

/** Integer codes (e4m3 decoded to its value for fp8), row-major [K*N]. */
function decodeCodes(q: QuantRaw): Float64Array {
  const kn = q.K * q.N;
  const out = new Float64Array(kn);
  if (q.dtype === 'int4' || q.dtype === 'uint4') out.set(unpackInt4(q.values as Uint8Array, kn, q.dtype === 'int4'));
  else if (q.dtype === 'float8_e4m3fn') for (let i = 0; i < kn; i++) out[i] = e4m3Decode(q.values[i]);
  else out.set(q.values);
  return out;
}

function scaleIndex(q: QuantRaw, k: number, n: number): number {
  return q.perTensor ? 0 : Math.floor(k / q.groupSize) * q.N + n;
}

/** dequant(q)[k, n] = (code - zero) * scale, exact in float64 (<= 28 significant bits). */
export function dequantizeRef(q: QuantRaw): Float64Array {
  assertValid('dequantizeRef', q);
  const out = decodeCodes(q);
  for (let k = 0; k < q.K; k++) {
    for (let n = 0; n < q.N; n++) {
      const si = scaleIndex(q, k, n);
      const z = q.zeros ? q.zeros[si] : 0;
      out[k * q.N + n] = (out[k * q.N + n] - z) * q.scales[si];
    }
  }
  return out;
}

// ---- matmul ----

/** out [M, N] = x [M, K] @ dequant(q), with the low-precision arithmetic of the header comment. */
export function qmatmulRef(x: FloatArray, M: number, q: QuantRaw, act8 = false): Float64Array {
  const op = 'qmatmulRef';
  checkCount(op, 'M', M, 0);
  assertValid(op, q);
  const { K, N } = q;
  checkLength(op, 'x', x, M * K);
  if (act8 && q.dtype !== 'int4' && q.dtype !== 'uint4') {
    throw new TesseraError('E_ARG', op, `int8 activations (W4A8) need int4 or uint4 weights, got ${q.dtype}`);
  }
  if (act8) return w4a8(x, M, q);
  return q.dtype === 'int8' ? w8a8(x, M, q) : weightOnly(x, M, q);
}

function w4a8(x: FloatArray, M: number, q: QuantRaw): Float64Array {
  const { K, N } = q;
  const G = groupCount(q);
  const gs = q.perTensor ? K : q.groupSize;
  const codes = decodeCodes(q);
  const out = new Float64Array(M * N);
  const xq = new Float64Array(gs);
  const acc = new Float64Array(N);
  for (let m = 0; m < M; m++) {
    let finite = true;
    for (let k = 0; k < K; k++) finite = finite && Number.isFinite(x[m * K + k]);
    if (!finite) {
      out.fill(NaN, m * N, (m + 1) * N);
      continue;
    }
    for (let g = 0; g < G; g++) {
      const k0 = g * gs;
      const k1 = Math.min(K, k0 + gs);
      let maxabs = 0;
      for (let k = k0; k < k1; k++) maxabs = Math.max(maxabs, Math.abs(x[m * K + k]));
      let sx = Math.fround(maxabs / 127);
      if (sx === 0) sx = 1;
      for (let k = k0; k < k1; k++) xq[k - k0] = clamp(rne(x[m * K + k] / sx), -127, 127);
      acc.fill(0);
      for (let k = k0; k < k1; k++) {
        for (let n = 0; n < N; n++) {
          const si = q.perTensor ? 0 : g * N + n;
          acc[n] += xq[k - k0] * (codes[k * N + n] - (q.zeros ? q.zeros[si] : 0));
        }
      }
      for (let n = 0; n < N; n++) {
        const term = Math.fround(Math.fround(Math.fround(acc[n]) * sx) * q.scales[q.perTensor ? 0 : g * N + n]);
        out[m * N + n] = Math.fround(out[m * N + n] + term);
      }
    }
  }
  return out;
}

function w8a8(x: FloatArray, M: number, q: QuantRaw): Float64Array {
  const { K, N } = q;
  const G = groupCount(q);
  const gs = q.groupSize;
  const wq = q.values as Int8Array;
  const out = new Float64Array(M * N);
  const xq = new Float64Array(K);
  const acc = new Float64Array(N);
  for (let m = 0; m < M; m++) {
    let maxabs = 0;
    for (let k = 0; k < K; k++) maxabs = Math.max(maxabs, Math.abs(x[m * K + k]));
    if (!Number.isFinite(maxabs)) {
      out.fill(NaN, m * N, (m + 1) * N);
      continue;
    }
    let sx = Math.fround(maxabs / 127);
    if (sx === 0) sx = 1;
    for (let k = 0; k < K; k++) xq[k] = clamp(rne(x[m * K + k] / sx), -127, 127);
    for (let g = 0; g < G; g++) {
      acc.fill(0);
      for (let k = g * gs; k < Math.min(K, (g + 1) * gs); k++) {
        for (let n = 0; n < N; n++) acc[n] += xq[k] * wq[k * N + n];
      }
      for (let n = 0; n < N; n++) out[m * N + n] += acc[n] * sx * q.scales[q.perTensor ? 0 : g * N + n];
    }
  }
  return out;
}

function weightOnly(x: FloatArray, M: number, q: QuantRaw): Float64Array {
  const { K, N } = q;
  const wf = dequantizeRef(q).map(Math.fround); // float32 weights, as the kernel's dequant produces
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      const xv = Math.fround(x[m * K + k]);
      for (let n = 0; n < N; n++) out[m * N + n] += xv * wf[k * N + n];
    }
  }
  return out;
}
