/**
 * dtypes (PyTorch names), their host storage, and bit-exact conversions between plain numbers and storage.
 *
 * Storage per dtype (a typed array; one element per entry unless packed):
 *   float32 Float32Array · float64 Float64Array · float16, bfloat16 Uint16Array (raw bits)
 *   float8_e4m3fn, float8_e5m2 Uint8Array (raw bits) · int8 Int8Array · uint8, bool Uint8Array · int32 Int32Array
 *   int4, uint4 Uint8Array, PACKED two per byte:
 *     element 2i   -> LOW  nibble of byte i  (bits 0..3)
 *     element 2i+1 -> HIGH nibble of byte i  (bits 4..7)
 *   int4 nibbles are two's complement in [-8, 7], uint4 nibbles are [0, 15]; an odd count leaves the high
 *   nibble of the last byte zero. encode('int4', [1, -2, 7]) -> bytes [0xE1, 0x07].
 *
 * Rounding rules. Every float conversion rounds the EXACT double value once, to nearest with ties to even
 * (no double rounding through float32). Float32Array sources take a bit-level path on their f32 bits that
 * gives the same answers (an f32 value is a double). Zeros keep their sign; results that round to zero keep
 * the input's sign. NaN inputs give one canonical positive quiet NaN per format (the input's sign and payload
 * are dropped).
 *   float32    Math.fround semantics (RNE, overflow -> ±inf).
 *   float16    IEEE binary16: subnormals exact (unit 2^-24), |x| >= 65520 -> ±inf, NaN -> 0x7e00.
 *   bfloat16   8-bit exponent, 7-bit mantissa, subnormals (unit 2^-133); |x| >= (2 - 2^-8)·2^127 -> ±inf,
 *              NaN -> 0x7fc0. For f32 inputs this equals the usual (u + 0x7fff + lsb) >> 16 bit trick.
 *   float8_e4m3fn  OCP FP8 E4M3FN: bias 7, no inf, NaN only 0x7f/0xff, max 448, subnormal m·2^-9.
 *              SATURATING conversion (like torch with saturate / the PTX cvt ... .satfinite): any finite value
 *              whose rounding lands above 448 gives ±448 (464 ties down to 448 under RNE anyway), ±inf -> ±448,
 *              NaN -> 0x7f.
 *   float8_e5m2  bias 15, has inf/NaN, max 57344, subnormal m·2^-16; |x| >= 61440 -> ±inf, NaN -> 0x7e.
 *   int8, uint8, int32, int4, uint4  round toward zero (like torch .to(int)), then SATURATE to the range
 *              (torch leaves out-of-range undefined/wrapping; ours is defined); NaN -> 0; ±inf -> max/min.
 *   bool       nonzero (NaN included) -> 1, ±0 -> 0. Decoding treats any nonzero byte as 1.
 *
 * Decoding is exact (every dtype's values are doubles). decode() into a Float32Array, and decodeF32(), round
 * float64 and int32 values to f32 (RNE); all other dtypes are exact in f32.
 *
 * Speed: no per-element allocation. Float bit access goes through a shared 8-byte scratch, or through a
 * Uint32Array view of a Float32Array/Float64Array source. Decoding the 16- and 8-bit float formats is a
 * lookup in a table built lazily from the format definition (65536 f32 entries for float16/bfloat16).
 * castStorage from a byte-per-element dtype maps through a 256-entry table.
 */
import { TesseraError, describe } from './errors';

export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'float8_e4m3fn'
  | 'float8_e5m2'
  | 'int8'
  | 'uint8'
  | 'int32'
  | 'int4'
  | 'uint4'
  | 'bool';

export const DTYPES: readonly DType[] = Object.freeze([
  'float32', 'float64', 'float16', 'bfloat16', 'float8_e4m3fn', 'float8_e5m2',
  'int8', 'uint8', 'int32', 'int4', 'uint4', 'bool',
] as DType[]);

