'use strict';
// The safetensors reader (lib/io/safetensors.ts) against files built byte by byte here: every dtype of
// the format, metadata, odd offsets, sharded checkpoints, and broken files (bad header length, bad JSON,
// unknown dtype, wrong sizes, overlapping ranges, truncation), each of which must be a TesseraError with
// code E_IO naming the file and the tensor. Also saveSafetensors round trips and a file written by the
// Python safetensors library (the HF fixture) reads back.
const test = require('tape');
const fs = require('fs');
const os = require('os');
const path = require('path');
const T = require('../dist');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-st-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let nfile = 0;

/**
 * Writes a safetensors file: entries [{ name, dtype, shape, data: Buffer, offsets? }] laid out in order
 * (offsets override the computed ones). opts: header (raw object or string replacing the JSON), metadata,
 * lengthField (BigInt overriding N), cut (bytes to drop from the end), pad (bytes between tensors).
 */
function writeRaw(entries, opts = {}) {
  const file = path.join(tmp, `f${nfile++}.safetensors`);
  const header = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  const blobs = [];
  let off = 0;
  for (const e of entries) {
    off += opts.pad || 0;
    if (opts.pad) blobs.push(Buffer.alloc(opts.pad));
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: e.offsets || [off, off + e.data.length] };
    blobs.push(e.data);
    off += e.data.length;
  }
  let json = typeof opts.header === 'string' ? opts.header : JSON.stringify(opts.header || header);
  const hdr = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.lengthField !== undefined ? opts.lengthField : BigInt(hdr.length));
  let buf = Buffer.concat([len, hdr, ...blobs]);
  if (opts.cut) buf = buf.subarray(0, buf.length - opts.cut);
  fs.writeFileSync(file, buf);
  return file;
}

const bytesOf = (ta) => Buffer.from(ta.buffer, ta.byteOffset, ta.byteLength);

function throwsTess(a, f, code, parts, msg) {
  try {
    f();
    a.fail(`${msg}: did not throw`);
  } catch (e) {
    const ok = e instanceof T.TesseraError && e.code === code && parts.every((p) => e.message.includes(p));
    a.ok(ok, `${msg} -> ${e.code} ${e.message}`);
  }
}

test('every dtype reads bit for bit', (a) => {
  const f32 = new Float32Array([1.5, -2, 3.25, Infinity, NaN, -0]);
  const f64 = new Float64Array([Math.PI, -1e300]);
  const f16 = new Uint16Array([0x3c00, 0xc000, 0x7c00, 0x0001]); // 1, -2, inf, smallest subnormal
  const bf16 = new Uint16Array([0x3f80, 0xc040, 0x7f80, 0x0001]);
  const i32 = new Int32Array([-2147483648, 7, 2147483647]);
  const i8 = new Int8Array([-128, 0, 127]);
  const u8 = new Uint8Array([0, 200, 255]);
  const bool = new Uint8Array([1, 0, 1, 1]);
  const e4m3 = new Uint8Array([0x38, 0x7e, 0xff, 0x01]); // 1, 448, NaN, min subnormal
  const e5m2 = new Uint8Array([0x3c, 0x7c, 0x7b]); // 1, inf, max
  const file = writeRaw([
    { name: 'f32', dtype: 'F32', shape: [2, 3], data: bytesOf(f32) },
    { name: 'f64', dtype: 'F64', shape: [2], data: bytesOf(f64) },
    { name: 'f16', dtype: 'F16', shape: [4], data: bytesOf(f16) },
    { name: 'bf16', dtype: 'BF16', shape: [2, 2], data: bytesOf(bf16) },
    { name: 'i32', dtype: 'I32', shape: [3], data: bytesOf(i32) },
    { name: 'i8', dtype: 'I8', shape: [3], data: bytesOf(i8) },
    { name: 'u8', dtype: 'U8', shape: [3], data: bytesOf(u8) },
    { name: 'bool', dtype: 'BOOL', shape: [4], data: bytesOf(bool) },
    { name: 'e4m3', dtype: 'F8_E4M3', shape: [4], data: bytesOf(e4m3) },
    { name: 'e5m2', dtype: 'F8_E5M2', shape: [3], data: bytesOf(e5m2) },
    { name: 'scalar', dtype: 'F32', shape: [], data: bytesOf(new Float32Array([42])) },
    { name: 'empty', dtype: 'F32', shape: [0, 5], data: Buffer.alloc(0) },
  ], { metadata: { format: 'pt', note: 'hi' } });
  const f = T.SafetensorsFile.open(file);
  a.deepEqual(f.metadata, { format: 'pt', note: 'hi' }, 'metadata');
  const want = { f32: ['float32', f32], f64: ['float64', f64], f16: ['float16', f16], bf16: ['bfloat16', bf16], i32: ['int32', i32], i8: ['int8', i8], u8: ['uint8', u8], bool: ['bool', bool], e4m3: ['float8_e4m3fn', e4m3], e5m2: ['float8_e5m2', e5m2] };
  for (const [name, [dtype, data]] of Object.entries(want)) {
    const t = f.readSync(name);
    a.equal(t.dtype, dtype, `${name} dtype ${dtype}`);
    a.ok(Buffer.from(bytesOf(t.data())).equals(bytesOf(data)), `${name} storage bytes identical`);
    t.dispose();
  }
  const s = f.readSync('scalar');
  a.deepEqual([s.shape, s.item()], [[], 42], 'scalar shape []');
  const e = f.readSync('empty');
  a.deepEqual([e.shape, e.size], [[0, 5], 0], 'empty tensor');
  a.deepEqual(f.readSync('f32').shape, [2, 3], 'shape');
  f.close();
  a.end();
});

