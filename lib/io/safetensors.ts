/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors, format only).
 *
 * File layout: u64 little-endian N, then N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets: [begin,
 * end]}, "__metadata__"?: {string: string}}, then the data section; offsets are relative to its start.
 *
 * Validation happens once, at open: header length sane (8 + N <= file size, N <= 100 MiB), JSON an object,
 * dtype one of the format's names, shape non-negative integers, numel x element size == end - begin, no two
 * tensors' byte ranges overlap, and every range inside the file (a short file is reported as truncated,
 * naming the first tensor that does not fit). Every failure is a TesseraError (E_IO) naming the file and
 * the tensor.
 *
 * Reading is memory-light: nothing but the header is read at open, and each tensor is read with one
 * positioned read straight into the typed array that becomes its storage (no intermediate Buffer, no
 * copy in JS). Node has no mmap; this keeps peak memory at the weights themselves. Sharded checkpoints
 * (model.safetensors.index.json with a weight_map) open as one Checkpoint.
 *
 * dtypes: F64 F32 F16 BF16 I32 I8 U8 BOOL F8_E4M3 F8_E5M2 map to tessera dtypes bit for bit; I16 U16 U32
 * I64 U64 are read as int32 (range-checked), and F8_E8M0 is recognised but not readable. Little-endian
 * hosts only (the format is little-endian).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DType, Storage as HostArray, allocStorage, storageBytes } from '../dtype';
import { TesseraError, describe } from '../errors';
import { Tensor } from '../tensor';
import { fmtShape } from '../validate';

const OP = 'safetensors';
const MAX_HEADER = 100 * 1024 * 1024;
const CHUNK = 1 << 30; // one read call moves at most 1 GiB (the syscall's limit is just under 2 GiB)

interface StDType { bytes: number; dtype: DType | null; via?: 'int32' }
/** Every dtype name of the format, its element size and the tessera dtype it reads as. */
const ST_DTYPES: Readonly<Record<string, StDType>> = Object.freeze({
  F64: { bytes: 8, dtype: 'float64' },
  F32: { bytes: 4, dtype: 'float32' },
  F16: { bytes: 2, dtype: 'float16' },
  BF16: { bytes: 2, dtype: 'bfloat16' },
  I32: { bytes: 4, dtype: 'int32' },
  I8: { bytes: 1, dtype: 'int8' },
  U8: { bytes: 1, dtype: 'uint8' },
  BOOL: { bytes: 1, dtype: 'bool' },
  F8_E4M3: { bytes: 1, dtype: 'float8_e4m3fn' },
  F8_E5M2: { bytes: 1, dtype: 'float8_e5m2' },
  I16: { bytes: 2, dtype: 'int32', via: 'int32' },
  U16: { bytes: 2, dtype: 'int32', via: 'int32' },
  U32: { bytes: 4, dtype: 'int32', via: 'int32' },
  I64: { bytes: 8, dtype: 'int32', via: 'int32' },
  U64: { bytes: 8, dtype: 'int32', via: 'int32' },
  F8_E8M0: { bytes: 1, dtype: null },
});
const TO_ST: Partial<Record<DType, string>> = {
  float64: 'F64', float32: 'F32', float16: 'F16', bfloat16: 'BF16', int32: 'I32', int8: 'I8', uint8: 'U8',
  bool: 'BOOL', float8_e4m3fn: 'F8_E4M3', float8_e5m2: 'F8_E5M2',
};

export interface TensorInfo {
  name: string;
  /** the file's dtype name (F32, BF16, ...) */
  stDtype: string;
  /** the tessera dtype it reads as (null: not readable) */
  dtype: DType | null;
  shape: number[];
  /** absolute byte range in the file */
  begin: number;
  end: number;
  file: string;
}

function ioError(file: string, msg: string): TesseraError {
  return new TesseraError('E_IO', OP, `${file}: ${msg}`);
}

function checkEndian(): void {
  if (os.endianness() !== 'LE') throw new TesseraError('E_IO', OP, 'safetensors is little-endian; this host is big-endian');
}

/**
 * Validates a parsed header against the file: `dataStart` is 8 + N, `fileSize` the file's length.
 * Returns the tensors in file order and the metadata.
 */