export type Storage = Float32Array | Float64Array | Uint16Array | Uint8Array | Int8Array | Int32Array;
type StorageName = 'Float32Array' | 'Float64Array' | 'Uint16Array' | 'Uint8Array' | 'Int8Array' | 'Int32Array';

export interface DTypeInfo {
  name: DType;
  /** bits per element (bool: 8, int4/uint4: 4) */
  bits: number;
  isFloat: boolean;
  /** int4/uint4: two elements per byte */
  isPacked: boolean;
  /** integer types (bool is neither float nor int) */
  isInt: boolean;
  /** finite range; bool 0..1 */
  min: number;
  max: number;
  storage: StorageName;
}

const F32_MAX = 3.4028234663852886e38;
const BF16_MAX = 3.3895313892515355e38; // (2 - 2^-7) * 2^127

function info(name: DType, bits: number, kind: 'f' | 'i' | 'b', min: number, max: number, storage: StorageName): DTypeInfo {
  return Object.freeze({
    name, bits, isFloat: kind === 'f', isPacked: bits === 4, isInt: kind === 'i', min, max, storage,
  });
}

const INFO: Readonly<Record<DType, DTypeInfo>> = Object.freeze({
  float32: info('float32', 32, 'f', -F32_MAX, F32_MAX, 'Float32Array'),
  float64: info('float64', 64, 'f', -Number.MAX_VALUE, Number.MAX_VALUE, 'Float64Array'),
  float16: info('float16', 16, 'f', -65504, 65504, 'Uint16Array'),
  bfloat16: info('bfloat16', 16, 'f', -BF16_MAX, BF16_MAX, 'Uint16Array'),
  float8_e4m3fn: info('float8_e4m3fn', 8, 'f', -448, 448, 'Uint8Array'),
  float8_e5m2: info('float8_e5m2', 8, 'f', -57344, 57344, 'Uint8Array'),
  int8: info('int8', 8, 'i', -128, 127, 'Int8Array'),
  uint8: info('uint8', 8, 'i', 0, 255, 'Uint8Array'),
  int32: info('int32', 32, 'i', -2147483648, 2147483647, 'Int32Array'),
  int4: info('int4', 4, 'i', -8, 7, 'Uint8Array'),
  uint4: info('uint4', 4, 'i', 0, 15, 'Uint8Array'),
  bool: info('bool', 8, 'b', 0, 1, 'Uint8Array'),
});

const CTORS = {
  Float32Array, Float64Array, Uint16Array, Uint8Array, Int8Array, Int32Array,
} as const;

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(INFO, x);
}

export function dtypeInfo(d: DType): DTypeInfo {
  if (!isDType(d)) throw new TesseraError('E_DTYPE', 'dtype', `unknown dtype ${describe(d)}; expected one of ${DTYPES.join(', ')}`);
  return INFO[d];
}

function checkCount(op: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new TesseraError('E_ARG', op, `element count must be a non-negative integer, got ${describe(n)}`);
}

export function storageLength(d: DType, numel: number): number {
  const inf = dtypeInfo(d);
  checkCount('storageLength', numel);
  return inf.isPacked ? Math.ceil(numel / 2) : numel;
}

export function allocStorage(d: DType, numel: number): Storage {
  return new CTORS[dtypeInfo(d).storage](storageLength(d, numel));
}

export function storageBytes(d: DType, numel: number): number {
  return storageLength(d, numel) * CTORS[dtypeInfo(d).storage].BYTES_PER_ELEMENT;
}

// ---------------------------------------------------------------------------------------------------------
// Small float formats. Encoding works on the magnitude bits `a` of the source (f32 bits, or the high word of
// a double plus a sticky flag for its low word), in three ranges found by comparing `a` with precomputed
// thresholds (monotonic: bigger bits = bigger magnitude):
//   a >= ov         rounds past the largest finite value (or is inf/NaN): inf, or 448 for e4m3fn
//   a >= minNormal  normal result: re-bias the exponent and round the mantissa in one integer add; a carry
//                   out of the mantissa moves into the exponent field, which is exactly right
//   else            subnormal result: shift the significand (implicit bit set) down to units of the smallest
//                   subnormal; below half of that unit the result is zero
// Rounding is branch-free (random data would mispredict): adding half-1 plus (kept lsb | sticky) carries
// exactly when round-to-nearest-even rounds up.