test('integer widths tessera lacks are read as int32 (range-checked); F8_E8M0 is recognised but not readable', async (a) => {
  const file = writeRaw([
    { name: 'i64', dtype: 'I64', shape: [3], data: bytesOf(new BigInt64Array([-5n, 0n, 2147483647n])) },
    { name: 'u64', dtype: 'U64', shape: [1], data: bytesOf(new BigUint64Array([7n])) },
    { name: 'i16', dtype: 'I16', shape: [2], data: bytesOf(new Int16Array([-32768, 5])) },
    { name: 'u16', dtype: 'U16', shape: [1], data: bytesOf(new Uint16Array([65535])) },
    { name: 'u32', dtype: 'U32', shape: [1], data: bytesOf(new Uint32Array([123456])) },
    { name: 'big', dtype: 'I64', shape: [1], data: bytesOf(new BigInt64Array([1n << 40n])) },
    { name: 'e8m0', dtype: 'F8_E8M0', shape: [2], data: Buffer.from([127, 128]) },
  ]);
  const f = T.SafetensorsFile.open(file);
  a.deepEqual(f.readSync('i64').toArray(), [-5, 0, 2147483647], 'I64');
  a.deepEqual((await f.read('i64')).toArray(), [-5, 0, 2147483647], 'I64 async');
  a.deepEqual(f.readSync('u64').toArray(), [7], 'U64');
  a.deepEqual(f.readSync('i16').toArray(), [-32768, 5], 'I16');
  a.deepEqual(f.readSync('u16').toArray(), [65535], 'U16');
  a.deepEqual(f.readSync('u32').toArray(), [123456], 'U32');
  a.equal(f.readSync('i16').dtype, 'int32', 'as int32');
  throwsTess(a, () => f.readSync('big'), 'E_DTYPE', ['big', path.basename(file), 'outside int32'], 'I64 beyond int32');
  throwsTess(a, () => f.readSync('e8m0'), 'E_DTYPE', ['e8m0', 'F8_E8M0'], 'F8_E8M0');
  throwsTess(a, () => f.readSync('nope'), 'E_IO', ['nope', path.basename(file)], 'unknown tensor name');
  f.close();
  throwsTess(a, () => f.readSync('i16'), 'E_IO', ['closed'], 'read after close');
  a.end();
});

