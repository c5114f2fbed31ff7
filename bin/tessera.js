#!/usr/bin/env node
// tessera command line.
//   tessera info                         backends (and why one is unavailable), CPU features, GPU, build
//   tessera bench [--op attention|matmul|qmatmul|spmm] [--backend js|cpu|cuda] [--dtype D] [--json] [--out DIR]
//                                        micro-benchmarks over a standard shape grid, key-averages table
//   tessera profile [--out DIR] [--group op|shape] [--sort KEY] script.js [-- args]
//                                        runs a script under the profiler: table on stdout, DIR/trace.json,
//                                        DIR/roofline.svg and DIR/profile.json (DIR defaults to ./tessera-profile)
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const Module = require('module');
const { pathToFileURL } = require('url');

const DIST = path.join(__dirname, '..', 'dist');
const SORT_KEYS = ['total', 'calls', 'mean', 'min', 'max', 'name', 'flops', 'gflops', 'gbps', 'roofline'];
const USAGE = `usage:
  tessera info
  tessera bench [--op attention|matmul|qmatmul|spmm] [--backend js|cpu|cuda] [--dtype float32|float64|float16|bfloat16|int8|int4|uint4|float8_e4m3fn] [--json] [--out DIR] [--min-ms N]
  tessera profile [--out DIR] [--group op|shape] [--sort total|calls|mean|min|max|name|flops|gflops|gbps|roofline] script.js [-- args]`;

class UsageError extends Error {}

/** --name value / --name=value / --flag; `--` ends the options (the rest is returned in `rest`). */
function parseArgs(argv, spec) {
  const opts = {};
  const positional = [];
  let rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      rest = argv.slice(i + 1);
      break;
    }
    if (!a.startsWith('--') || positional.length && spec.stopAtPositional) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (!(name in spec.options)) throw new UsageError(`unknown option --${name}`);
    if (spec.options[name] === 'flag') {
      opts[name] = true;
    } else {
      const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      const allowed = spec.options[name];
      if (Array.isArray(allowed) && !allowed.includes(v)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got ${v}`);
      if (spec.multi && spec.multi.includes(name)) (opts[name] = opts[name] || []).push(v);
      else opts[name] = v;
    }
  }
  return { opts, positional, rest };
}

function loadTessera() {
  process.env.TESSERA_QUIET = process.env.TESSERA_QUIET || '1';
  return require(path.join(DIST, 'index.js'));
}

function info() {
  const T = loadTessera();
  const pkg = require(path.join(__dirname, '..', 'package.json'));
  console.log(`tessera ${pkg.version} on node ${process.version} (${process.platform}-${process.arch}, N-API ${process.versions.napi})`);
  console.log(`cpu: ${os.cpus()[0] ? os.cpus()[0].model : 'unknown'}, ${os.cpus().length} logical cores`);
  for (const b of T.backends()) {
    const d = Object.entries(b.detail).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' ');
    console.log(`backend ${b.name.padEnd(4)} ${b.available ? 'available  ' + d : 'unavailable: ' + b.reason}`);
  }
  console.log(`default backend for host tensors: ${T.getBackend()}`);
}

/** The roofline needs this machine's calibration: say so before the few seconds it takes the first time. */
function ensureCalibration(T) {
  if (!T.cachedCalibration()) {
    process.stderr.write(`calibrating this machine's roofline (once; cached in ${T.calibrationCachePath()}) ...\n`);
  }
  return T.calibrate();
}

function writeOutputs(T, report, out) {
  fs.mkdirSync(out, { recursive: true });
  report.toChromeTrace(path.join(out, 'trace.json'));
  report.roofline(path.join(out, 'roofline.svg'));
  fs.writeFileSync(path.join(out, 'profile.json'), JSON.stringify(report.toJSON(), null, 1) + '\n');
  process.stderr.write(`wrote ${path.join(out, 'trace.json')} (open in https://ui.perfetto.dev or chrome://tracing), ` +
    `${path.join(out, 'roofline.svg')}, ${path.join(out, 'profile.json')}\n`);
}

function progressBar() {
  const tty = process.stderr.isTTY;
  const start = Date.now();
  return (done, total, label) => {
    const secs = ((Date.now() - start) / 1000).toFixed(1);
    if (!tty) {
      if (done < total) process.stderr.write(`bench ${done + 1}/${total} ${label}\n`);
      else process.stderr.write(`bench done: ${total} cases in ${secs} s\n`);
      return;
    }
    const width = 28;
    const fill = Math.round((width * done) / total);
    const cols = process.stderr.columns || 100;
    const line = `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total} ${secs}s ${done < total ? label : 'done'}`;
    process.stderr.write(`\r\x1b[K${line.slice(0, cols - 1)}${done === total ? '\n' : ''}`);
  };
}