const SCRATCH = new ArrayBuffer(8);
const S64 = new Float64Array(SCRATCH);
const S32 = new Uint32Array(SCRATCH);
const SF32 = new Float32Array(SCRATCH, 0, 1);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0; // little-endian: high word second
const LO = 1 - HI;

function f32Bits(x: number): number {
  SF32[0] = x;
  return S32[0];
}
function f64HiWord(x: number): number {
  S64[0] = x;
  return S32[HI];
}

interface MiniFloat {
  readonly mbits: number;
  readonly ebits: number;
  readonly bias: number;
  readonly signBit: number;
  readonly signShift: number;
  readonly ieee: boolean; // all-ones exponent = inf/NaN (false: e4m3fn, only the all-ones code is NaN)
  readonly nan: number; // canonical NaN code
  readonly ovCode: number; // what overflow and ±inf give (magnitude): inf code, or max finite for e4m3fn
  // from f32 bits
  readonly ov32: number;
  readonly minNorm32: number;
  readonly zero32: number; // magnitudes below this round to zero
  readonly shift32: number;
  readonly half32: number; // half an ulp, minus one
  readonly rebias32: number;
  readonly subBase32: number;
  // from the high word of a double
  readonly ov64: number;
  readonly minNorm64: number;
  readonly zero64: number;
  readonly shift64: number;
  readonly half64: number;
  readonly rebias64: number;
  readonly subBase64: number;
  table: Float32Array | null; // lazily built decode table (every value is exact in f32)
}

function miniFloat(mbits: number, ebits: number, nan: number, ieee: boolean): MiniFloat {
  const bias = (1 << (ebits - 1)) - 1;
  const infCode = ((1 << ebits) - 1) << mbits;
  const maxFinite = ieee ? infCode - 1 : (1 << (ebits + mbits)) - 2;
  const topExp = maxFinite >>> mbits;
  const maxVal = ((maxFinite & ((1 << mbits) - 1)) + (1 << mbits)) * 2 ** (topExp - bias - mbits);
  const overflowAt = maxVal + 2 ** (topExp - bias - mbits - 1); // the midpoint above max ties away from max (odd)
  const minNormal = 2 ** (1 - bias);
  const halfSubnormal = 2 ** (-bias - mbits);
  const f: MiniFloat = {
    mbits, ebits, bias, signBit: 1 << (ebits + mbits), signShift: ebits + mbits, ieee, nan,
    ovCode: ieee ? infCode : maxFinite,
    ov32: f32Bits(overflowAt), minNorm32: f32Bits(minNormal), zero32: f32Bits(halfSubnormal),
    shift32: 23 - mbits, half32: (1 << (22 - mbits)) - 1, rebias32: (127 - bias) << 23, subBase32: 151 - bias - mbits,
    ov64: f64HiWord(overflowAt), minNorm64: f64HiWord(minNormal), zero64: f64HiWord(halfSubnormal),
    shift64: 20 - mbits, half64: (1 << (19 - mbits)) - 1, rebias64: (1023 - bias) << 20, subBase64: 1044 - bias - mbits,
    table: null,
  };
  return f;
}

const F16 = miniFloat(10, 5, 0x7e00, true);
const BF16 = miniFloat(7, 8, 0x7fc0, true);
const E4M3 = miniFloat(3, 4, 0x7f, false);
const E5M2 = miniFloat(2, 5, 0x7e, true);

