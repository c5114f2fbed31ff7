/**
 * Tensor: shape + strides + offset over a StorageBlock (views share storage, as in PyTorch). Strides and
 * offset count elements. Packed dtypes (int4/uint4, two per byte) never get strided views: view ops on
 * them that are not plain reshapes materialize a copy, so packed storage is always contiguous.
 * Every public method checks the tensor is alive (use after dispose() is a TesseraError).
 */
import {
  DType,
  Storage as HostArray,
  allocStorage,
  castStorage,
  decode,
  decodeF32,
  dtypeInfo,
  getElement,
  setElement,
} from './dtype';
import { TesseraError, describe } from './errors';
import { Device, StorageBlock, countTensor, deviceTable, isDetached } from './storage';
import { NOT_OPTIONS, checkDType, checkInt, checkShape, fmtList, fmtShape, normDim, numelOf } from './validate';
import { formatTensor } from './format';

const finalizer = new FinalizationRegistry<{ s: StorageBlock; device: Device }>((held) => {
  countTensor(held.device, -1);
  held.s.release();
});

export function contiguousStrides(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

export class Tensor {
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  /** @internal */ readonly _s: StorageBlock;
  private _disposed = false;
  private readonly _token = {};

  /** @internal use the creation functions (tensor, zeros, ...) instead */
  constructor(s: StorageBlock, shape: readonly number[], strides?: readonly number[], offset = 0) {
    this._s = s;
    this.dtype = s.dtype;
    this.shape = Object.freeze(shape.slice());
    this.strides = Object.freeze(strides ? strides.slice() : contiguousStrides(shape));
    this.offset = offset;
    s.retain();
    countTensor(s.device, 1);
    finalizer.register(this, { s, device: s.device }, this._token);
  }

  /** @internal wraps host storage (already in dtype's storage format) as a contiguous tensor */
  static _fromHost(dtype: DType, shape: readonly number[], data: HostArray): Tensor {
    return new Tensor(StorageBlock.host(dtype, numelOf(shape), data), shape);
  }

  get device(): Device {
    return this._s.device;
  }
  /** number of elements */
  get size(): number {
    return numelOf(this.shape);
  }
  get ndim(): number {
    return this.shape.length;
  }
  get disposed(): boolean {
    return this._disposed;
  }
  numel(): number {
    return this.size;
  }

  /** @internal throws if this tensor cannot be used */
  _check(op: string, arg = 'tensor'): this {
    if (this._disposed || this._s.freed) {
      throw new TesseraError('E_DISPOSED', op, `${arg} (${this.dtype} ${fmtShape(this.shape)}) was used after dispose()`);
    }
    if (this._s.host && isDetached(this._s.host)) {
      throw new TesseraError('E_DETACHED', op, `${arg}'s memory was detached (its ArrayBuffer was transferred)`);
    }
    return this;
  }

  isContiguous(): boolean {
    let acc = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== acc) return false;
      acc *= this.shape[i];
    }
    return true;
  }

  // ---------------------------------------------------------------- reading

  /** A copy of the elements in storage format (Uint16Array for f16/bf16, Uint8Array for fp8 and packed int4). */
  data(): HostArray {
    this._check('data');
    return this._hostContiguous('data');
  }
  async dataAsync(): Promise<HostArray> {
    this._check('dataAsync');
    if (this.device === 'cpu') return this._hostContiguous('dataAsync');
    const t = this.isContiguous() ? this : this.contiguous();
    const s = t._s;
    const full = allocStorage(this.dtype, s.numel);
    await deviceTable(this.device, 'dataAsync').downloadAsync(s.handle, full);
    const out = sliceStorage(this.dtype, full, t.offset, t.size);
    if (t !== this) t.dispose();
    return out;
  }
  /** Elements decoded to float32 (float64 values rounded). */
  toFloat32(): Float32Array {
    this._check('toFloat32');
    return decodeF32(this.dtype, this._hostContiguous('toFloat32'), this.size);
  }
  async toFloat32Async(): Promise<Float32Array> {
    this._check('toFloat32Async');
    return decodeF32(this.dtype, await this.dataAsync(), this.size);
  }
  /** Elements decoded exactly to float64 (every dtype is exactly representable). */
  toFloat64(): Float64Array {
    this._check('toFloat64');
    return decode(this.dtype, this._hostContiguous('toFloat64'), this.size) as Float64Array;
  }
  /** Nested JS arrays (booleans for bool tensors), like torch's tolist(). */
  toArray(): unknown {
    this._check('toArray');
    const vals = this.toFloat64();
    const isBool = this.dtype === 'bool';
    const shape = this.shape;
    if (shape.length === 0) return isBool ? vals[0] !== 0 : vals[0];
    let pos = 0;
    const build = (d: number): unknown[] => {
      const n = shape[d];
      const out = new Array<unknown>(n);
      for (let i = 0; i < n; i++) {
        if (d === shape.length - 1) {
          const v = vals[pos++];
          out[i] = isBool ? v !== 0 : v;
        } else out[i] = build(d + 1);
      }
      return out;
    };
    return build(0);
  }
  /** The single value of a one-element tensor. */
  item(): number {
    this._check('item');
    if (this.size !== 1) throw new TesseraError('E_SHAPE', 'item', `needs a tensor with one element, got shape ${fmtShape(this.shape)}`);
    return this.toFloat64()[0];
  }

  /** @internal contiguous host copy of the elements in storage format */
  _hostContiguous(op: string): HostArray {
    const s = this._s;
    let src = s.host;
    if (s.device !== 'cpu') {
      src = allocStorage(this.dtype, s.numel);
      deviceTable(s.device, op).download(s.handle, src);
    }
    if (!src) throw new TesseraError('E_DISPOSED', op, 'storage was freed');
    if (this.isContiguous()) return sliceStorage(this.dtype, src, this.offset, this.size);
    return gatherStrided(this.dtype, src, this.shape, this.strides, this.offset);
  }

  // ---------------------------------------------------------------- views

  reshape(...args: Array<number | number[]>): Tensor {
    this._check('reshape');
    const raw = args.length === 1 && Array.isArray(args[0]) ? (args[0] as unknown[]) : (args as unknown[]);
    const n = this.size;
    let infer = -1;
    let known = 1;
    const shape: number[] = [];
    for (let i = 0; i < raw.length; i++) {
      const d = raw[i];
      if (d === -1 && infer < 0) {
        infer = i;
        shape.push(1);
        continue;
      }
      if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
        throw new TesseraError('E_SHAPE', 'reshape', `shape[${i}] must be a non-negative integer or a single -1, got ${describe(d)}`);
      }
      known *= d;
      shape.push(d);
    }
    if (infer >= 0) {
      if (known === 0 || n % known !== 0) {
        throw new TesseraError('E_SHAPE', 'reshape', `cannot infer -1 in [${raw.join(', ')}] for ${n} elements (input shape ${fmtShape(this.shape)})`);
      }
      shape[infer] = n / known;
    } else if (known !== n) {
      throw new TesseraError('E_SHAPE', 'reshape', `shape [${raw.join(', ')}] has ${known} elements but the input ${fmtShape(this.shape)} has ${n}`);
    }
    checkShape(shape, 'reshape');
    const base = this.isContiguous() ? this : this.contiguous();
    const out = new Tensor(base._s, shape, undefined, base.offset);
    if (base !== this) base.dispose();
    return out;
  }
  view(...args: Array<number | number[]>): Tensor {
    this._check('view');
    return this.reshape(...args);
  }
  flatten(): Tensor {
    this._check('flatten');
    return this.reshape(-1);
  }
  unsqueeze(dim: number): Tensor {
    this._check('unsqueeze');
    const d = normDim(dim, this.ndim + 1, 'unsqueeze');
    const shape = this.shape.slice();
    shape.splice(d, 0, 1);
    if (dtypeInfo(this.dtype).isPacked) return this.reshape(shape);
    const strides = this.strides.slice();
    strides.splice(d, 0, d < this.ndim ? this.strides[d] * this.shape[d] : 1);
    return new Tensor(this._s, shape, strides, this.offset);
  }
  squeeze(dim?: number): Tensor {
    this._check('squeeze');
    const keep = (i: number) => (dim === undefined ? this.shape[i] !== 1 : i !== normDim(dim, this.ndim, 'squeeze') || this.shape[i] !== 1);
    const idx = this.shape.map((_, i) => i).filter(keep);
    if (dtypeInfo(this.dtype).isPacked) return this.reshape(idx.map((i) => this.shape[i]));
    return new Tensor(this._s, idx.map((i) => this.shape[i]), idx.map((i) => this.strides[i]), this.offset);
  }
  permute(...args: Array<number | number[]>): Tensor {
    this._check('permute');
    const dims = (args.length === 1 && Array.isArray(args[0]) ? args[0] : args) as unknown[];
    if (dims.length !== this.ndim) {
      throw new TesseraError('E_ARG', 'permute', `dims ${fmtList(dims)} must list each of the ${this.ndim} dims of shape ${fmtShape(this.shape)} once`);
    }
    const seen = new Set<number>();
    const nd = dims.map((d, i) => normDim(d, this.ndim, 'permute', `dims[${i}]`));
    for (const d of nd) {
      if (seen.has(d)) throw new TesseraError('E_ARG', 'permute', `dim ${d} repeated in [${dims.join(', ')}]`);
      seen.add(d);
    }
    return this._strided(nd.map((d) => this.shape[d]), nd.map((d) => this.strides[d]), this.offset, 'permute');
  }
  transpose(dim0 = -2, dim1 = -1): Tensor {
    this._check('transpose');
    if (this.ndim < 2 && dim0 === -2 && dim1 === -1) return this.reshape(this.shape.slice());
    const a = normDim(dim0, this.ndim, 'transpose', 'dim0');
    const b = normDim(dim1, this.ndim, 'transpose', 'dim1');
    const p = this.shape.map((_, i) => i);
    p[a] = b;
    p[b] = a;
    return this.permute(p);
  }
  /** Elements start <= i < end (step >= 1) along dim; negative start/end count from the end, like Python slices. */
  slice(dim: number, start = 0, end?: number, step = 1): Tensor {
    this._check('slice');
    const d = normDim(dim, this.ndim, 'slice');
    const n = this.shape[d];
    checkInt(start, 'slice', 'start');
    if (end !== undefined) checkInt(end, 'slice', 'end');
    checkInt(step, 'slice', 'step', 1);
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
    const s = clamp(start);
    const e = end === undefined ? n : clamp(end);
    const len = e > s ? Math.ceil((e - s) / step) : 0;
    const shape = this.shape.slice();
    const strides = this.strides.slice();
    shape[d] = len;
    strides[d] = this.strides[d] * step;
    return this._strided(shape, strides, this.offset + s * this.strides[d], 'slice');
  }
  /** Index one position along dim, removing that dim (x.select(0, i) is x[i]). */
  select(dim: number, index: number): Tensor {
    this._check('select');
    const d = normDim(dim, this.ndim, 'select');
    const n = this.shape[d];
    checkInt(index, 'select', 'index', -n, n - 1);
    const i = index < 0 ? index + n : index;
    return this.slice(d, i, i + 1).squeeze(d);
  }
  /** Broadcast view (stride 0 along expanded dims), like torch.expand; -1 keeps a dim. */
  expand(...args: Array<number | number[]>): Tensor {
    this._check('expand');
    const target = (args.length === 1 && Array.isArray(args[0]) ? args[0] : args) as number[];
    checkShape(target.map((v) => (v === -1 ? 0 : v)), 'expand');
    const lead = target.length - this.ndim;
    if (lead < 0) throw new TesseraError('E_SHAPE', 'expand', `cannot expand ${fmtShape(this.shape)} to fewer dims [${target.join(', ')}]`);
    const shape: number[] = [];
    const strides: number[] = [];
    for (let i = 0; i < target.length; i++) {
      const j = i - lead;
      if (j < 0 && target[i] === -1) {
        throw new TesseraError('E_SHAPE', 'expand', `-1 is not allowed for the new leading dim ${i} in [${target.join(', ')}] (input ${fmtShape(this.shape)})`);
      }
      const src = j >= 0 ? this.shape[j] : 1;
      const t = target[i] === -1 ? src : target[i];
      if (src !== t && src !== 1) {
        throw new TesseraError('E_SHAPE', 'expand', `cannot expand ${fmtShape(this.shape)} to [${target.join(', ')}] (dim ${i}: ${src} vs ${t})`);
      }
      shape.push(t);
      strides.push(j >= 0 && src === t ? this.strides[j] : 0);
    }
    checkShape(shape, 'expand'); // -1 entries were checked as 0 above
    return this._strided(shape, strides, this.offset, 'expand');
  }

  private _strided(shape: number[], strides: number[], offset: number, op: string): Tensor {
    if (!dtypeInfo(this.dtype).isPacked) return new Tensor(this._s, shape, strides, offset);
    // packed storage stays contiguous: gather element by element into a new packed block
    const src = this._hostContiguousFull(op);
    const n = numelOf(shape);
    const dst = allocStorage(this.dtype, n);
    const idx = new Array<number>(shape.length).fill(0);
    let off = offset;
    for (let i = 0; i < n; i++) {
      setElement(this.dtype, dst, i, getElement(this.dtype, src, off));
      for (let d = shape.length - 1; d >= 0; d--) {
        if (++idx[d] < shape[d]) {
          off += strides[d];
          break;
        }
        off -= strides[d] * (shape[d] - 1);
        idx[d] = 0;
      }
    }
    return toDevice(Tensor._fromHost(this.dtype, shape, dst), this.device, op);
  }
  private _hostContiguousFull(op: string): HostArray {
    const s = this._s;
    if (s.host) return s.host;
    const full = allocStorage(this.dtype, s.numel);
    deviceTable(s.device, op).download(s.handle, full);
    return full;
  }

  contiguous(): Tensor {
    this._check('contiguous');
    if (this.isContiguous() && this.offset === 0 && this._s.numel === this.size) return this._alias();
    const d = this._deviceCopy(this.dtype, 'contiguous');
    if (d) return d;
    return toDevice(Tensor._fromHost(this.dtype, this.shape, this._hostContiguous('contiguous')), this.device, 'contiguous');
  }
  /** A contiguous copy in dtype made on this tensor's (non-host) device, or null where it has no kernel for it. */
  private _deviceCopy(dtype: DType, op: string): Tensor | null {
    if (this.device === 'cpu' || !deviceTable(this.device, op).copyView) return null;
    const out = new Tensor(StorageBlock.device(this.device, dtype, this.size, op), this.shape);
    if (out._copyView(this, op)) return out;
    out.dispose();
    return null;
  }
  private _copyView(src: Tensor, op: string): boolean {
    const v = (t: Tensor) => ({ handle: t._s.handle, dtype: t.dtype, offset: t.offset, shape: t.shape, strides: t.strides });
    const table = deviceTable(this.device, op);
    return table.copyView ? table.copyView(v(this), v(src)) : false;
  }

  /**
   * Copies src (same shape and device; converted to this dtype) into this tensor's elements in place, as
   * torch's copy_: writing into a view writes the storage it views (e.g. new rows of a KV cache). On a
   * device it is one kernel, no host round trip. Returns this.
   */
  copy_(src: Tensor): this {
    this._check('copy_');
    assertTensor(src, 'copy_', 'src');
    if (src.device !== this.device) throw new TesseraError('E_DEVICE', 'copy_', `src is on ${src.device}, this tensor on ${this.device}`);
    if (src.ndim !== this.ndim || src.shape.some((d, i) => d !== this.shape[i])) {
      throw new TesseraError('E_SHAPE', 'copy_', `src ${fmtShape(src.shape)} does not match ${fmtShape(this.shape)}`);
    }
    if (dtypeInfo(this.dtype).isPacked || dtypeInfo(src.dtype).isPacked) throw new TesseraError('E_DTYPE', 'copy_', 'packed int4/uint4 tensors cannot be written in place');
    if (this.size === 0) return this;
    this._s.version++;
    if (this.device !== 'cpu') {
      if (this._copyView(src, 'copy_')) return this;
      throw new TesseraError('E_DTYPE', 'copy_', `no ${this.device} copy from ${src.dtype} to ${this.dtype}`);
    }
    let data = src._hostContiguous('copy_');
    if (src.dtype !== this.dtype) data = castStorage(src.dtype, this.dtype, data, src.size);
    scatterStrided(this._s.host as HostArray, this.shape, this.strides, this.offset, data);
    return this;
  }

  /** A new tensor handle sharing this one's storage (its own dispose()). */
  private _alias(): Tensor {
    return new Tensor(this._s, this.shape, this.strides, this.offset);
  }
  clone(): Tensor {
    this._check('clone');
    return toDevice(Tensor._fromHost(this.dtype, this.shape, this._hostContiguous('clone')), this.device, 'clone');
  }

  /** Convert dtype and/or move device: to('float16'), to('cuda'), to({ dtype, device }). Returns a new tensor. */
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    this._check('to');
    let dtype: DType = this.dtype;
    let device: Device = this.device;
    if (target === 'cpu' || target === 'cuda') device = target;
    else if (typeof target === 'string') dtype = checkDType(target, 'to');
    else if (target && typeof target === 'object' && !Array.isArray(target)) {
      if (target.dtype !== undefined) dtype = checkDType(target.dtype, 'to');
      if (target.device !== undefined) device = checkDevice(target.device, 'to');
    } else throw new TesseraError('E_TYPE', 'to', `target must be a dtype, a device or { dtype, device }, got ${describe(target)}`);
    if (dtype === this.dtype && device === this.device) return this._alias();
    if (device === this.device) {
      const d = this._deviceCopy(dtype, 'to');
      if (d) return d;
    }
    let host = this._hostContiguous('to');
    if (dtype !== this.dtype) host = castStorage(this.dtype, dtype, host, this.size);
    return toDevice(Tensor._fromHost(dtype, this.shape, host), device, 'to');
  }

  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    finalizer.unregister(this._token);
    countTensor(this._s.device, -1);
    this._s.release();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    if (this._disposed) return `tensor(<disposed>, dtype=${this.dtype}, shape=${fmtShape(this.shape)})`;
    return formatTensor(this.toFloat64(), this.shape, this.dtype, this.device);
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