test('unaligned and padded offsets, async reads, saveSafetensors round trip', async (a) => {
  const x = new Float32Array([1, 2, 3, 4, 5]);
  const file = writeRaw([
    { name: 'b', dtype: 'U8', shape: [1], data: Buffer.from([9]) },
    { name: 'x', dtype: 'F32', shape: [5], data: bytesOf(x) }, // starts at data offset 1: not 4-aligned
  ], { header: undefined });
  const f = T.SafetensorsFile.open(file);
  a.deepEqual(Array.from(f.readSync('x').toFloat32()), [1, 2, 3, 4, 5], 'unaligned F32');
  a.deepEqual(Array.from((await f.read('x')).toFloat32()), [1, 2, 3, 4, 5], 'async read');
  f.close();
  const gapped = writeRaw([
    { name: 'p', dtype: 'F32', shape: [2], data: bytesOf(new Float32Array([7, 8])) },
    { name: 'q', dtype: 'I8', shape: [2], data: Buffer.from([1, 2]) },
  ], { pad: 3 });
  const g = T.loadSafetensors(gapped);
  a.deepEqual([g.p.toArray(), g.q.toArray()], [[7, 8], [1, 2]], 'holes between tensors are allowed');

  const src = {
    w: T.randn([3, 4], { seed: 1 }),
    h: T.randn([5], { seed: 2, dtype: 'bfloat16' }),
    k: T.tensor([1, -2, 3], { dtype: 'int8' }),
    m: T.tensor([true, false]),
    v: T.randn([4, 2], { seed: 3 }).transpose(), // a strided view is written contiguously
  };
  const out = path.join(tmp, 'saved.safetensors');
  T.saveSafetensors(out, src, { author: 'test' });
  const n = fs.readFileSync(out).readBigUInt64LE(0);
  a.equal(Number(n) % 8, 0, 'header padded to 8 bytes');
  const back = T.loadSafetensors(out);
  for (const k of Object.keys(src)) {
    a.equal(back[k].dtype, src[k].dtype, `${k} dtype`);
    a.deepEqual(back[k].toArray(), src[k].toArray(), `${k} values`);
  }
  a.deepEqual(T.SafetensorsFile.open(out).metadata, { author: 'test' }, 'metadata written');
  try {
    T.saveSafetensors(path.join(tmp, 'x.safetensors'), { q: T.zeros([4], { dtype: 'int4' }) });
    a.fail('int4 should not save');
  } catch (e) {
    a.equal(e.code, 'E_DTYPE', `int4 cannot be stored: ${e.message}`);
  }
  a.end();
});

test('broken files are E_IO errors naming the file and the tensor', (a) => {
  const good = [{ name: 'w', dtype: 'F32', shape: [2, 2], data: bytesOf(new Float32Array([1, 2, 3, 4])) }];
  const cases = [
    ['missing file', () => path.join(tmp, 'does-not-exist.safetensors'), ['does-not-exist.safetensors', 'cannot open']],
    ['shorter than 8 bytes', () => { const p = path.join(tmp, 'tiny.safetensors'); fs.writeFileSync(p, Buffer.from([1, 2])); return p; }, ['tiny.safetensors', 'truncated']],
    ['header length past the end', () => writeRaw(good, { lengthField: 5000n }), ['truncated', 'header needs']],
    ['absurd header length', () => writeRaw(good, { lengthField: 1n << 40n }), ['not sane']],
    ['header not JSON', () => writeRaw(good, { header: '{"w": {"dtype": "F32",' }), ['not valid UTF-8 JSON']],
    ['header not UTF-8', () => { const p = writeRaw([], { header: '{}' }); const b = fs.readFileSync(p); b[8] = 0xff; b[9] = 0xfe; fs.writeFileSync(p, b); return p; }, ['not valid UTF-8 JSON']],
    ['header a JSON array', () => writeRaw(good, { header: '[1, 2]' }), ['must be a JSON object']],
    ['unknown dtype', () => writeRaw([{ ...good[0], dtype: 'F128' }]), ['"w"', 'unknown dtype', 'F128']],
    ['negative dim', () => writeRaw([{ ...good[0], shape: [-2, -2] }]), ['"w"', 'shape']],
    ['fractional dim', () => writeRaw([{ ...good[0], shape: [1.5, 2] }]), ['"w"', 'shape']],
    ['begin after end', () => writeRaw([{ ...good[0], offsets: [16, 0] }]), ['"w"', 'data_offsets']],
    ['offsets not a pair', () => writeRaw([{ ...good[0], offsets: [0] }]), ['"w"', 'data_offsets']],
    ['size vs shape', () => writeRaw([{ ...good[0], shape: [3, 2] }]), ['"w"', 'needs 24 bytes', 'span 16']],
    ['dtype size vs span', () => writeRaw([{ ...good[0], dtype: 'F16' }]), ['"w"', 'needs 8 bytes']],
    ['overlapping ranges', () => writeRaw([good[0], { name: 'v', dtype: 'F32', shape: [2], data: bytesOf(new Float32Array(2)), offsets: [8, 16] }]), ['"w"', '"v"', 'overlap']],
    ['truncated data', () => writeRaw([good[0], { name: 'tail', dtype: 'F32', shape: [4], data: bytesOf(new Float32Array(4)) }], { cut: 4 }), ['truncated', '"tail"']],
    ['metadata not strings', () => writeRaw(good, { metadata: { n: 1 } }), ['__metadata__.n']],
    ['entry not an object', () => writeRaw(good, { header: '{"w": 3}' }), ['"w"', 'entry']],
  ];
  for (const [what, make, parts] of cases) {
    const file = make();
    throwsTess(a, () => T.SafetensorsFile.open(file), 'E_IO', [path.basename(file), ...parts], what);
  }
  a.end();
});