/** Value of code `bits` straight from the format definition. */
function miniValue(f: MiniFloat, bits: number): number {
  const emask = (1 << f.ebits) - 1;
  const mmask = (1 << f.mbits) - 1;
  const sign = (bits & f.signBit) !== 0 ? -1 : 1;
  const e = (bits >>> f.mbits) & emask;
  const m = bits & mmask;
  if (e === emask && (f.ieee || m === mmask)) return f.ieee && m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** (1 - f.bias - f.mbits);
  return sign * (m + (1 << f.mbits)) * 2 ** (e - f.bias - f.mbits);
}

function miniTable(f: MiniFloat): Float32Array {
  if (f.table === null) {
    const t = new Float32Array(1 << (f.ebits + f.mbits + 1));
    for (let b = 0; b < t.length; b++) t[b] = miniValue(f, b);
    f.table = t;
  }
  return f.table;
}

/** Encode the f32 whose bits are u. */
function miniFromF32(f: MiniFloat, u: number): number {
  const a = u & 0x7fffffff;
  const sign = (u >>> 31) << f.signShift;
  if (a >= f.ov32) return a > 0x7f800000 ? f.nan : sign | f.ovCode;
  const s = f.shift32;
  if (a >= f.minNorm32) return sign | ((a + f.half32 + ((a >>> s) & 1) - f.rebias32) >>> s);
  if (a < f.zero32) return sign;
  const e = a >>> 23; // 0 only for bfloat16, whose subnormals reach into f32's
  const sig = e === 0 ? a : (a & 0x7fffff) | 0x800000;
  const t = f.subBase32 - (e === 0 ? 1 : e);
  return sign | ((sig + (1 << (t - 1)) - 1 + ((sig >>> t) & 1)) >>> t);
}

/** Encode the double whose IEEE words are (hi, lo). */
function miniFromWords(f: MiniFloat, hi: number, lo: number): number {
  const a = hi & 0x7fffffff;
  const sign = (hi >>> 31) << f.signShift;
  if (a >= f.ov64) return a > 0x7ff00000 || (a === 0x7ff00000 && lo !== 0) ? f.nan : sign | f.ovCode;
  const sticky = lo !== 0 ? 1 : 0;
  const s = f.shift64;
  if (a >= f.minNorm64) return sign | ((a + f.half64 + (((a >>> s) & 1) | sticky) - f.rebias64) >>> s);
  if (a < f.zero64) return sign; // includes every double subnormal
  const sig = (a & 0xfffff) | 0x100000;
  const t = f.subBase64 - (a >>> 20);
  return sign | ((sig + (1 << (t - 1)) - 1 + (((sig >>> t) & 1) | sticky)) >>> t);
}

function miniFromNumber(f: MiniFloat, x: number): number {
  S64[0] = x;
  return miniFromWords(f, S32[HI], S32[LO]);
}

export function toF16Bits(x: number): number { return miniFromNumber(F16, x); }
export function toBf16Bits(x: number): number { return miniFromNumber(BF16, x); }
export function toE4m3Bits(x: number): number { return miniFromNumber(E4M3, x); }
export function toE5m2Bits(x: number): number { return miniFromNumber(E5M2, x); }
/** Value of a float16 code (only the low 16 bits of h are used). */
export function f16BitsToNumber(h: number): number { return miniTable(F16)[h & 0xffff]; }
export function bf16BitsToNumber(h: number): number { return miniTable(BF16)[h & 0xffff]; }
export function e4m3BitsToNumber(b: number): number { return miniTable(E4M3)[b & 0xff]; }
export function e5m2BitsToNumber(b: number): number { return miniTable(E5M2)[b & 0xff]; }

function miniOf(d: DType): MiniFloat | null {
  switch (d) {
    case 'float16': return F16;
    case 'bfloat16': return BF16;
    case 'float8_e4m3fn': return E4M3;
    case 'float8_e5m2': return E5M2;
    default: return null;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Integers: truncate toward zero, saturate, NaN -> 0. Typed-array stores truncate, so in-range values are
// stored as they are.

function satInt(x: number, lo: number, hi: number): number {
  return x >= lo ? (x <= hi ? Math.trunc(x) : hi) : x !== x ? 0 : lo;
}

/** Clamp for whole-array loops: NaN passes through and the typed-array store (or `& 15`) makes it 0. */
function clampNum(x: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, x));
}

