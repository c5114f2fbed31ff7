/**
 * Pure-JS reference kernels for sparse @ dense matmul: the oracle for the native and CUDA spmm kernels.
 * Raw arrays in, raw arrays out (the op layer wraps Tensors). Both spmm kernels walk the stored structure,
 * as a fast kernel does, never a densified copy, and accumulate in float64 in increasing k order per
 * output element, so for finite B they equal densify-then-naive-matmul bit for bit. Structural zeros are
 * never multiplied: an Inf/NaN in B meets only stored entries (cuSPARSE semantics, unlike a dense GEMM).
 *
 * CSR, A [M, K]: rowPtr Int32Array [M+1] (rowPtr[0] = 0, non-decreasing, rowPtr[M] = nnz), colIdx
 * Int32Array [nnz] strictly increasing within a row, values [nnz] (Float64Array or Float32Array, the type
 * of the dense input). csrFromDense stores exactly the entries that are !== 0: -0 is a zero, NaN is
 * stored.
 *
 * 2:4 structured sparsity along K (the reduction dim of A [M, K]), the layout of sparse tensor cores:
 * each row is cut into G = ceil(K/4) groups of 4; the last group is padded with zeros past K. Every group
 * keeps exactly 2 slots, so the format is uniform:
 *   values [M, G*2]   kept values of row m, group g at (m*G + g)*2 + {0, 1}, in increasing index order
 *   meta   [M, ceil(G/2)] bytes; group g of row m is the nibble i0 | (i1 << 2) (i0 < i1 in [0, 3], the
 *          positions inside the group), group 2j in the low nibble of byte m*ceil(G/2) + j. Each row starts
 *          on a byte boundary; for odd G the unused high nibble of a row's last byte is 0.
 * Selection keeps the 2 largest |v| (NaN ranks above every number; ties go to the lower index), so a
 * group with fewer than 2 nonzeros also keeps its lowest-index zeros. A kept slot at a padded position
 * (4g + i >= K) holds 0 and is skipped by the kernels.
 */
import { TesseraError } from '../../errors';

type FloatArray = Float64Array | Float32Array;

export interface CsrRaw {
  M: number;
  K: number;
  rowPtr: Int32Array;
  colIdx: Int32Array;
  values: FloatArray;
}

export interface Sparse24Raw {
  M: number;
  K: number;
  values: FloatArray;
  meta: Uint8Array;
}

function checkCount(op: string, name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new TesseraError('E_ARG', op, `${name} must be a non-negative integer, got ${String(v)}`);
  }
}

function checkLength(op: string, name: string, arr: ArrayLike<number>, want: number): void {
  if (arr.length !== want) throw new TesseraError('E_SHAPE', op, `${name} has length ${arr.length}, expected ${want}`);
}

function dimsError(M: unknown, K: unknown): string | null {
  for (const [name, v] of [['M', M], ['K', K]] as const) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      return `${name} must be a non-negative integer, got ${String(v)}`;
    }
  }
  return null;
}

function isFloatArray(v: unknown): v is FloatArray {
  return v instanceof Float64Array || v instanceof Float32Array;
}

function newLike(a: FloatArray, n: number): FloatArray {
  return a instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
}

// ---- CSR ----

/** A [M, K] dense row-major -> CSR of its entries !== 0. */
export function csrFromDense(a: FloatArray, M: number, K: number): CsrRaw {
  const op = 'csrFromDense';
  checkCount(op, 'M', M);
  checkCount(op, 'K', K);
  checkLength(op, 'a', a, M * K);
  let nnz = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) nnz++;
  if (nnz > 0x7fffffff) throw new TesseraError('E_ARG', op, `${nnz} nonzeros overflow int32 indices`);
  const rowPtr = new Int32Array(M + 1);
  const colIdx = new Int32Array(nnz);
  const values = newLike(a, nnz);
  let p = 0;
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      const v = a[m * K + k];
      if (v !== 0) {
        colIdx[p] = k;
        values[p++] = v;
      }
    }
    rowPtr[m + 1] = p;
  }
  return { M, K, rowPtr, colIdx, values };
}

