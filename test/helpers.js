'use strict';
// Shared by the tests: a seeded PRNG, dtype tolerances (llm.c validate_result style) and a comparison
// that reports ‖out−ref‖/‖ref‖ and max-abs error, where NaN never passes.

/** mulberry32: tiny seeded PRNG for shapes and data in tests. */
function rng(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    normal: () => {
      const u = Math.max(next(), 1e-12);
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    },
  };
}

/** relative-L2 tolerance per output dtype */
const TOL = { float64: 1e-12, float32: 2e-5, float16: 2e-3, bfloat16: 1.6e-2, float8_e4m3fn: 0.13, float8_e5m2: 0.26 };

/** Compares two value arrays; returns { ok, rel, maxAbs, msg }. */
function compare(out, ref, tol) {
  if (out.length !== ref.length) return { ok: false, msg: `length ${out.length} vs ${ref.length}` };
  let num = 0;
  let den = 0;
  let maxAbs = 0;
  let refMax = 0;
  for (let i = 0; i < ref.length; i++) {
    const o = out[i];
    const r = ref[i];
    if (Number.isNaN(r) || Number.isNaN(o)) {
      if (Number.isNaN(r) && Number.isNaN(o)) continue;
      return { ok: false, msg: `NaN mismatch at ${i}: out ${o}, ref ${r}` };
    }
    if (!Number.isFinite(r) || !Number.isFinite(o)) {
      if (o === r) continue;
      return { ok: false, msg: `non-finite mismatch at ${i}: out ${o}, ref ${r}` };
    }
    const d = Math.abs(o - r);
    num += d * d;
    den += r * r;
    maxAbs = Math.max(maxAbs, d);
    refMax = Math.max(refMax, Math.abs(r));
  }
  const rel = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
  // max-abs check: no element may be off by more than a few tolerances of the largest magnitude
  const ok = rel <= tol && maxAbs <= 8 * tol * Math.max(refMax, 1e-30) + (den === 0 ? tol : 0);
  return { ok, rel, maxAbs, msg: `rel ${rel.toExponential(2)} (tol ${tol}), maxAbs ${maxAbs.toExponential(2)}` };
}

module.exports = { rng, TOL, compare };

// ---- shared by the native-addon tests (test/native-*.test.js) ----

/** The CPU addon as node-gyp-build loads it from the package root, or the load error. */
function loadCpuAddon() {
  try {
    return { nat: require('node-gyp-build')(require('path').join(__dirname, '..')), loadError: null };
  } catch (e) {
    return { nat: null, loadError: e };
  }
}

/** f32 kernel output vs a float64 reference: rel-L2 < tol and max-abs ≤ 1e-4 of the largest |ref|;
 *  a non-finite output passes only where the reference has the same non-finite value. */
function compareF32(out, ref, tol = 1e-5) {
  let e2 = 0;
  let r2 = 0;
  let maxErr = 0;
  let maxRef = 0;
  let nonFinite = 0;
  for (let i = 0; i < ref.length; i++) {
    const o = out[i];
    if (!Number.isFinite(o) || !Number.isFinite(ref[i])) {
      if (!(Object.is(o, ref[i]) || (Number.isNaN(o) && Number.isNaN(ref[i])))) nonFinite++;
      continue;
    }
    const d = o - ref[i];
    e2 += d * d;
    r2 += ref[i] * ref[i];
    maxErr = Math.max(maxErr, Math.abs(d));
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  const rel = r2 > 0 ? Math.sqrt(e2 / r2) : Math.sqrt(e2);
  const ok = nonFinite === 0 && rel < tol && maxErr <= 1e-4 * Math.max(maxRef, 1e-3);
  return { ok, rel, maxErr, nonFinite, detail: `rel=${rel.toExponential(2)} maxErr=${maxErr.toExponential(2)} nonFinite=${nonFinite}` };
}

/** true when every element from `from` on is still the NaN poison */
function tailUntouched(out, from) {
  for (let i = from; i < out.length; i++) if (!Number.isNaN(out[i])) return false;
  return true;
}

function sameBits(x, y) {
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

module.exports.loadCpuAddon = loadCpuAddon;
module.exports.compareF32 = compareF32;
module.exports.tailUntouched = tailUntouched;
module.exports.sameBits = sameBits;

// ---- child mode of the native tests: the portable (TESSERA_SIMD=generic) path in a child process ----

/** In the child: one JSON line with the addon's info and the numeric checks (or the load error). */
function reportChild(nat, loadError, checks) {
  if (!nat) process.stdout.write(JSON.stringify({ error: String(loadError && loadError.stack) }) + '\n');
  else process.stdout.write(JSON.stringify({ info: nat.info(), results: checks() }) + '\n');
}

/** The one test when the addon does not load: a failure unless TESSERA_EXPECT_NO_NATIVE=1 says so. */
function addonMissingTest(test, loadError) {
  test('tessera_cpu addon loads', (t) => {
    if (process.env.TESSERA_EXPECT_NO_NATIVE === '1') t.pass(`addon absent as expected (${String(loadError && loadError.message).split('\n')[0]})`);
    else t.fail(`tessera_cpu failed to load: ${loadError && loadError.stack}`);
    t.end();
  });
}

/** Runs `file` with TESSERA_SIMD=generic and childEnv set, and asserts every check its JSON line reports. */
function checkGenericChild(t, file, childEnv, { timeout = 120000, maxBuffer = 1 << 26 } = {}) {
  const child = require('child_process').spawnSync(process.execPath, [file], {
    env: { ...process.env, TESSERA_SIMD: 'generic', ...childEnv },
    encoding: 'utf8',
    timeout,
    maxBuffer,
  });
  t.equal(child.status, 0, `child exited cleanly (signal ${child.signal}) ${child.stderr || ''}`);
  let report = null;
  try {
    report = JSON.parse(child.stdout.trim().split('\n').pop());
  } catch (e) {
    t.fail(`child output not JSON: ${child.stdout}`);
  }
  if (report) {
    t.notOk(report.error, 'child loaded the addon');
    if (report.info) t.equal(report.info.simd, 'generic', 'child runs the generic path');
    for (const r of report.results || []) t.ok(r.ok, `generic: ${r.label} (${r.detail})`);
    t.ok((report.results || []).length > 40, `child ran ${(report.results || []).length} checks`);
  }
  t.end();
}

module.exports.reportChild = reportChild;
module.exports.addonMissingTest = addonMissingTest;
module.exports.checkGenericChild = checkGenericChild;