function encodeMini(f: MiniFloat, src: ArrayLike<number>, n: number, out: Uint16Array | Uint8Array): void {
  if (src instanceof Float32Array) {
    const u = new Uint32Array(src.buffer, src.byteOffset, n);
    for (let i = 0; i < n; i++) out[i] = miniFromF32(f, u[i]);
  } else if (src instanceof Float64Array) {
    const w = new Uint32Array(src.buffer, src.byteOffset, 2 * n);
    for (let i = 0; i < n; i++) out[i] = miniFromWords(f, w[2 * i + HI], w[2 * i + LO]);
  } else {
    for (let i = 0; i < n; i++) {
      S64[0] = src[i];
      out[i] = miniFromWords(f, S32[HI], S32[LO]);
    }
  }
}

function encodeClamped(src: ArrayLike<number>, n: number, out: Int8Array | Uint8Array | Int32Array, lo: number, hi: number): void {
  for (let i = 0; i < n; i++) {
    out[i] = clampNum(+src[i], lo, hi); // the store truncates toward zero and maps NaN to 0
  }
}

function encodePacked(src: ArrayLike<number>, n: number, out: Uint8Array, lo: number, hi: number): void {
  const pairs = n >> 1;
  for (let i = 0; i < pairs; i++) {
    out[i] = (clampNum(+src[2 * i], lo, hi) & 15) | ((clampNum(+src[2 * i + 1], lo, hi) & 15) << 4);
  }
  if (n & 1) out[pairs] = clampNum(+src[n - 1], lo, hi) & 15; // & truncates toward zero, NaN & 15 = 0
}

function checkStorage(op: string, d: DType, s: Storage, n: number): void {
  const inf = dtypeInfo(d);
  checkCount(op, n);
  if (!(s instanceof CTORS[inf.storage])) {
    throw new TesseraError('E_DTYPE', op, `storage for ${d} must be a ${inf.storage}, got ${describe(s)}`);
  }
  const need = inf.isPacked ? Math.ceil(n / 2) : n;
  if (s.length < need) throw new TesseraError('E_ARG', op, `storage holds ${s.length} entries, ${d} x ${n} needs ${need}`);
}

/**
 * Encode n numbers from src into dst (storage of dtype d, at least storageLength(d, n) long), elements 0..n-1.
 * For int4/uint4 with odd n the high nibble of the last byte is set to zero.
 */
export function encodeInto(d: DType, src: ArrayLike<number>, dst: Storage, n: number = src.length): Storage {
  checkStorage('encode', d, dst, n);
  if (n > src.length) throw new TesseraError('E_ARG', 'encode', `n = ${n} exceeds the source length ${src.length}`);
  const f = miniOf(d);
  if (f !== null) {
    encodeMini(f, src, n, dst as Uint16Array | Uint8Array);
    return dst;
  }
  switch (d) {
    case 'float32':
    case 'float64':
      if (n === src.length) (dst as Float64Array).set(src);
      else for (let i = 0; i < n; i++) dst[i] = src[i]; // Float32Array store = RNE
      break;
    case 'int8': encodeClamped(src, n, dst as Int8Array, -128, 127); break;
    case 'uint8': encodeClamped(src, n, dst as Uint8Array, 0, 255); break;
    case 'int32': encodeClamped(src, n, dst as Int32Array, -2147483648, 2147483647); break;
    case 'int4': encodePacked(src, n, dst as Uint8Array, -8, 7); break;
    case 'uint4': encodePacked(src, n, dst as Uint8Array, 0, 15); break;
    case 'bool': for (let i = 0; i < n; i++) dst[i] = +src[i] !== 0 ? 1 : 0; break; // NaN !== 0
    default: throw new TesseraError('E_DTYPE', 'encode', `unhandled dtype ${d}`);
  }
  return dst;
}

