/** 'js' backend kernels for quantized and sparse ops: Tensors <-> the raw formats of quant.ts / sparse.ts. */
import { DType, Storage as HostArray } from '../../dtype';
import { registerKernel } from '../../registry';
import { Tensor } from '../../tensor';
import { fromOut, hostStorage, toArr } from '../host';
import { QuantDtype, QuantRaw, dequantizeRef, qmatmulRef, quantizeRef } from './quant';
import { Sparse24Raw, CsrRaw, csrFromDense, csrToDense, sparse24FromDense, sparse24ToDense, spmm24Ref, spmmCsrRef } from './sparse';

interface QAttrs { qdtype: QuantDtype; K: number; N: number; groupSize: number; perTensor: boolean; outDtype: DType }

const VALUE_DTYPE: Record<QuantDtype, DType> = { int8: 'int8', int4: 'int4', uint4: 'uint4', float8_e4m3fn: 'float8_e4m3fn' };

/** QuantizedTensor parts (values, scales[, zeros]) back to the raw reference format. */
export function quantRaw(parts: Tensor[], at: QAttrs): QuantRaw {
  return {
    dtype: at.qdtype,
    K: at.K,
    N: at.N,
    groupSize: at.groupSize,
    perTensor: at.perTensor,
    values: hostStorage(parts[0]) as Int8Array | Uint8Array,
    scales: hostStorage(parts[1]) as Float32Array,
    zeros: parts[2] ? (hostStorage(parts[2]) as Float32Array) : null,
  };
}

export function sparseRaw(format: string, parts: Tensor[], M: number, K: number): CsrRaw | Sparse24Raw {
  if (format === 'csr') {
    return { M, K, rowPtr: hostStorage(parts[0]) as Int32Array, colIdx: hostStorage(parts[1]) as Int32Array, values: toArr(parts[2]).data };
  }
  return { M, K, values: toArr(parts[0]).data, meta: hostStorage(parts[1]) as Uint8Array };
}

registerKernel({
  op: 'quantize',
  backend: 'js',
  run(inputs: Tensor[], at: QAttrs & { symmetric: boolean }) {
    const w = toArr(inputs[0]).data;
    const q = quantizeRef(w, at.K, at.N, { dtype: at.qdtype, groupSize: at.groupSize, perTensor: at.perTensor, symmetric: at.symmetric });
    const G = at.perTensor ? 1 : Math.ceil(at.K / at.groupSize);
    const sShape = at.perTensor ? [1] : [G, at.N];
    const out = [
      Tensor._fromHost(VALUE_DTYPE[q.dtype], [at.K, at.N], q.values as HostArray),
      Tensor._fromHost('float32', sShape, q.scales),
    ];
    if (q.zeros) out.push(Tensor._fromHost('float32', sShape, q.zeros));
    return out;
  },
});

registerKernel({
  op: 'dequantize',
  backend: 'js',
  run: (inputs: Tensor[], at: QAttrs) => fromOut({ data: dequantizeRef(quantRaw(inputs, at)), shape: [at.K, at.N] }, at.outDtype),
});

registerKernel({
  op: 'qmatmul',
  backend: 'js',
  variant: (_i: Tensor[], at: QAttrs & { act8?: boolean }) =>
    (at.qdtype === 'int8' ? 'qgemm_w8a8_js' : at.act8 ? `qgemm_${at.qdtype}_a8_js` : `qgemm_${at.qdtype}_weight_only_js`),
  run(inputs: Tensor[], at: QAttrs & { M: number; outShape: number[]; act8?: boolean }) {
    const x = toArr(inputs[0]).data;
    return fromOut({ data: qmatmulRef(x, at.M, quantRaw(inputs.slice(1), at), !!at.act8), shape: at.outShape }, at.outDtype);
  },
});

registerKernel({
  op: 'sparseFromDense',
  backend: 'js',
  run(inputs: Tensor[], at: { format: string; outDtype: DType }) {
    const [M, K] = inputs[0].shape;
    const a = toArr(inputs[0]).data;
    if (at.format === 'csr') {
      const c = csrFromDense(a, M, K);
      return [
        Tensor._fromHost('int32', [M + 1], c.rowPtr),
        Tensor._fromHost('int32', [c.colIdx.length], c.colIdx),
        fromOut({ data: c.values, shape: [c.values.length] }, at.outDtype),
      ];
    }
    const s = sparse24FromDense(a, M, K);
    const G = Math.ceil(K / 4);
    return [fromOut({ data: s.values, shape: [M, 2 * G] }, at.outDtype), Tensor._fromHost('uint8', [M, Math.ceil(G / 2)], s.meta)];
  },
});

registerKernel({
  op: 'sparseToDense',
  backend: 'js',
  run(inputs: Tensor[], at: { format: string; M: number; K: number; outDtype: DType }) {
    const raw = sparseRaw(at.format, inputs, at.M, at.K);
    const d = at.format === 'csr' ? csrToDense(raw as CsrRaw) : sparse24ToDense(raw as Sparse24Raw);
    return fromOut({ data: d, shape: [at.M, at.K] }, at.outDtype);
  },
});

registerKernel({
  op: 'spmm',
  backend: 'js',
  variant: (_i: Tensor[], at: { format: string }) => (at.format === 'csr' ? 'spmm_csr_js' : 'spmm_2to4_js'),
  run(inputs: Tensor[], at: { format: string; M: number; K: number; N: number; outDtype: DType }) {
    const b = toArr(inputs[inputs.length - 1]).data;
    const raw = sparseRaw(at.format, inputs.slice(0, -1), at.M, at.K);
    const d = at.format === 'csr' ? spmmCsrRef(raw as CsrRaw, b, at.N) : spmm24Ref(raw as Sparse24Raw, b, at.N);
    return fromOut({ data: d, shape: [at.M, at.N] }, at.outDtype);
  },
});