async function bench(argv) {
  const { opts, positional } = parseArgs(argv, {
    options: {
      op: ['attention', 'matmul', 'qmatmul', 'spmm'], backend: ['js', 'cpu', 'cuda'], dtype: 'value', json: 'flag', out: 'value',
      'min-ms': 'value', sort: SORT_KEYS, group: ['op', 'shape'],
    },
    multi: ['op'],
  });
  if (positional.length) throw new UsageError(`unexpected argument ${positional[0]}`);
  const T = loadTessera();
  const { runBench } = require(path.join(DIST, 'profile', 'bench.js'));
  const minMs = opts['min-ms'] === undefined ? undefined : Number(opts['min-ms']);
  if (minMs !== undefined && !(minMs >= 0)) throw new UsageError(`--min-ms must be a non-negative number, got ${opts['min-ms']}`);
  const report = await runBench({ ops: opts.op, backend: opts.backend || null, dtype: opts.dtype || null, minMs }, progressBar());
  ensureCalibration(T);
  if (opts.json) process.stdout.write(JSON.stringify(report.toJSON(), null, 1) + '\n');
  else console.log(report.table({ groupBy: opts.group || 'shape', sortBy: opts.sort || 'name' }));
  if (opts.out) writeOutputs(T, report, path.resolve(opts.out));
}

/**
 * Runs script.js under the profiler. The profile ends when both (a) the script's exported promise (a
 * CommonJS module.exports that is a promise, or an ES module's evaluation, top-level await included) has
 * settled and (b) the event loop has drained; also when the script calls process.exit() or on Ctrl-C.
 * require('tessera') in the script resolves to this CLI's tessera, so its kernels are the ones profiled.
 */
async function profileScript(argv) {
  const { opts, positional, rest } = parseArgs(argv, {
    options: { out: 'value', group: ['op', 'shape'], sort: SORT_KEYS },
    stopAtPositional: true,
  });
  if (!positional.length) throw new UsageError('profile needs a script: tessera profile script.js [-- args]');
  const script = path.resolve(positional[0]);
  if (!fs.existsSync(script)) throw new UsageError(`no such script: ${positional[0]}`);
  const out = path.resolve(opts.out || 'tessera-profile');
  const T = loadTessera();

  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, ...args) {
    if (request === 'tessera') return path.join(DIST, 'index.js');
    return resolve.call(this, request, ...args);
  };
  process.argv = [process.argv[0], script, ...positional.slice(1), ...rest];

  let done = false;
  const finish = (why) => {
    if (done) return;
    done = true;
    const report = T.stopProfiling();
    if (why) process.stderr.write(`tessera profile: ${why}; writing the profile so far\n`);
    if (report.records.length === 0) {
      process.stderr.write('tessera profile: no kernels ran under the profiler (does the script load this tessera, ' +
        `${DIST}? an ES module importing 'tessera' may load another copy)\n`);
    }
    ensureCalibration(T);
    console.log(report.table({ groupBy: opts.group || 'op', sortBy: opts.sort || 'total' }));
    writeOutputs(T, report, out);
  };
  process.once('exit', () => finish('the script called process.exit()'));
  process.once('SIGINT', () => {
    finish('interrupted');
    process.exit(130);
  });

  const drained = new Promise((r) => process.once('beforeExit', r));
  T.startProfiling();
  try {
    let exported;
    if (/\.mjs$/.test(script)) exported = import(pathToFileURL(script).href);
    else {
      try {
        exported = require(script);
      } catch (e) {
        if (e && e.code === 'ERR_REQUIRE_ESM') exported = import(pathToFileURL(script).href);
        else throw e;
      }
    }
    if (exported && typeof exported.then === 'function') await Promise.race([exported, drained]);
    await drained;
  } catch (e) {
    console.error(e && e.stack ? e.stack : e);
    process.exitCode = 1;
    finish('the script threw');
    return;
  }
  finish(null);
}

async function main() {
  const [cmd, ...argv] = process.argv.slice(2);
  try {
    if (cmd === 'info') info();
    else if (cmd === 'bench') await bench(argv);
    else if (cmd === 'profile') await profileScript(argv);
    else if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') console.log(USAGE);
    else throw new UsageError(`unknown command: ${cmd}`);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`tessera: ${e.message}\n${USAGE}`);
      process.exitCode = 1;
    } else if (e && e.code && e.op) {
      console.error(`tessera: ${e.message}`);
      process.exitCode = 1;
    } else throw e;
  }
}

main();