/** Numbers -> new storage of dtype d (n defaults to src.length). */
export function encode(d: DType, src: ArrayLike<number>, n: number = src.length): Storage {
  return encodeInto(d, src, allocStorage(d, n), n);
}

/** Storage -> numbers. Exact into a Float64Array (the default); a Float32Array out rounds float64/int32. */
export function decode(d: DType, storage: Storage, n: number): Float64Array;
export function decode<T extends Float32Array | Float64Array>(d: DType, storage: Storage, n: number, out: T): T;
export function decode(d: DType, storage: Storage, n: number, out?: Float32Array | Float64Array): Float64Array | Float32Array;
export function decode(d: DType, storage: Storage, n: number, out?: Float32Array | Float64Array): Float64Array | Float32Array {
  checkStorage('decode', d, storage, n);
  const o = out ?? new Float64Array(n);
  if (o.length < n) throw new TesseraError('E_ARG', 'decode', `out holds ${o.length} elements, needs ${n}`);
  const f = miniOf(d);
  if (f === BF16 && o instanceof Float32Array) decodeBf16ToF32(storage as Uint16Array, n, o);
  else if (f !== null) decodeByTable(miniTable(f), storage as Uint16Array | Uint8Array, n, o);
  else if (d === 'bool') decodeBool(storage as Uint8Array, n, o);
  else if (d === 'int4' || d === 'uint4') decodeNibbles(storage as Uint8Array, n, o, d === 'int4' ? 8 : 0);
  else o.set(n === storage.length ? storage : storage.subarray(0, n));
  return o;
}

// One small loop per storage kind keeps each loop's element accesses monomorphic-ish.
function decodeBf16ToF32(s: Uint16Array, n: number, o: Float32Array): void {
  const u = new Uint32Array(o.buffer, o.byteOffset, n);
  for (let i = 0; i < n; i++) u[i] = s[i] << 16;
}
function decodeByTable(t: Float32Array, s: Uint16Array | Uint8Array, n: number, o: Float32Array | Float64Array): void {
  for (let i = 0; i < n; i++) o[i] = t[s[i]];
}
function decodeBool(s: Uint8Array, n: number, o: Float32Array | Float64Array): void {
  for (let i = 0; i < n; i++) o[i] = Math.min(s[i], 1);
}
/** x = 8 sign-extends a nibble ((nib ^ 8) - 8), x = 0 leaves it unsigned. */
function decodeNibbles(s: Uint8Array, n: number, o: Float32Array | Float64Array, x: number): void {
  const pairs = n >> 1;
  for (let i = 0; i < pairs; i++) {
    const b = s[i];
    o[2 * i] = ((b & 15) ^ x) - x;
    o[2 * i + 1] = ((b >>> 4) ^ x) - x;
  }
  if (n & 1) o[n - 1] = ((s[pairs] & 15) ^ x) - x;
}

/** Storage -> Float32Array (float64 and int32 values rounded to f32, nearest-even; everything else exact). */
export function decodeF32(d: DType, storage: Storage, n: number): Float32Array {
  return decode(d, storage, n, new Float32Array(n));
}

/** Element i (packed nibbles handled). No range or storage-type checks: this is the per-element hot path. */
export function getElement(d: DType, storage: Storage, i: number): number {
  switch (d) {
    case 'float16': return miniTable(F16)[storage[i]];
    case 'bfloat16': return miniTable(BF16)[storage[i]];
    case 'float8_e4m3fn': return miniTable(E4M3)[storage[i]];
    case 'float8_e5m2': return miniTable(E5M2)[storage[i]];
    case 'int4': return (((i & 1 ? storage[i >> 1] >>> 4 : storage[i >> 1]) & 15) ^ 8) - 8;
    case 'uint4': return (i & 1 ? storage[i >> 1] >>> 4 : storage[i >> 1]) & 15;
    case 'bool': return storage[i] !== 0 ? 1 : 0;
    default: return storage[i];
  }
}

