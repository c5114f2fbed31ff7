'use strict';
// Smoke test of the CUDA addon (cuda/, loaded by lib/backends/cuda/native.ts).
// Without the addon or a GPU it checks the CPU-only behaviour: loading never throws and says why CUDA is
// unavailable. With a GPU it checks the chain end to end: device info, bit-exact copies, the first
// kernels against JS, the async copy, argument and bounds checks, and recovery after out-of-memory.
// Run: node test/cuda-smoke.test.js (after npm run build:ts; on a GPU machine, scripts/cuda.sh test).
const crypto = require('crypto');
const fs = require('fs');
const v8 = require('v8');
const vm = require('vm');
const test = require('tape');
const native = require('../dist/backends/cuda/native.js');

let loaded = null;
let loadError = null;
try {
  loaded = native.loadCudaBinding();
} catch (err) {
  loadError = err;
}
const cuda = loaded && loaded.binding;

test('cuda: loadCudaBinding never throws and explains itself', (t) => {
  t.equal(loadError, null, 'did not throw');
  t.equal(typeof loaded.reason, 'string', 'reason is a string');
  if (cuda) t.equal(loaded.reason, '', 'no reason when available');
  else t.ok(loaded.reason.length > 0, `reason is non-empty: ${loaded.reason}`);
  t.end();
});

test('cuda: TESSERA_CUDA_ADDON pointing nowhere is reported, not thrown', (t) => {
  const saved = process.env.TESSERA_CUDA_ADDON;
  process.env.TESSERA_CUDA_ADDON = '/nonexistent/tessera_cuda.node';
  try {
    const r = native.loadCudaBinding();
    t.equal(r.binding, null);
    t.match(r.reason, /does not exist/);
  } finally {
    if (saved === undefined) delete process.env.TESSERA_CUDA_ADDON;
    else process.env.TESSERA_CUDA_ADDON = saved;
  }
  t.end();
});

// ---------------------------------------------------------------- helpers

const isCode = (cls, code) => (err) => err instanceof cls && err.code === code;

function randomF32(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.fround((Math.random() * 2 - 1) * 1000);
  return a;
}

/** Index of the first byte where two views differ (byte length included), or -1. */
function firstByteDiff(x, y) {
  const a = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const b = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
  if (a.length !== b.length) return Math.min(a.length, b.length);
  return Buffer.compare(a, b) === 0 ? -1 : a.findIndex((v, i) => v !== b[i]);
}

function readF32(handle, n, offset = 0) {
  const out = new Float32Array(n).fill(NaN);
  cuda.memcpyDtoH(out, handle, offset);
  return out;
}