/** Structural check of a CSR matrix. Returns an error message or null. */
export function validateCsr(c: CsrRaw): string | null {
  if (typeof c !== 'object' || c === null) return 'not an object';
  const dims = dimsError(c.M, c.K);
  if (dims !== null) return dims;
  const { M, K, rowPtr, colIdx, values } = c;
  if (!(rowPtr instanceof Int32Array) || rowPtr.length !== M + 1) return `rowPtr must be an Int32Array of length M+1 = ${M + 1}`;
  if (!(colIdx instanceof Int32Array)) return 'colIdx must be an Int32Array';
  if (!isFloatArray(values)) return 'values must be a Float64Array or Float32Array';
  if (rowPtr[0] !== 0) return `rowPtr[0] = ${rowPtr[0]}, expected 0`;
  const nnz = rowPtr[M];
  if (colIdx.length !== nnz || values.length !== nnz) {
    return `rowPtr[M] = ${nnz} but colIdx has ${colIdx.length} and values ${values.length} entries`;
  }
  for (let m = 0; m < M; m++) {
    if (rowPtr[m + 1] < rowPtr[m]) return `rowPtr decreases at row ${m}: ${rowPtr[m]} > ${rowPtr[m + 1]}`;
  }
  for (let m = 0; m < M; m++) {
    for (let p = rowPtr[m]; p < rowPtr[m + 1]; p++) {
      const k = colIdx[p];
      if (k < 0 || k >= K) return `colIdx[${p}] = ${k} outside [0, ${K}) in row ${m}`;
      if (p > rowPtr[m] && k <= colIdx[p - 1]) return `columns not strictly increasing in row ${m} at entry ${p}`;
    }
  }
  return null;
}

function assertCsr(op: string, c: CsrRaw): void {
  const err = validateCsr(c);
  if (err !== null) throw new TesseraError('E_ARG', op, `invalid CSR: ${err}`);
}

export function csrToDense(c: CsrRaw): Float64Array {
  assertCsr('csrToDense', c);
  const out = new Float64Array(c.M * c.K);
  for (let m = 0; m < c.M; m++) {
    for (let p = c.rowPtr[m]; p < c.rowPtr[m + 1]; p++) out[m * c.K + c.colIdx[p]] = c.values[p];
  }
  return out;
}

/** out [M, N] = A (CSR, [M, K]) @ b [K, N] dense row-major, float64 accumulation. */
export function spmmCsrRef(c: CsrRaw, b: FloatArray, N: number): Float64Array {
  const op = 'spmmCsrRef';
  assertCsr(op, c);
  checkCount(op, 'N', N);
  checkLength(op, 'b', b, c.K * N);
  const out = new Float64Array(c.M * N);
  for (let m = 0; m < c.M; m++) {
    for (let p = c.rowPtr[m]; p < c.rowPtr[m + 1]; p++) {
      const v = c.values[p];
      const bk = c.colIdx[p] * N;
      for (let n = 0; n < N; n++) out[m * N + n] += v * b[bk + n];
    }
  }
  return out;
}

// ---- 2:4 structured ----

function metaStride(K: number): number {
  return Math.ceil(Math.ceil(K / 4) / 2);
}

/** Positions (i0, i1) kept by group g of row m. */
function metaAt(s: Sparse24Raw, m: number, g: number): [number, number] {
  const nib = (s.meta[m * metaStride(s.K) + (g >> 1)] >> ((g & 1) * 4)) & 0xf;
  return [nib & 3, nib >> 2];
}

/** Rank key for selection: |v|, with NaN above everything. */
function rankKey(v: number): number {
  return Number.isNaN(v) ? Infinity : Math.abs(v);
}

