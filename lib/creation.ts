/**
 * Creating tensors: tensor() from JS numbers / nested arrays / numeric typed arrays (values converted to
 * the dtype, round-to-nearest-even), fromTypedArray() from storage-format data (raw f16/bf16 bits in a
 * Uint16Array, fp8 bits and packed int4 in a Uint8Array), and zeros/ones/full/arange/randn/rand.
 * The random generator is seeded and reproducible (xoshiro128** + Box-Muller); like PyTorch's default
 * generator it starts from a fixed seed, and manualSeed() resets it.
 */
import { DType, Storage as HostArray, allocStorage, dtypeInfo, encode, storageLength } from './dtype';
import { TesseraError, describe } from './errors';
import { Device, isDetached } from './storage';
import { Tensor, assertTensor, checkDevice, toDevice } from './tensor';
import { MAX_RANK, checkDType, checkNumber, checkOptions, checkShape, fmtShape, numelOf } from './validate';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  shape?: number[];
}

function opts(op: string, o: unknown): { dtype?: DType; device: Device; shape?: number[] } {
  const r = checkOptions(o, op);
  return {
    dtype: r.dtype === undefined ? undefined : checkDType(r.dtype, op, 'options.dtype'),
    device: r.device === undefined ? 'cpu' : checkDevice(r.device, op),
    shape: r.shape === undefined ? undefined : checkShape(r.shape, op, 'options.shape'),
  };
}

function defaultDTypeOf(data: ArrayBufferView): DType | null {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return 'uint8';
  return null;
}

/** Nested JS arrays -> flat numbers + shape; throws on ragged input or non-numbers. */
function flatten(op: string, data: unknown): { flat: number[]; shape: number[]; allBool: boolean } {
  const shape: number[] = [];
  let probe: unknown = data;
  while (Array.isArray(probe)) {
    // a cyclic array ([a] with a[0] = a) would loop here forever
    if (shape.length === MAX_RANK) throw new TesseraError('E_SHAPE', op, `data is nested more than ${MAX_RANK} levels deep`);
    shape.push(probe.length);
    probe = probe[0];
  }
  const flat: number[] = [];
  let allBool = true;
  const walk = (v: unknown, d: number, path: string) => {
    if (d === shape.length) {
      if (typeof v === 'boolean') flat.push(v ? 1 : 0);
      else if (typeof v === 'number') {
        allBool = false;
        flat.push(v);
      } else throw new TesseraError('E_TYPE', op, `data${path} must be a number or boolean, got ${describe(v)}`);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[d]) {
      throw new TesseraError('E_SHAPE', op, `data is ragged: data${path} should be an array of length ${shape[d]}, got ${describe(v)}`);
    }
    for (let i = 0; i < v.length; i++) walk(v[i], d + 1, `${path}[${i}]`);
  };
  walk(data, 0, '');
  if (flat.length === 0) allBool = false;
  return { flat, shape, allBool };
}

/** tensor(data, { shape?, dtype?, device? }): data is a number, boolean, nested arrays, or a numeric typed array. */
export function tensor(data: unknown, options?: CreateOptions): Tensor {
  const op = 'tensor';
  const o = opts(op, options);
  let values: ArrayLike<number>;
  let shape: number[];
  let dtype: DType;
  if (typeof data === 'number' || typeof data === 'boolean') {
    values = [Number(data)];
    shape = [];
    dtype = o.dtype ?? (typeof data === 'boolean' ? 'bool' : 'float32');
  } else if (Array.isArray(data)) {
    const f = flatten(op, data);
    values = f.flat;
    shape = f.shape;
    dtype = o.dtype ?? (f.allBool ? 'bool' : 'float32');
  } else if (ArrayBuffer.isView(data) && !(data instanceof DataView)) {
    if (isDetached(data)) throw new TesseraError('E_DETACHED', op, `data ${describe(data)} has a detached ArrayBuffer`);
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
      throw new TesseraError('E_DTYPE', op, 'BigInt typed arrays are not supported; convert to Int32Array or Float64Array');
    }
    values = data as unknown as ArrayLike<number>;
    shape = [values.length];
    const d = defaultDTypeOf(data);
    if (!d && !o.dtype) {
      throw new TesseraError('E_DTYPE', op, `pass options.dtype for ${describe(data)} (for raw float16/bfloat16 bits use fromTypedArray)`);
    }
    dtype = o.dtype ?? (d as DType);
  } else {
    throw new TesseraError('E_TYPE', op, `data must be a number, a (nested) array or a typed array, got ${describe(data)}`);
  }
  if (o.shape) {
    if (numelOf(o.shape) !== values.length) {
      throw new TesseraError('E_SHAPE', op, `options.shape ${fmtShape(o.shape)} holds ${numelOf(o.shape)} elements but data has ${values.length}`);
    }
    shape = o.shape;
  }
  checkShape(shape, op);
  return toDevice(Tensor._fromHost(dtype, shape, encode(dtype, values, values.length)), o.device, op);
}

