'use strict';
// The profiler's CUDA event timer (lib/backends/cuda/timer.ts over cuda/events.cu).
// Without CUDA: the addon reports unavailable and no device timer is registered for 'cuda' (so cuda
// records would be host-timed, 'host-sync'); if an addon is built here, its event exports still validate
// their arguments. With CUDA: records of cuda kernels carry timing 'device' (events on the stream),
// durations > 0, their sum within the session's wall time, a `device: cuda (device timer)` trace track,
// markers returned to the pool after the session, and handle validation (type tags, released handles).
// The comparison with Nsight Compute is benchmark/cuda/ncu_check.js (GPU machine).
const fs = require('fs');
const os = require('os');
const path = require('path');
const test = require('tape');

process.env.XDG_CACHE_HOME = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-profile-cuda-'));
const T = require('../dist');
const native = require('../dist/backends/cuda/native.js');
const { getDeviceTimer } = require('../dist/profile/profiler.js');

const info = T.backends().find((b) => b.name === 'cuda');
const loaded = native.loadCudaBinding();

const codeIs = (code) => (e) => e && e.code === code;

if (!info.available) {
  test('cuda profiling without CUDA: no event timer, cuda records would be host-timed', (t) => {
    t.equal(loaded.binding, null, 'loadCudaBinding() gives no binding');
    t.ok(typeof loaded.reason === 'string' && loaded.reason.length > 0, `with a reason: ${loaded.reason}`);
    t.equal(info.available, false, 'the cuda backend reports unavailable');
    t.equal(getDeviceTimer('cuda'), undefined, "the profiler's device-timer registry has no 'cuda' entry");
    t.end();
  });

  test('event exports of a built addon validate their arguments without a device', (t) => {
    const file = native.findCudaAddon();
    if (!file || !fs.existsSync(file)) {
      t.pass(`no CUDA addon built here (${native.CUDA_NOT_BUILT}); nothing more to check`);
      t.end();
      return;
    }
    const addon = require(file);
    for (const f of ['eventRecord', 'eventRecordDeferred', 'eventElapsedNs', 'eventRelease', 'eventPoolStats']) {
      t.equal(typeof addon[f], 'function', `${path.basename(file)} exports ${f}`);
    }
    t.throws(() => addon.eventElapsedNs({}, {}), codeIs('E_TYPE'), 'eventElapsedNs: a plain object is not an event (E_TYPE)');
    t.throws(() => addon.eventRelease(1), codeIs('E_TYPE'), 'eventRelease: a number is not an event (E_TYPE)');
    t.throws(() => addon.eventRecord(1), codeIs('E_TYPE'), 'eventRecord takes no arguments (E_TYPE)');
    t.throws(() => addon.eventRecord(), codeIs('E_BACKEND'), 'eventRecord without a device: E_BACKEND');
    t.throws(() => addon.eventRecordDeferred(2), codeIs('E_TYPE'), 'eventRecordDeferred takes no arguments (E_TYPE)');
    t.throws(() => addon.eventRecordDeferred(), codeIs('E_BACKEND'), 'eventRecordDeferred without a device: E_BACKEND');
    t.deepEqual(addon.eventPoolStats(), { idle: 0, live: 0 }, 'no events handed out');
    t.end();
  });
  return;
}

const cuda = loaded.binding;

test('cuda: an event timer is registered', (t) => {
  const timer = getDeviceTimer('cuda');
  t.ok(timer, "the profiler's device-timer registry has a 'cuda' entry");
  t.equal(typeof timer.mark, 'function', 'mark()');
  t.equal(typeof timer.elapsedNs, 'function', 'elapsedNs()');
  t.end();
});

test('cuda: records of cuda kernels are event-timed, on their own trace track', async (t) => {
  const a = T.randn([512, 512], { seed: 1, device: 'cuda' });
  const b = T.randn([512, 512], { seed: 2, device: 'cuda' });
  const q = T.randn([2, 4, 256, 64], { seed: 3, dtype: 'bfloat16', device: 'cuda' });
  const k = T.randn([2, 4, 256, 64], { seed: 4, dtype: 'bfloat16', device: 'cuda' });
  const v = T.randn([2, 4, 256, 64], { seed: 5, dtype: 'bfloat16', device: 'cuda' });
  cuda.synchronize();
  const pool0 = cuda.eventPoolStats();
  const keep = [];
  const w0 = process.hrtime.bigint();
  const rep = await T.profile(() => {
    for (let i = 0; i < 4; i++) {
      const m = T.matmul(a, b);
      keep.push(T.softmax(T.add(m, a), -1), m);
    }
    keep.push(T.attention(q, k, v, { causal: true }), T.attention(q, k, v));
  });
  const wall = Number(process.hrtime.bigint() - w0);
  const recs = rep.records.filter((r) => r.backend === 'cuda');
  t.ok(recs.length >= 14, `${recs.length} cuda records`);
  t.deepEqual([...new Set(recs.map((r) => r.timing))], ['device'], "every cuda record has timing 'device' (CUDA events)");
  t.ok(recs.every((r) => r.durationNs > 0), 'every device duration > 0');
  t.ok(recs.every((r) => r.deviceStartNs !== undefined && r.deviceEndNs >= r.deviceStartNs), 'device intervals placed on the timeline');
  const sum = recs.reduce((s, r) => s + r.durationNs, 0);
  t.ok(sum <= wall, `sum of event durations ${(sum / 1e6).toFixed(3)} ms <= wall time ${(wall / 1e6).toFixed(3)} ms`);
  // one stream: device intervals follow issue order and do not overlap (beyond the events' ~0.5 µs resolution)
  const ordered = recs.every((r, i) => i === 0 || r.deviceStartNs >= recs[i - 1].deviceEndNs - 1000);
  t.ok(ordered, 'device intervals are in issue order and do not overlap (one stream)');
  const attn = recs.filter((r) => r.op === 'attention');
  t.equal(attn.length, 2, 'both attention calls recorded');
  t.ok(attn.every((r) => /attn|flash/.test(r.variant)), `attention variant recorded (${attn[0] && attn[0].variant})`);

  const trace = rep.toChromeTrace();
  const names = new Map(trace.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [e.tid, e.args.name]));
  const dev = trace.traceEvents.filter((e) => e.ph === 'X' && e.cat.includes('device'));
  const host = trace.traceEvents.filter((e) => e.ph === 'X' && !e.cat.includes('device'));
  t.ok(dev.length >= recs.length, `${dev.length} device events in the trace`);
  t.ok(dev.every((e) => /^device: cuda.*device timer/.test(names.get(e.tid))), `device events on the device track (${names.get(dev[0] && dev[0].tid)})`);
  t.ok(!dev.some((e) => host.some((h) => h.tid === e.tid)), 'host and device events on separate tracks');
  t.ok(dev.every((e) => e.args && e.args.timing === 'device'), "trace args say timing 'device'");

  const pool1 = cuda.eventPoolStats();
  t.equal(pool1.live, pool0.live, `markers released after the session (live ${pool1.live}, idle ${pool1.idle})`);
  keep.forEach((x) => x.dispose());
  [a, b, q, k, v].forEach((x) => x.dispose());
  t.end();
});