/** A [M, K] dense -> 2:4 along K, keeping the 2 largest |v| of each group of 4 (see header). */
export function sparse24FromDense(a: FloatArray, M: number, K: number): Sparse24Raw {
  const op = 'sparse24FromDense';
  checkCount(op, 'M', M);
  checkCount(op, 'K', K);
  checkLength(op, 'a', a, M * K);
  const G = Math.ceil(K / 4);
  const stride = metaStride(K);
  const values = newLike(a, M * G * 2);
  const meta = new Uint8Array(M * stride);
  const grp = [0, 0, 0, 0];
  const key = [0, 0, 0, 0];
  for (let m = 0; m < M; m++) {
    for (let g = 0; g < G; g++) {
      for (let i = 0; i < 4; i++) {
        const k = g * 4 + i;
        grp[i] = k < K ? a[m * K + k] : 0;
        key[i] = rankKey(grp[i]);
      }
      let best = 0;
      for (let i = 1; i < 4; i++) if (key[i] > key[best]) best = i;
      let second = best === 0 ? 1 : 0;
      for (let i = 0; i < 4; i++) if (i !== best && key[i] > key[second]) second = i;
      const i0 = Math.min(best, second);
      const i1 = Math.max(best, second);
      values[(m * G + g) * 2] = grp[i0];
      values[(m * G + g) * 2 + 1] = grp[i1];
      meta[m * stride + (g >> 1)] |= (i0 | (i1 << 2)) << ((g & 1) * 4);
    }
  }
  return { M, K, values, meta };
}

/** Structural check of a 2:4 matrix. Returns an error message or null. */
export function validateSparse24(s: Sparse24Raw): string | null {
  if (typeof s !== 'object' || s === null) return 'not an object';
  const dims = dimsError(s.M, s.K);
  if (dims !== null) return dims;
  const { M, K } = s;
  const G = Math.ceil(K / 4);
  const stride = metaStride(K);
  if (!isFloatArray(s.values) || s.values.length !== M * G * 2) {
    return `values must be a Float64Array or Float32Array of length M*ceil(K/4)*2 = ${M * G * 2}`;
  }
  if (!(s.meta instanceof Uint8Array) || s.meta.length !== M * stride) {
    return `meta must be a Uint8Array of length M*ceil(ceil(K/4)/2) = ${M * stride}`;
  }
  for (let m = 0; m < M; m++) {
    if (G % 2 === 1 && s.meta[m * stride + stride - 1] >> 4 !== 0) return `row ${m}: unused meta nibble is not 0`;
    for (let g = 0; g < G; g++) {
      const [i0, i1] = metaAt(s, m, g);
      if (i0 >= i1) return `row ${m} group ${g}: indices ${i0}, ${i1} are not increasing`;
      for (const [slot, i] of [[0, i0], [1, i1]]) {
        const v = s.values[(m * G + g) * 2 + slot];
        if (g * 4 + i >= K && v !== 0) return `row ${m} group ${g}: padded position ${g * 4 + i} holds ${v}, not 0`;
      }
    }
  }
  return null;
}

function assertSparse24(op: string, s: Sparse24Raw): void {
  const err = validateSparse24(s);
  if (err !== null) throw new TesseraError('E_ARG', op, `invalid 2:4 matrix: ${err}`);
}

export function sparse24ToDense(s: Sparse24Raw): Float64Array {
  assertSparse24('sparse24ToDense', s);
  const G = Math.ceil(s.K / 4);
  const out = new Float64Array(s.M * s.K);
  for (let m = 0; m < s.M; m++) {
    for (let g = 0; g < G; g++) {
      const [i0, i1] = metaAt(s, m, g);
      for (const [slot, i] of [[0, i0], [1, i1]]) {
        const k = g * 4 + i;
        if (k < s.K) out[m * s.K + k] = s.values[(m * G + g) * 2 + slot];
      }
    }
  }
  return out;
}

/** out [M, N] = A (2:4, [M, K]) @ b [K, N] dense row-major, float64 accumulation. */
export function spmm24Ref(s: Sparse24Raw, b: FloatArray, N: number): Float64Array {
  const op = 'spmm24Ref';
  assertSparse24(op, s);
  checkCount(op, 'N', N);
  checkLength(op, 'b', b, s.K * N);
  const G = Math.ceil(s.K / 4);
  const out = new Float64Array(s.M * N);
  for (let m = 0; m < s.M; m++) {
    for (let g = 0; g < G; g++) {
      const [i0, i1] = metaAt(s, m, g);
      for (let slot = 0; slot < 2; slot++) {
        const k = g * 4 + (slot === 0 ? i0 : i1);
        if (k >= s.K) continue; // padding
        const v = s.values[(m * G + g) * 2 + slot];
        for (let n = 0; n < N; n++) out[m * N + n] += v * b[k * N + n];
      }
    }
  }
  return out;
}