/**
 * fromTypedArray(storage, { shape?, dtype? }): wraps data already in the dtype's storage format (copied):
 * Uint16Array holds float16/bfloat16 bits, Uint8Array fp8 bits or packed int4/uint4 (low nibble first).
 */
export function fromTypedArray(data: unknown, options?: CreateOptions): Tensor {
  const op = 'fromTypedArray';
  const o = opts(op, options);
  if (!ArrayBuffer.isView(data) || data instanceof DataView) {
    throw new TesseraError('E_TYPE', op, `data must be a typed array, got ${describe(data)}`);
  }
  if (isDetached(data)) throw new TesseraError('E_DETACHED', op, `data ${describe(data)} has a detached ArrayBuffer`);
  const dtype = o.dtype ?? defaultDTypeOf(data);
  if (!dtype) throw new TesseraError('E_DTYPE', op, `pass options.dtype for ${describe(data)}`);
  const info = dtypeInfo(dtype);
  const want = allocStorage(dtype, 0).constructor as { name: string };
  if (data.constructor.name !== want.name) {
    throw new TesseraError('E_DTYPE', op, `dtype ${dtype} is stored in a ${want.name}, got ${describe(data)}`);
  }
  const arr = data as unknown as HostArray;
  const numel = o.shape ? numelOf(o.shape) : info.isPacked ? arr.length * 2 : arr.length;
  const shape = o.shape ?? [numel];
  if (storageLength(dtype, numel) !== arr.length) {
    throw new TesseraError('E_SHAPE', op, `shape ${fmtShape(shape)} of ${dtype} needs ${storageLength(dtype, numel)} storage elements, got ${arr.length}`);
  }
  return toDevice(Tensor._fromHost(dtype, shape, arr.slice() as HostArray), o.device, op);
}

/** Runs an allocation of n elements, turning the engine's RangeError (no memory) into E_OOM. */
function alloc<T>(op: string, n: number, dtype: DType, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof RangeError) throw new TesseraError('E_OOM', op, `cannot allocate ${n} ${dtype} elements on the host (${e.message})`);
    throw e;
  }
}

export function full(shape: number[], value: number, options?: CreateOptions): Tensor {
  return fill('full', shape, value, options);
}
function fill(op: string, shape: unknown, value: unknown, options: unknown): Tensor {
  const s = checkShape(shape, op);
  const o = opts(op, options);
  if (typeof value !== 'number' && typeof value !== 'boolean') {
    throw new TesseraError('E_TYPE', op, `value must be a number, got ${describe(value)}`);
  }
  const dtype = o.dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32');
  const n = numelOf(s);
  const one = encode(dtype, [Number(value)], 1);
  const data = alloc(op, n, dtype, () => allocStorage(dtype, n));
  if (dtypeInfo(dtype).isPacked) {
    const byte = (one[0] & 0x0f) | ((one[0] & 0x0f) << 4);
    data.fill(byte);
    if (n % 2 === 1) (data as Uint8Array)[data.length - 1] = one[0] & 0x0f;
  } else data.fill(one[0]);
  return toDevice(Tensor._fromHost(dtype, s, data), o.device, op);
}
export function zeros(shape: number[], options?: CreateOptions): Tensor {
  return fill('zeros', shape, 0, options);
}
export function ones(shape: number[], options?: CreateOptions): Tensor {
  return fill('ones', shape, 1, options);
}
export function zerosLike(t: Tensor, options?: CreateOptions): Tensor {
  const x = assertTensor(t, 'zerosLike', 't');
  return fill('zerosLike', x.shape.slice(), 0, { dtype: x.dtype, device: x.device, ...checkOptions(options, 'zerosLike') });
}
export function onesLike(t: Tensor, options?: CreateOptions): Tensor {
  const x = assertTensor(t, 'onesLike', 't');
  return fill('onesLike', x.shape.slice(), 1, { dtype: x.dtype, device: x.device, ...checkOptions(options, 'onesLike') });
}