export function validateHeader(json: unknown, file: string, dataStart: number, fileSize: number): { tensors: TensorInfo[]; metadata: Record<string, string> } {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw ioError(file, `header must be a JSON object, got ${describe(json)}`);
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw ioError(file, `__metadata__ must be an object of strings, got ${describe(v)}`);
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') throw ioError(file, `__metadata__.${k} must be a string, got ${describe(s)}`);
        metadata[k] = s;
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw ioError(file, `${where}: entry must be {dtype, shape, data_offsets}, got ${describe(v)}`);
    const e = v as Record<string, unknown>;
    const st = typeof e.dtype === 'string' && Object.prototype.hasOwnProperty.call(ST_DTYPES, e.dtype) ? ST_DTYPES[e.dtype] : null;
    if (!st) throw ioError(file, `${where}: unknown dtype ${describe(e.dtype)}; the format's dtypes are ${Object.keys(ST_DTYPES).join(', ')}`);
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) {
      throw ioError(file, `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`);
    }
    const shape = (e.shape as number[]).slice();
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) || off[0] > off[1]) {
      throw ioError(file, `${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
    }
    const numel = shape.reduce((a, b) => a * b, 1);
    const want = numel * st.bytes;
    if (!Number.isSafeInteger(want) || want !== off[1] - off[0]) {
      throw ioError(file, `${where}: shape ${fmtShape(shape)} of ${e.dtype} needs ${want} bytes but data_offsets [${off[0]}, ${off[1]}] span ${off[1] - off[0]}`);
    }
    tensors.push({ name, stDtype: e.dtype as string, dtype: st.dtype, shape, begin: dataStart + off[0], end: dataStart + off[1], file });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev: TensorInfo | null = null;
  for (const t of tensors) {
    if (t.end === t.begin) continue;
    if (prev && t.begin < prev.end) {
      throw ioError(file, `tensors "${prev.name}" [${prev.begin - dataStart}, ${prev.end - dataStart}) and "${t.name}" [${t.begin - dataStart}, ${t.end - dataStart}) overlap`);
    }
    prev = t;
  }
  for (const t of tensors) {
    if (t.end > fileSize) {
      throw ioError(file, `file is truncated: tensor "${t.name}" needs bytes up to ${t.end} but the file has ${fileSize}`);
    }
  }
  return { tensors, metadata };
}

function readFully(fd: number, dst: Uint8Array, position: number, file: string, name: string): void {
  let done = 0;
  while (done < dst.length) {
    const n = fs.readSync(fd, dst, done, Math.min(CHUNK, dst.length - done), position + done);
    if (n <= 0) throw ioError(file, `file is truncated: tensor "${name}" ends at byte ${position + dst.length} but reading stopped at ${position + done}`);
    done += n;
  }
}

function readAt(fd: number, dst: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, dst, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

async function readFullyAsync(fd: number, dst: Uint8Array, position: number, file: string, name: string): Promise<void> {
  let done = 0;
  while (done < dst.length) {
    const bytesRead = await readAt(fd, dst, done, Math.min(CHUNK, dst.length - done), position + done);
    if (bytesRead <= 0) throw ioError(file, `file is truncated: tensor "${name}" ends at byte ${position + dst.length} but reading stopped at ${position + done}`);
    done += bytesRead;
  }
}

/** Storage for a tensor read from `info`, and the bytes to fill (the storage itself when bit-compatible). */
function destination(info: TensorInfo): { raw: Uint8Array; finish: () => HostArray } {
  const numel = info.shape.reduce((a, b) => a * b, 1);
  const st = ST_DTYPES[info.stDtype];
  if (!info.dtype) {
    throw new TesseraError('E_DTYPE', OP, `${info.file}: tensor "${info.name}" has dtype ${info.stDtype}, which tessera cannot represent`);
  }
  if (!st.via) {
    const arr = allocStorage(info.dtype, numel);
    return { raw: new Uint8Array(arr.buffer, arr.byteOffset, storageBytes(info.dtype, numel)), finish: () => arr };
  }
  // integer widths tessera lacks: read raw, convert to int32 with a range check
  const raw = new Uint8Array(numel * st.bytes);
  return {
    raw,
    finish: () => {
      const out = new Int32Array(numel);
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let i = 0; i < numel; i++) {
        let v: number | bigint;
        switch (info.stDtype) {
          case 'I16': v = dv.getInt16(2 * i, true); break;
          case 'U16': v = dv.getUint16(2 * i, true); break;
          case 'U32': v = dv.getUint32(4 * i, true); break;
          case 'I64': v = dv.getBigInt64(8 * i, true); break;
          default: v = dv.getBigUint64(8 * i, true);
        }
        if (v < -2147483648 || v > 2147483647) {
          throw new TesseraError('E_DTYPE', OP, `${info.file}: tensor "${info.name}" (${info.stDtype}) holds ${v} at flat index ${i}, outside int32`);
        }
        out[i] = Number(v);
      }
      return out;
    },
  };
}

/** One .safetensors file, opened for reading (only the header is read until a tensor is asked for). */
export class SafetensorsFile {
  readonly path: string;
  readonly size: number;
  readonly metadata: Readonly<Record<string, string>>;
  private readonly byName = new Map<string, TensorInfo>();
  private fd: number | null;

  private constructor(file: string, fd: number, size: number, tensors: TensorInfo[], metadata: Record<string, string>) {
    this.path = file;
    this.fd = fd;
    this.size = size;
    this.metadata = Object.freeze(metadata);
    for (const t of tensors) this.byName.set(t.name, t);
  }

  static open(file: string): SafetensorsFile {
    checkEndian();
    if (typeof file !== 'string') throw new TesseraError('E_TYPE', OP, `file must be a path string, got ${describe(file)}`);
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw ioError(file, `cannot open: ${(e as Error).message}`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw ioError(file, `file is truncated: ${size} bytes, shorter than the 8-byte header length`);
      const len8 = Buffer.alloc(8);
      readFully(fd, len8, 0, file, '(header length)');
      const n64 = len8.readBigUInt64LE(0);
      if (n64 < 2n || n64 > BigInt(MAX_HEADER)) throw ioError(file, `header length ${n64} is not sane (2 .. ${MAX_HEADER} bytes): not a safetensors file?`);
      const n = Number(n64);
      if (8 + n > size) throw ioError(file, `file is truncated: the header needs ${8 + n} bytes but the file has ${size}`);
      const hdr = Buffer.alloc(n);
      readFully(fd, hdr, 8, file, '(header)');
      let json: unknown;
      try {
        json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hdr));
      } catch (e) {
        throw ioError(file, `header is not valid UTF-8 JSON: ${(e as Error).message}`);
      }
      const { tensors, metadata } = validateHeader(json, file, 8 + n, size);
      return new SafetensorsFile(file, fd, size, tensors, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Tensor names in file order. */
  keys(): string[] {
    return [...this.byName.keys()];
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw ioError(this.path, `no tensor "${name}" (it has ${this.byName.size}: ${this.keys().slice(0, 6).join(', ')}${this.byName.size > 6 ? ', ...' : ''})`);
    return t;
  }
  private handle(): number {
    if (this.fd === null) throw ioError(this.path, 'file was closed');
    return this.fd;
  }
  /** Reads one tensor into a new host tensor in its own dtype (I16/U16/U32/I64/U64 become int32). */
  readSync(name: string): Tensor {
    const info = this.info(name);
    const d = destination(info);
    readFully(this.handle(), d.raw, info.begin, this.path, name);
    return Tensor._fromHost(info.dtype as DType, info.shape, d.finish());
  }
  /** readSync without blocking the event loop during the read. */
  async read(name: string): Promise<Tensor> {
    const info = this.info(name);
    const d = destination(info);
    await readFullyAsync(this.handle(), d.raw, info.begin, this.path, name);
    return Tensor._fromHost(info.dtype as DType, info.shape, d.finish());
  }
  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * The weights of a checkpoint directory: model.safetensors, or the shards that
 * model.safetensors.index.json's weight_map lists (each shard opened once, lazily).
 */
export class Checkpoint {
  readonly dir: string;
  /** the files, relative to dir */
  readonly files: string[];
  private readonly where = new Map<string, string>();
  private readonly open = new Map<string, SafetensorsFile>();

  private constructor(dir: string, files: string[], where: Map<string, string>) {
    this.dir = dir;
    this.files = files;
    this.where = where;
  }

  static open(dir: string): Checkpoint {
    const index = path.join(dir, 'model.safetensors.index.json');
    const single = path.join(dir, 'model.safetensors');
    if (fs.existsSync(index)) {
      let j: unknown;
      try {
        j = JSON.parse(fs.readFileSync(index, 'utf8'));
      } catch (e) {
        throw ioError(index, `cannot read the shard index: ${(e as Error).message}`);
      }
      const map = (j as { weight_map?: unknown })?.weight_map;
      if (!map || typeof map !== 'object' || Array.isArray(map)) throw ioError(index, 'has no weight_map object');
      const where = new Map<string, string>();
      for (const [name, f] of Object.entries(map as Record<string, unknown>)) {
        if (typeof f !== 'string' || f.includes('..') || path.isAbsolute(f)) throw ioError(index, `weight_map["${name}"] must be a file name in ${dir}, got ${describe(f)}`);
        where.set(name, f);
      }
      const files = [...new Set(where.values())];
      for (const f of files) if (!fs.existsSync(path.join(dir, f))) throw ioError(index, `lists shard ${f}, which is missing from ${dir}`);
      const ck = new Checkpoint(dir, files, where);
      // every shard's header is read now, so a tensor the index names but its shard lacks fails here
      for (const [name, f] of where) if (!ck.file(f).has(name)) throw ioError(path.join(dir, f), `has no tensor "${name}", which ${path.basename(index)} puts there`);
      return ck;
    }
    if (fs.existsSync(single)) {
      const ck = new Checkpoint(dir, ['model.safetensors'], new Map());
      for (const name of ck.file('model.safetensors').keys()) ck.where.set(name, 'model.safetensors');
      return ck;
    }
    const other = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /\.(bin|pt|pth|gguf|safetensors)$/.test(f)) : [];
    throw new TesseraError('E_IO', OP, `${dir}: no model.safetensors or model.safetensors.index.json` +
      (other.length ? ` (found ${other.join(', ')}; only safetensors checkpoints are read: convert with transformers' save_pretrained(safe_serialization=True))` : ''));
  }

  private file(f: string): SafetensorsFile {
    let s = this.open.get(f);
    if (!s) {
      s = SafetensorsFile.open(path.join(this.dir, f));
      this.open.set(f, s);
    }
    return s;
  }
  keys(): string[] {
    return [...this.where.keys()];
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  /** The file (full path) that holds name, or null. */
  fileOf(name: string): string | null {
    const f = this.where.get(name);
    return f ? path.join(this.dir, f) : null;
  }
  info(name: string): TensorInfo {
    const f = this.where.get(name);
    if (!f) throw ioError(this.dir, `checkpoint has no tensor "${name}" (files: ${this.files.join(', ')})`);
    return this.file(f).info(name);
  }
  readSync(name: string): Tensor {
    this.info(name);
    return this.file(this.where.get(name)!).readSync(name);
  }
  async read(name: string): Promise<Tensor> {
    this.info(name);
    return this.file(this.where.get(name)!).read(name);
  }
  /** Bytes of all tensors (for progress reporting). */
  totalBytes(): number {
    let n = 0;
    for (const k of this.where.keys()) {
      const i = this.info(k);
      n += i.end - i.begin;
    }
    return n;
  }
  close(): void {
    for (const f of this.open.values()) f.close();
    this.open.clear();
  }
}

/** Every tensor of one file, read eagerly. */
export function loadSafetensors(file: string): Record<string, Tensor> {
  const f = SafetensorsFile.open(file);
  try {
    const out: Record<string, Tensor> = {};
    for (const k of f.keys()) out[k] = f.readSync(k);
    return out;
  } finally {
    f.close();
  }
}

/**
 * Writes tensors (host or device; any float/int dtype the format has) to a .safetensors file, header
 * padded with spaces to 8 bytes as the reference writer does, tensors in the order given.
 */
export function saveSafetensors(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  checkEndian();
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new TesseraError('E_TYPE', OP, `metadata.${k} must be a string, got ${describe(v)}`);
    header.__metadata__ = metadata;
  }
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (!(t instanceof Tensor)) throw new TesseraError('E_TYPE', OP, `tensors["${name}"] must be a Tensor, got ${describe(t)}`);
    const st = TO_ST[t.dtype];
    if (!st) throw new TesseraError('E_DTYPE', OP, `tensors["${name}"] has dtype ${t.dtype}, which safetensors cannot store`);
    const data = t.data();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, storageBytes(t.dtype, t.size));
    header[name] = { dtype: st, shape: t.shape.slice(), data_offsets: [off, off + bytes.length] };
    blobs.push(bytes);
    off += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const hdr = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hdr.length));
  const fd = fs.openSync(file, 'w');
  try {
    for (const b of [len, hdr, ...blobs]) fs.writeSync(fd, b);
  } finally {
    fs.closeSync(fd);
  }
}

/** The tessera dtype a safetensors dtype name reads as (null when unreadable or unknown). */
export function fromSafetensorsDType(name: string): DType | null {
  return Object.prototype.hasOwnProperty.call(ST_DTYPES, name) ? ST_DTYPES[name].dtype : null;
}