Object.defineProperty(Tensor.prototype, NOT_OPTIONS, { value: true });

export function checkDevice(d: unknown, op: string): Device {
  if (d !== 'cpu' && d !== 'cuda') throw new TesseraError('E_DEVICE', op, `device must be 'cpu' or 'cuda', got ${describe(d)}`);
  return d;
}

/** Moves a contiguous host tensor to device (consuming it); returns it unchanged for 'cpu'. */
export function toDevice(t: Tensor, device: Device, op: string): Tensor {
  if (device === t.device) return t;
  if (t.device !== 'cpu') {
    const host = Tensor._fromHost(t.dtype, t.shape, t._hostContiguous(op));
    t.dispose();
    return toDevice(host, device, op);
  }
  let s: StorageBlock | null = null;
  try {
    s = StorageBlock.device(device, t.dtype, t.size, op);
    deviceTable(device, op).upload(s.handle, t._s.host as HostArray);
    return new Tensor(s, t.shape);
  } catch (e) {
    s?.release(); // no tensor holds it yet (refs 0): frees the device memory
    throw e;
  } finally {
    t.dispose(); // t was handed over: consumed on success, and not leaked when the device fails
  }
}

export function isTensor(v: unknown): v is Tensor {
  return v instanceof Tensor;
}

/** Checks that v is a live Tensor; the error names op and argument. */
export function assertTensor(v: unknown, op: string, arg: string): Tensor {
  if (!(v instanceof Tensor)) throw new TesseraError('E_TYPE', op, `${arg} must be a Tensor, got ${describe(v)}`);
  return v._check(op, arg);
}

