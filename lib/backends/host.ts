/** Host-side glue shared by the js and cpu backends: Tensor <-> raw arrays without needless copies. */
import { DType, Storage as HostArray, decode, encode } from '../dtype';
import { Tensor } from '../tensor';
import { Arr, Out } from './js/types';

/** Contiguous host storage of t, without copying when t already is a whole contiguous block. */
export function hostStorage(t: Tensor): HostArray {
  const s = t._s;
  if (s.host && t.isContiguous() && t.offset === 0 && s.numel === t.size) return s.host;
  return t._hostContiguous('kernel');
}

/** Float32Array of t's values (shared, read-only, when t is a whole contiguous float32 block). */
export function f32View(t: Tensor): Float32Array {
  if (t.dtype === 'float32') return hostStorage(t) as Float32Array;
  return decode(t.dtype, hostStorage(t), t.size, new Float32Array(t.size)) as Float32Array;
}

/** The values of t as a raw array for the reference kernels (float32/float64 shared, others decoded). */
export function toArr(t: Tensor): Arr {
  const shape = t.shape.slice();
  if (t.dtype === 'float32' || t.dtype === 'float64') return { data: hostStorage(t) as Float32Array | Float64Array, shape };
  return { data: decode(t.dtype, hostStorage(t), t.size) as Float64Array, shape };
}

/** A new host tensor of dtype from kernel output (values rounded to dtype, round-to-nearest-even). */
export function fromOut(o: Out | { data: Float32Array | Float64Array; shape: number[] }, dtype: DType): Tensor {
  const data = dtype === 'float64' && o.data instanceof Float64Array ? o.data : encode(dtype, o.data, o.data.length);
  return Tensor._fromHost(dtype, o.shape, data as HostArray);
}