/** arange(end) / arange(start, end, step?): int32 when all arguments are integers, else float32. */
export function arange(a: number, b?: number | CreateOptions, c?: number | CreateOptions, options?: CreateOptions): Tensor {
  const op = 'arange';
  let start = 0;
  let end: number;
  let step = 1;
  let o: unknown = options;
  if (typeof b !== 'number') {
    end = a;
    o = b;
  } else {
    start = a;
    end = b;
    if (typeof c === 'number') step = c;
    else o = c;
  }
  checkNumber(start, op, 'start');
  checkNumber(end, op, 'end');
  checkNumber(step, op, 'step');
  if (step === 0) throw new TesseraError('E_ARG', op, 'step must be nonzero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  checkShape([n], op, 'length');
  const oo = opts(op, o);
  const dtype = oo.dtype ?? ([start, end, step].every(Number.isInteger) ? 'int32' : 'float32');
  const vals = alloc(op, n, 'float64', () => new Float64Array(n));
  for (let i = 0; i < n; i++) vals[i] = start + i * step;
  return toDevice(Tensor._fromHost(dtype, [n], encode(dtype, vals, n)), oo.device, op);
}

// ------------------------------------------------------------------ random

/** xoshiro128** state, seeded through splitmix32 so any integer seed gives a well-mixed state. */
export class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null;
  constructor(seed: number) {
    this.seed(seed);
  }
  seed(seed: number): void {
    let x = (Math.floor(Math.abs(seed)) % 2 ** 32) >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    this.spare = null;
  }
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }
  /** uniform in [0, 1) with 53 random bits */
  uniform(): number {
    return ((this.nextU32() >>> 5) * 67108864 + (this.nextU32() >>> 6)) / 9007199254740992;
  }
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}
function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

const globalGen = new Generator(67280421);
/** Reseeds the default generator used when randn/rand get no seed. */
export function manualSeed(seed: number): void {
  checkNumber(seed, 'manualSeed', 'seed');
  globalGen.seed(seed);
}

export interface RandomOptions extends CreateOptions {
  seed?: number;
}
function randomTensor(op: string, shape: number[], options: RandomOptions | undefined, f: (g: Generator) => number): Tensor {
  const s = checkShape(shape, op);
  const r = checkOptions(options, op);
  const o = opts(op, { dtype: r.dtype, device: r.device });
  const g = r.seed === undefined ? globalGen : new Generator(checkNumber(r.seed, op, 'options.seed'));
  const dtype = o.dtype ?? 'float32';
  if (!dtypeInfo(dtype).isFloat) throw new TesseraError('E_DTYPE', op, `dtype must be a floating type, got ${dtype}`);
  const n = numelOf(s);
  const vals = alloc(op, n, 'float64', () => new Float64Array(n));
  for (let i = 0; i < n; i++) vals[i] = f(g);
  return toDevice(Tensor._fromHost(dtype, s, encode(dtype, vals, n)), o.device, op);
}
/** Standard normal samples; { seed } makes them reproducible (same seed, same values on every backend). */
export function randn(shape: number[], options?: RandomOptions): Tensor {
  return randomTensor('randn', shape, options, (g) => g.normal());
}
/** Uniform samples in [0, 1). */
export function rand(shape: number[], options?: RandomOptions): Tensor {
  return randomTensor('rand', shape, options, (g) => g.uniform());
}
/** Uniform integers in [low, high) as int32. */
export function randint(low: number, high: number, shape: number[], options?: RandomOptions): Tensor {
  checkNumber(low, 'randint', 'low');
  checkNumber(high, 'randint', 'high');
  if (!(high > low)) throw new TesseraError('E_ARG', 'randint', `high (${high}) must be greater than low (${low})`);
  const span = Math.floor(high) - Math.ceil(low);
  if (span <= 0) throw new TesseraError('E_ARG', 'randint', `no integer lies in [${low}, ${high})`);
  const r = checkOptions(options, 'randint');
  const dtype = r.dtype === undefined ? 'int32' : checkDType(r.dtype, 'randint', 'options.dtype'); // before sampling, so nothing leaks
  const t = randomTensor('randint', shape, { ...r, dtype: 'float64' }, (g) => Math.ceil(low) + Math.floor(g.uniform() * span));
  const out = t.to(dtype);
  t.dispose();
  return out;
}