function exposedGc() {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc');
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

// ---------------------------------------------------------------- CPU-only: the unavailable path

if (!cuda) {
  console.log(`# cuda unavailable: ${loaded.reason}`);
  const file = native.findCudaAddon();
  if (file !== null && fs.existsSync(file) && !/failed to load|stale/.test(loaded.reason)) {
    test('cuda: a built addon on a machine without a device reports instead of throwing', (t) => {
      const raw = require(file);
      const info = raw.deviceInfo();
      t.equal(info.available, false, 'not available');
      t.equal(info.reason, loaded.reason, 'the same reason loadCudaBinding gave');
      t.equal(info.count, 0);
      t.deepEqual(info.devices, []);
      t.throws(() => raw.malloc(16), isCode(Error, 'E_BACKEND'), 'malloc throws E_BACKEND');
      t.throws(() => raw.memInfo(), isCode(Error, 'E_BACKEND'), 'memInfo throws E_BACKEND');
      t.throws(() => raw.malloc('16'), isCode(TypeError, 'E_TYPE'), 'arguments are still checked');
      t.deepEqual(raw.deviceInfo(), info, 'stays usable');
      t.end();
    });
  }
} else {
  // -------------------------------------------------------------- GPU

  test('cuda: deviceInfo and memInfo are sane', (t) => {
    const info = cuda.deviceInfo();
    t.equal(info.available, true);
    t.equal(info.reason, '');
    t.ok(Number.isInteger(info.count) && info.count >= 1, `count ${info.count}`);
    t.equal(info.devices.length, info.count, 'one entry per device');
    info.devices.forEach((d, i) => {
      console.log(`# device ${i}: ${d.name}, sm_${d.major}${d.minor}, ${d.smCount} SMs, ` +
        `${(d.totalMem / 2 ** 30).toFixed(1)} GiB, driver ${d.driverVersion}, runtime ${d.runtimeVersion}`);
      t.equal(d.index, i, 'index');
      t.ok(typeof d.name === 'string' && d.name.length > 0, 'name');
      t.ok(Number.isInteger(d.major) && d.major >= 7 && Number.isInteger(d.minor) && d.minor >= 0, 'compute capability');
      t.ok(Number.isInteger(d.totalMem) && d.totalMem >= 2 ** 30, 'totalMem in bytes');
      t.ok(Number.isInteger(d.smCount) && d.smCount > 0, 'smCount');
      t.ok(d.driverVersion >= 12000 && d.runtimeVersion >= 12000, 'driver and runtime versions');
    });
    const mem = cuda.memInfo();
    t.ok(mem.total > 0 && mem.free > 0 && mem.free <= mem.total, `memInfo ${mem.free} of ${mem.total}`);
    t.equal(cuda.synchronize(), undefined, 'synchronize');
    t.end();
  });

  test('cuda: H->D->H round trip is bit-exact', (t) => {
    const n = 1000003;
    const bytes = crypto.randomBytes(n + 7);
    const src = new Uint8Array(bytes.buffer, bytes.byteOffset + 7, n); // a view with a byteOffset
    const h = cuda.malloc(n + 17);
    cuda.memcpyHtoD(h, 17, src);
    const back = new Uint8Array(n).fill(0xab);
    cuda.memcpyDtoH(back, h, 17);
    t.equal(firstByteDiff(back, src), -1, 'bytes at offset 17');

    // Float bit patterns survive: NaN payloads, -0, infinities, subnormals.
    const bits = new Uint32Array(4096);
    crypto.randomFillSync(bits);
    bits.set([0x7fc00001, 0xffc12345, 0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x807fffff]);
    const hf = cuda.malloc(bits.byteLength);
    cuda.memcpyHtoD(hf, 0, new Float32Array(bits.buffer));
    t.equal(firstByteDiff(readF32(hf, bits.length), bits), -1, 'float32 bit patterns');
    cuda.free(hf);

    const h2 = cuda.malloc(n);
    cuda.memcpyDtoD(h2, 5, h, 17 + 5, n - 5);
    const back2 = new Uint8Array(n - 5);
    cuda.memcpyDtoH(back2, h2, 5);
    t.equal(firstByteDiff(back2, src.subarray(5)), -1, 'memcpyDtoD');
    t.throws(() => cuda.memcpyDtoD(h, 0, h, 8, 16), isCode(RangeError, 'E_ARG'), 'overlapping DtoD throws');
    cuda.memcpyDtoD(h, 0, h, 16, 16); // touching, not overlapping
    cuda.free(h);
    cuda.free(h2);
    t.end();
  });

  test('cuda: fillF32 and addF32 match JS bit for bit (n = 1, 7, 1000, 2^20)', (t) => {
    for (const n of [1, 7, 1000, 1 << 20]) {
      const a = randomF32(n);
      const b = randomF32(n);
      const ref = new Float32Array(n);
      for (let i = 0; i < n; i++) ref[i] = Math.fround(a[i] + b[i]);
      // a and b are exactly n floats so an overrun is caught (compute-sanitizer); out has a poisoned tail.
      const da = cuda.malloc(n * 4);
      const db = cuda.malloc(n * 4);
      const dout = cuda.malloc((n + 5) * 4);
      cuda.memcpyHtoD(da, 0, a);
      cuda.memcpyHtoD(db, 0, b);
      cuda.fillF32(dout, NaN, n + 5);
      t.ok(readF32(dout, n + 5).every(Number.isNaN), `n=${n}: fillF32 poisoned every element`);
      cuda.addF32(da, db, dout, n);
      const got = readF32(dout, n + 5);
      t.equal(firstByteDiff(got.subarray(0, n), ref), -1, `n=${n}: addF32 bit-exact, no NaN left`);
      t.ok(got.subarray(n).every(Number.isNaN), `n=${n}: nothing written past n`);
      cuda.addF32(da, db, da, n); // out aliases a
      t.equal(firstByteDiff(readF32(da, n), ref), -1, `n=${n}: in place`);
      cuda.fillF32(dout, -2.5, 3);
      const filled = readF32(dout, n + 5);
      t.ok(filled.subarray(0, Math.min(3, n + 5)).every((v) => v === -2.5) && filled.subarray(3).every(
        (v, i) => Object.is(v, i + 3 < n ? ref[i + 3] : NaN)), `n=${n}: fillF32 writes exactly n`);
      for (const h of [da, db, dout]) cuda.free(h);
    }
    t.end();
  });

  test('cuda: memcpyDtoHAsync resolves off the JS thread, in stream order', async (t) => {
    const n = 1 << 24; // 64 MiB, filled 200 times: a few ms of GPU work queued ahead of the read
    const big = cuda.malloc(n * 4);
    cuda.fillF32(big, -1, n);
    const dst = new Float32Array(1 << 20).fill(NaN);
    await cuda.memcpyDtoHAsync(dst, big, 0); // warm: the pinned staging block is allocated once, then reused
    dst.fill(NaN);
    for (let k = 0; k < 200; k++) cuda.fillF32(big, k, n);
    let ticks = 0;
    let done = false;
    (function spin() {
      if (!done) {
        ticks++;
        setImmediate(spin);
      }
    })();
    const t0 = process.hrtime.bigint();
    const p = cuda.memcpyDtoHAsync(dst, big, (n - dst.length) * 4);
    const callMs = Number(process.hrtime.bigint() - t0) / 1e6;
    t.ok(p instanceof Promise, 'returns a Promise');
    const res = await p;
    done = true;
    const waitMs = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`# async read: call ${callMs.toFixed(2)} ms, resolved after ${waitMs.toFixed(2)} ms, ${ticks} loop ticks`);
    t.equal(res, dst, 'resolves with the destination');
    t.ok(ticks > 1, `the event loop kept turning (${ticks} ticks)`);
    t.ok(dst.every((v) => v === 199), 'sees the last of the queued fills');

    // Several reads in flight at once.
    const parts = [0, 1, 2, 3].map((i) => cuda.memcpyDtoHAsync(new Uint32Array(1000), big, i * 4000));
    cuda.fillF32(big, 7, 1000); // queued after the reads: must not show in them
    const got = await Promise.all(parts);
    t.ok(got.every((u) => new Float32Array(u.buffer).every((v) => v === 199)), 'concurrent reads');
    t.ok(readF32(big, 1000).every((v) => v === 7), 'later work runs after them');

    // The destination detached while the copy runs: rejected, nothing written anywhere.
    const victim = new Float32Array(1024);
    const pending = cuda.memcpyDtoHAsync(victim, big, 0);
    structuredClone(victim.buffer, { transfer: [victim.buffer] });
    await pending.then(
      () => t.fail('should reject'),
      (err) => t.equal(err.code, 'E_DETACHED', 'detached destination rejects with E_DETACHED'),
    );
    t.throws(() => cuda.memcpyDtoHAsync(new Uint8Array(16), big, n * 4 - 8), isCode(RangeError, 'E_ARG'),
      'out of bounds throws before anything is queued');
    cuda.free(big);
  });

  test('cuda: bad arguments, bounds, freed handles throw', (t) => {
    const h = cuda.malloc(16);
    const u8 = new Uint8Array(16);
    const type = isCode(TypeError, 'E_TYPE');
    const range = isCode(RangeError, 'E_ARG');
    const gone = isCode(Error, 'E_DISPOSED');

    for (const bad of ['16', -1, 1.5, NaN, Infinity, 2 ** 53, 10n, null, undefined, {}]) {
      t.throws(() => cuda.malloc(bad), (e) => type(e) || range(e), `malloc(${String(bad)})`);
    }
    t.throws(() => cuda.malloc(), type, 'malloc()');
    t.throws(() => cuda.malloc(16, 1), type, 'malloc with an extra argument');
    t.throws(() => cuda.memcpyHtoD({}, 0, u8), type, 'plain object as handle');
    t.throws(() => cuda.memcpyHtoD(u8, 0, u8), type, 'typed array as handle');
    t.throws(() => cuda.memcpyHtoD(h, '0', u8), type, 'string offset');
    t.throws(() => cuda.memcpyHtoD(h, 0, [1, 2, 3]), type, 'plain array as source');
    t.throws(() => cuda.memcpyHtoD(h, 0, new DataView(new ArrayBuffer(4))), type, 'DataView as source');
    t.throws(() => cuda.addF32(h, h, u8, 1), type, 'typed array as out');
    t.throws(() => cuda.fillF32(h, '1', 4), type, 'string fill value');
    t.throws(() => cuda.free(123), type, 'free(number)');
    t.throws(() => cuda.free(null), type, 'free(null)');

    t.throws(() => cuda.memcpyHtoD(h, 1, u8), range, 'HtoD past the end');
    t.throws(() => cuda.memcpyHtoD(h, 17, new Uint8Array(0)), range, 'offset past the end');
    cuda.memcpyHtoD(h, 16, new Uint8Array(0)); // empty copy at the end is fine
    t.throws(() => cuda.memcpyDtoH(new Uint8Array(17), h, 0), range, 'DtoH past the end');
    t.throws(() => cuda.memcpyDtoH(u8, h, 2 ** 52), range, 'huge offset');
    t.throws(() => cuda.memcpyDtoD(h, 8, h, 0, 9), range, 'DtoD destination past the end');
    t.throws(() => cuda.addF32(h, h, h, 5), range, 'addF32 n past the end');
    t.throws(() => cuda.fillF32(h, 1, 5), range, 'fillF32 n past the end');

    const detached = new Uint8Array(8);
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    t.throws(() => cuda.memcpyHtoD(h, 0, detached), isCode(TypeError, 'E_DETACHED'), 'detached source');

    const empty = cuda.malloc(0);
    cuda.memcpyHtoD(empty, 0, new Uint8Array(0));
    cuda.free(empty);

    cuda.free(h);
    t.throws(() => cuda.memcpyHtoD(h, 0, u8), gone, 'HtoD on a freed handle');
    t.throws(() => cuda.memcpyDtoH(u8, h, 0), gone, 'DtoH on a freed handle');
    t.throws(() => cuda.addF32(h, h, h, 1), gone, 'addF32 on a freed handle');
    t.throws(() => cuda.free(h), gone, 'double free');
    t.end();
  });

  test('cuda: 1 TB malloc is CUDA out of memory, and the addon stays usable', (t) => {
    t.throws(() => cuda.malloc(1e12), (e) => e.code === 'E_OOM' && /^CUDA out of memory/.test(e.message),
      'throws CUDA out of memory');
    const h = cuda.malloc(1 << 20);
    cuda.fillF32(h, 3, 1 << 18);
    t.ok(readF32(h, 1 << 18).every((v) => v === 3), 'a later alloc, kernel and copy work');
    cuda.free(h);
    t.end();
  });

  test('cuda: forgotten handles are freed by the GC, explicit frees are not repeated', async (t) => {
    const gc = exposedGc();
    const chunk = 256 << 20;
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        gc();
        await tick();
      }
      cuda.synchronize();
      cuda.emptyCache(); // freed blocks go to the caching allocator; hand them back to the device to measure
    };
    await settle();
    const before = cuda.memInfo().free;
    for (let i = 0; i < 8; i++) cuda.malloc(chunk); // dropped at once
    for (let i = 0; i < 8; i++) cuda.free(cuda.malloc(chunk)); // freed, then collected
    await settle();
    const after = cuda.memInfo().free;
    t.ok(after >= before - chunk, `free memory came back (${before} -> ${after} bytes)`);
  });
}