/** Store v as element i with the same rules as encode (the other nibble of a packed byte is kept). */
export function setElement(d: DType, storage: Storage, i: number, v: number): void {
  switch (d) {
    case 'float32':
    case 'float64': storage[i] = v; return;
    case 'float16': storage[i] = miniFromNumber(F16, v); return;
    case 'bfloat16': storage[i] = miniFromNumber(BF16, v); return;
    case 'float8_e4m3fn': storage[i] = miniFromNumber(E4M3, v); return;
    case 'float8_e5m2': storage[i] = miniFromNumber(E5M2, v); return;
    case 'int8': storage[i] = satInt(v, -128, 127); return;
    case 'uint8': storage[i] = satInt(v, 0, 255); return;
    case 'int32': storage[i] = satInt(v, -2147483648, 2147483647); return;
    case 'int4':
    case 'uint4': {
      const nib = (d === 'int4' ? satInt(v, -8, 7) : satInt(v, 0, 15)) & 15;
      const b = storage[i >> 1];
      storage[i >> 1] = i & 1 ? (b & 0x0f) | (nib << 4) : (b & 0xf0) | nib;
      return;
    }
    case 'bool': storage[i] = v !== 0 ? 1 : 0; return;
    default: throw new TesseraError('E_DTYPE', 'setElement', `unknown dtype ${describe(d)}`);
  }
}

/** The number x becomes when stored as dtype d (encode then decode, one element). */
export function castScalar(d: DType, x: number): number {
  const s = allocStorage(d, 1);
  setElement(d, s, 0, x);
  return getElement(d, s, 0);
}

/**
 * Convert n elements of `from` storage into new storage of dtype `to`, rounding the exact source value once
 * (same rules as encode). Always returns new storage (a copy when from === to).
 */
export function castStorage(from: DType, to: DType, storage: Storage, n: number): Storage {
  checkStorage('castStorage', from, storage, n);
  dtypeInfo(to);
  if (from === to) return storage.slice(0, storageLength(from, n));
  if (to === 'float32') return decodeF32(from, storage, n);
  if (to === 'float64') return decode(from, storage, n);
  if (from === 'float32' || from === 'float64') return encode(to, storage, n);
  if (from === 'int32') return encode(to, decode(from, storage, n), n); // int32 is not exact in f32
  if (n >= 1024 && INFO[from].bits === 8) return castByByteTable(from, to, storage as Uint8Array | Int8Array, n);
  // every remaining source dtype is exact in f32, so the f32 bit path rounds the exact value
  return encode(to, decodeF32(from, storage, n), n);
}

/** One byte per source element: convert the 256 possible bytes once, then look each element up. */
function castByByteTable(from: DType, to: DType, storage: Uint8Array | Int8Array, n: number): Storage {
  const bytes = new Uint8Array(256);
  for (let b = 0; b < 256; b++) bytes[b] = b;
  const values = decode(from, from === 'int8' ? new Int8Array(bytes.buffer) : bytes, 256);
  const out = allocStorage(to, n);
  if (INFO[to].isPacked) {
    const nib = new Uint8Array(256);
    for (let b = 0; b < 256; b++) {
      const one = new Uint8Array(1);
      setElement(to, one, 0, values[b]); // element 0: the low nibble
      nib[b] = one[0];
    }
    const pairs = n >> 1;
    for (let i = 0; i < pairs; i++) out[i] = nib[storage[2 * i] & 0xff] | (nib[storage[2 * i + 1] & 0xff] << 4);
    if (n & 1) out[pairs] = nib[storage[n - 1] & 0xff];
    return out;
  }
  const lut = encode(to, values, 256);
  for (let i = 0; i < n; i++) out[i] = lut[storage[i] & 0xff];
  return out;
}