function sliceStorage(dtype: DType, src: HostArray, offset: number, n: number): HostArray {
  if (!dtypeInfo(dtype).isPacked) return src.slice(offset, offset + n) as HostArray;
  if (offset % 2 === 0) {
    const out = src.slice(offset / 2, offset / 2 + Math.ceil(n / 2)) as Uint8Array;
    if (n % 2 === 1) out[out.length - 1] &= 0x0f;
    return out;
  }
  const out = allocStorage(dtype, n);
  for (let i = 0; i < n; i++) setElement(dtype, out, i, getElement(dtype, src, offset + i));
  return out;
}

/** Copies a strided view into a new contiguous array (storage format, bit-exact). */
function gatherStrided(dtype: DType, src: HostArray, shape: readonly number[], strides: readonly number[], offset: number): HostArray {
  const n = numelOf(shape);
  const out = allocStorage(dtype, n);
  if (n === 0) return out;
  const nd = shape.length;
  if (dtypeInfo(dtype).isPacked) {
    throw new TesseraError('E_ARG', 'contiguous', 'internal: packed tensors are always contiguous');
  }
  // innermost dim copied in a tight loop
  const inner = shape[nd - 1];
  const innerStride = strides[nd - 1];
  const idx = new Array<number>(Math.max(nd - 1, 0)).fill(0);
  let off = offset;
  let o = 0;
  const dst = out as unknown as { [i: number]: number };
  const s = src as unknown as { [i: number]: number };
  for (;;) {
    for (let i = 0, p = off; i < inner; i++, p += innerStride) dst[o++] = s[p];
    let d = nd - 2;
    for (; d >= 0; d--) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
    if (d < 0) break;
  }
  return out;
}

/** Writes contiguous src (storage format) into the strided view dst[shape, strides, offset]. */
function scatterStrided(dst: HostArray, shape: readonly number[], strides: readonly number[], offset: number, src: HostArray): void {
  const nd = shape.length;
  const inner = nd ? shape[nd - 1] : 1;
  const innerStride = nd ? strides[nd - 1] : 1;
  const idx = new Array<number>(Math.max(nd - 1, 0)).fill(0);
  const d = dst as unknown as { [i: number]: number };
  const s = src as unknown as { [i: number]: number };
  let off = offset;
  let o = 0;
  for (;;) {
    for (let i = 0, p = off; i < inner; i++, p += innerStride) d[p] = s[o++];
    let k = nd - 2;
    for (; k >= 0; k--) {
      if (++idx[k] < shape[k]) {
        off += strides[k];
        break;
      }
      off -= strides[k] * (shape[k] - 1);
      idx[k] = 0;
    }
    if (k < 0) break;
  }
}