test('cuda: nested sessions share the markers and release them once the last one stops', async (t) => {
  const x = T.randn([256, 256], { seed: 6, device: 'cuda' });
  cuda.synchronize();
  const live0 = cuda.eventPoolStats().live;
  T.startProfiling();
  const r1 = await T.profile(() => T.exp(x).dispose());
  t.ok(cuda.eventPoolStats().live > live0, 'outer session still open: markers kept');
  const outer = T.stopProfiling();
  t.equal(r1.records[0].timing, 'device', 'inner record event-timed');
  t.equal(outer.records.length, 1, 'outer session saw the same call');
  t.equal(outer.records[0].durationNs, r1.records[0].durationNs, 'same device duration in both sessions');
  t.equal(cuda.eventPoolStats().live, live0, 'markers released after the outer session');
  x.dispose();
  t.end();
});

test('cuda: a deferred start mark is recorded at the next queued work, not at the call', (t) => {
  const buf = cuda.malloc(1024);
  cuda.synchronize();
  const busyWait = (ms) => {
    const end = Date.now() + ms;
    while (Date.now() < end);
  };
  // the device idles through the host's 60 ms: an immediate mark counts them, a deferred one does not
  const now = cuda.eventRecord();
  const later = cuda.eventRecordDeferred();
  busyWait(60);
  cuda.fillF32(buf, 1, 256);
  const end = cuda.eventRecord();
  const withHost = cuda.eventElapsedNs(now, end);
  const fromLaunch = cuda.eventElapsedNs(later, end);
  t.ok(withHost >= 55e6, `immediate mark -> end = ${(withHost / 1e6).toFixed(2)} ms spans the host wait`);
  t.ok(fromLaunch >= 0 && fromLaunch < 30e6, `deferred mark -> end = ${(fromLaunch / 1e6).toFixed(3)} ms: the fill only`);
  // released before anything was queued: it never reaches the stream, and the pool gets it back
  const live = cuda.eventPoolStats().live;
  const dropped = cuda.eventRecordDeferred();
  cuda.eventRelease(dropped);
  t.equal(cuda.eventPoolStats().live, live, 'a deferred mark released while pending goes back to the pool');
  cuda.fillF32(buf, 2, 256);
  cuda.synchronize();
  t.pass('later work queues normally after a pending mark was released');
  // a deferred mark with no work after it: the end mark records it first (duration ~0, never negative)
  const a = cuda.eventRecordDeferred();
  const b = cuda.eventRecord();
  const ab = cuda.eventElapsedNs(a, b);
  t.ok(ab >= 0 && ab < 1e6, `deferred then immediate with nothing between: ${ab} ns`);
  for (const e of [now, later, end, a, b]) cuda.eventRelease(e);
  cuda.free(buf);
  t.end();
});

test('cuda: event handles are validated', (t) => {
  const e1 = cuda.eventRecord();
  const buf = cuda.malloc(1024);
  cuda.fillF32(buf, 1, 256);
  const e2 = cuda.eventRecord();
  const ab = cuda.eventElapsedNs(e1, e2);
  const ba = cuda.eventElapsedNs(e2, e1);
  t.ok(Number.isFinite(ab) && ab >= 0, `elapsed a -> b = ${ab} ns >= 0`);
  t.ok(ba <= 0, `elapsed b -> a = ${ba} ns <= 0`);
  t.throws(() => cuda.eventElapsedNs(buf, e2), codeIs('E_TYPE'), 'a CUDA buffer handle is not an event (E_TYPE)');
  t.throws(() => cuda.eventRelease(buf), codeIs('E_TYPE'), 'eventRelease refuses a buffer handle (E_TYPE)');
  t.throws(() => cuda.free(e1), codeIs('E_TYPE'), 'free() refuses an event handle (E_TYPE)');
  t.throws(() => cuda.eventElapsedNs(e1), codeIs('E_TYPE'), 'wrong argument count (E_TYPE)');
  cuda.eventRelease(e1);
  cuda.eventRelease(e1);
  t.pass('eventRelease twice is a no-op');
  t.throws(() => cuda.eventElapsedNs(e1, e2), codeIs('E_DISPOSED'), 'a released handle: E_DISPOSED');
  cuda.eventRelease(e2);
  cuda.free(buf);
  t.end();
});