test('sharded checkpoints through model.safetensors.index.json', async (a) => {
  const dir = fs.mkdtempSync(path.join(tmp, 'shard-'));
  T.saveSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), { a: T.tensor([1, 2]), b: T.tensor([3]) });
  T.saveSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), { c: T.tensor([[4, 5]]) });
  const index = { metadata: { total_size: 20 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' } };
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
  const ck = T.Checkpoint.open(dir);
  a.deepEqual(ck.keys().sort(), ['a', 'b', 'c'], 'keys across shards');
  a.deepEqual(ck.files, ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'], 'files');
  a.deepEqual(ck.readSync('c').toArray(), [[4, 5]], 'read from shard 2');
  a.deepEqual((await ck.read('a')).toArray(), [1, 2], 'async read from shard 1');
  a.ok(ck.fileOf('c').endsWith('model-00002-of-00002.safetensors'), 'fileOf');
  a.equal(ck.totalBytes(), 20, 'totalBytes');
  throwsTess(a, () => ck.readSync('zz'), 'E_IO', ['"zz"'], 'unknown tensor');
  ck.close();

  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { ...index.weight_map, d: 'model-00002-of-00002.safetensors' } }));
  throwsTess(a, () => T.Checkpoint.open(dir), 'E_IO', ['model-00002-of-00002.safetensors', '"d"'], 'index names a tensor its shard lacks');
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-00003-of-00003.safetensors' } }));
  throwsTess(a, () => T.Checkpoint.open(dir), 'E_IO', ['model-00003-of-00003.safetensors', 'missing'], 'index names a missing shard');
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '../../etc/passwd' } }));
  throwsTess(a, () => T.Checkpoint.open(dir), 'E_IO', ['weight_map'], 'shard paths stay inside the directory');
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
  throwsTess(a, () => T.Checkpoint.open(dir), 'E_IO', ['model.safetensors.index.json'], 'index not JSON');
  const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
  fs.writeFileSync(path.join(empty, 'pytorch_model.bin'), 'x');
  throwsTess(a, () => T.Checkpoint.open(empty), 'E_IO', ['no model.safetensors', 'pytorch_model.bin'], 'no safetensors in the directory');
  a.end();
});

test('a file written by the Python safetensors library reads back', (a) => {
  const file = path.join(__dirname, 'fixtures', 'tiny-kjv', 'hf_logits.safetensors');
  const f = T.SafetensorsFile.open(file);
  a.ok(f.keys().includes('logits_0'), `keys: ${f.keys().join(', ')}`);
  const t = f.readSync('logits_0');
  a.equal(t.dtype, 'float32', 'float32');
  a.equal(t.shape[2], 2048, `shape ${JSON.stringify(t.shape)}`);
  a.ok(t.toFloat32().every(Number.isFinite), 'finite values');
  f.close();
  a.end();
});
