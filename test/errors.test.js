'use strict';
// Bad input always gives a TesseraError: `instanceof t.TesseraError`, a code from lib/errors.ts ErrorCode,
// `.op` and a message that starts with the op and names the argument and the shapes/dtypes involved.
// Every case also checks that the failed call left memory() as it was (no tensor leaked on the error path).
// Covered per public op: wrong JS types, wrong shapes, dtype mismatches, bad dims (non-integer, negative,
// 2**40, NaN), out-of-range dims and ids, use after dispose, detached buffers, bad CSR structure, unknown
// and unavailable backends. NaN in the DATA is not an error: it propagates, as in PyTorch.
const test = require('tape');
const t = require('../dist');

// The ErrorCode union of lib/errors.ts: programs may switch on these, so they are part of the API.
const CODES = ['E_TYPE', 'E_SHAPE', 'E_DTYPE', 'E_ARG', 'E_DISPOSED', 'E_DETACHED', 'E_DEVICE', 'E_BACKEND', 'E_OOM', 'E_NATIVE', 'E_IO'];

function problemsOf(err, want, memBefore) {
  const p = [];
  if (err === null) return ['did not throw'];
  if (!(err instanceof t.TesseraError)) return [`threw ${err && err.constructor ? err.constructor.name : typeof err}: ${err && err.message}`];
  if (err.name !== 'TesseraError' || !(err instanceof Error)) p.push('not an Error named TesseraError');
  if (!CODES.includes(err.code)) p.push(`unknown code ${err.code}`);
  if (want.code && err.code !== want.code) p.push(`code ${err.code}, want ${want.code}`);
  if (err.op !== want.op || !err.message.startsWith(`${want.op}: `)) p.push(`op ${JSON.stringify(err.op)}, want ${JSON.stringify(want.op)}`);
  for (const h of want.has || []) if (!err.message.includes(h)) p.push(`message lacks ${JSON.stringify(h)}`);
  const after = JSON.stringify(t.memory());
  if (memBefore !== after) p.push(`memory changed: ${memBefore} -> ${after}`);
  return p;
}

function report(a, label, err, p) {
  const msg = err && err.message ? String(err.message).replace(/\s+/g, ' ').slice(0, 170) : '';
  a.ok(p.length === 0, p.length ? `${label}: ${p.join('; ')}${msg ? ` [${msg}]` : ''}` : `${label} -> ${err.code} ${msg}`);
}

/** f() must throw a TesseraError with want.op, want.code and each of want.has in its message. */
function throws(a, label, f, want) {
  const mem = JSON.stringify(t.memory());
  let err = null;
  try {
    f();
  } catch (e) {
    err = e;
  }
  report(a, label, err, problemsOf(err, want, mem));
}

/** Same for a promise-returning f (async forms). */
async function rejects(a, label, f, want) {
  const mem = JSON.stringify(t.memory());
  let err = null;
  try {
    await f();
  } catch (e) {
    err = e;
  }
  report(a, label, err, problemsOf(err, want, mem));
}

function detachedCopy(typed) {
  const copy = typed.slice();
  structuredClone(copy.buffer, { transfer: [copy.buffer] });
  return copy;
}

const DEFAULT_BACKEND = t.getBackend();
/** The backend TESSERA_BACKEND forced at import (null: none), so tests can put it back after setBackend. */
const ENV_BACKEND = (() => {
  const b = t.backends().find((x) => x.name === process.env.TESSERA_BACKEND && x.available);
  return b ? b.name : null;
})();
const restoreBackend = () => t.setBackend(ENV_BACKEND);

// ---- fixtures (created once, so the error cases allocate nothing of their own) -------------------

const X = t.ones([2, 4]); // float32 [2, 4]
const W = t.ones([3, 4]); // a Linear weight [N = 3, K = 4]
const B3 = t.ones([3]);
const V4 = t.ones([4]);
const IDS = t.tensor([0, 1], { dtype: 'int32' });
const TABLE = t.ones([3, 2]);
const Q = t.ones([1, 4, 2, 8]); // [B, Hq, Sq, D]
const K = t.ones([1, 2, 3, 8]); // [B, Hkv, Sk, D]
const KV = t.ones([1, 2, 3, 8]);
const QW = t.quantize(t.ones([4, 3]), { dtype: 'int8' }); // K = 4, N = 3
const SP = t.sparse.fromDense(t.ones([2, 2]), { format: 'csr' }); // K = 2
const B2 = t.ones([2, 3]); // dense operand for SP
const XT = X.transpose(); // [4, 2] view
const WT = W.transpose(); // [4, 3] view
const ONE11 = t.ones([1, 1]);
const F32 = new Float32Array([1, 2, 3, 4]);

const D = t.ones([2, 4]);
D.dispose();
const QWD = t.quantize(t.ones([4, 3]), { dtype: 'int8' });
QWD.dispose();
const SPD = t.sparse.fromDense(t.ones([2, 2]), { format: 'csr' });
SPD.dispose();

// JS values of the wrong kind, with how describe() names them in messages
const WRONG = [
  ['null', null, 'null'],
  ['undefined', undefined, 'undefined'],
  ['a string', 'abc', 'string "abc"'],
  ['a plain object', {}, 'plain object'],
  ['a null-prototype object', Object.create(null), 'plain object'],
  ['an array', [1, 2], 'array(length 2)'],
  ['a number', 42, 'number 42'],
  ['a boolean', true, 'boolean true'],
  ['a symbol', Symbol('s'), 'Symbol'],
  ['a bigint', 10n, 'bigint 10'],
  ['a function', () => 1, 'function'],
  ['a typed array', F32, 'Float32Array(length 4)'],
  ['a QuantizedTensor', QW, 'QuantizedTensor object'],
  ['a SparseTensor', SP, 'SparseTensor object'],
  ['a Tensor', X, 'Tensor object'],
];
const wrong = (...labels) => WRONG.filter(([l]) => !labels.includes(l));

// ---- wrong JS types --------------------------------------------------------------------------------

test('a non-Tensor where a Tensor belongs: E_TYPE naming op and argument', (a) => {
  const optional = ['null', 'undefined'];
  const slots = [
    ['add', 'a', (v) => t.add(v, X), ['a number', 'a boolean', 'a Tensor']],
    ['add', 'b', (v) => t.add(X, v), ['a number', 'a boolean', 'a Tensor']],
    ['matmul', 'a', (v) => t.matmul(v, X), ['a Tensor']],
    ['matmul', 'b', (v) => t.matmul(X, v), ['a Tensor']],
    ['linear', 'x', (v) => t.linear(v, W), ['a Tensor']],
    ['linear', 'weight', (v) => t.linear(X, v), ['a Tensor']],
    ['linear', 'bias', (v) => t.linear(X, W, v), [...optional, 'a Tensor']],
    ['attention', 'q', (v) => t.attention(v, K, KV), ['a Tensor']],
    ['attention', 'k', (v) => t.attention(Q, v, KV), ['a Tensor']],
    ['attention', 'v', (v) => t.attention(Q, K, v), ['a Tensor']],
    ['attention', 'options.mask', (v) => t.attention(Q, K, KV, { mask: v }), [...optional, 'a Tensor']],
    ['softmax', 'x', (v) => t.softmax(v), ['a Tensor']],
    ['sum', 'x', (v) => t.sum(v), ['a Tensor']],
    ['argmax', 'x', (v) => t.argmax(v), ['a Tensor']],
    ['cat', 'tensors[1]', (v) => t.cat([X, v]), ['a Tensor']],
    ['embedding', 'ids', (v) => t.embedding(v, TABLE), ['a Tensor']],
    ['embedding', 'table', (v) => t.embedding(IDS, v), ['a Tensor']],
    ['rmsNorm', 'x', (v) => t.rmsNorm(v), ['a Tensor']],
    ['rmsNorm', 'weight', (v) => t.rmsNorm(X, v), [...optional, 'a Tensor']],
    ['layerNorm', 'x', (v) => t.layerNorm(v), ['a Tensor']],
    ['layerNorm', 'bias', (v) => t.layerNorm(X, V4, v), [...optional, 'a Tensor']],
    ['rope', 'x', (v) => t.rope(v), ['a Tensor']],
    ['quantize', 'w', (v) => t.quantize(v, { dtype: 'int8' }), ['a Tensor']],
    ['qmatmul', 'x', (v) => t.qmatmul(v, QW), ['a Tensor']],
    ['sparse.fromDense', 'w', (v) => t.sparse.fromDense(v, { format: 'csr' }), ['a Tensor']],
    ['spmm', 'b', (v) => t.spmm(SP, v), ['a Tensor']],
    ['where', 'cond', (v) => t.where(v, X, X), ['a Tensor']],
    ['gelu', 'x', (v) => t.gelu(v), ['a Tensor']],
    ['topk', 'x', (v) => t.topk(v, 1), ['a Tensor']],
    ['zerosLike', 't', (v) => t.zerosLike(v), ['a Tensor']],
  ];
  for (const [op, arg, call, skip] of slots) {
    for (const [label, v, descr] of wrong(...skip)) {
      throws(a, `${op}(${arg} = ${label})`, () => call(v), { op, code: 'E_TYPE', has: [`${arg} must be a`, descr] });
    }
  }
  const qslots = [
    ['dequantize', 'q', (v) => t.dequantize(v), 'QuantizedTensor'],
    ['qmatmul', 'qw', (v) => t.qmatmul(X, v), 'QuantizedTensor'],
    ['spmm', 'a', (v) => t.spmm(v, B2), 'SparseTensor'],
  ];
  for (const [op, arg, call, kind] of qslots) {
    for (const [label, v, descr] of wrong(kind === 'QuantizedTensor' ? 'a QuantizedTensor' : 'a SparseTensor')) {
      throws(a, `${op}(${arg} = ${label})`, () => call(v), { op, code: 'E_TYPE', has: [`${arg} must be a ${kind}`, descr] });
    }
  }
  a.end();
});

test('a non-object (or a Tensor) where an options object belongs: E_TYPE', (a) => {
  const bad = [
    ['null', null, 'null'],
    ['a string', 'abc', 'string'],
    ['an array', [1], 'array'],
    ['a number', 42, 'number 42'],
    ['a Tensor', X, 'Tensor object'],
    ['a typed array', F32, 'Float32Array'],
    ['a QuantizedTensor', QW, 'QuantizedTensor object'],
    ['a function', () => 1, 'function'],
  ];
  const slots = [
    ['tensor', (o) => t.tensor([1], o)],
    ['fromTypedArray', (o) => t.fromTypedArray(F32, o)],
    ['zeros', (o) => t.zeros([2], o)],
    ['ones', (o) => t.ones([2], o)],
    ['full', (o) => t.full([2], 1, o)],
    ['randn', (o) => t.randn([2], o)],
    ['rand', (o) => t.rand([2], o)],
    ['randint', (o) => t.randint(0, 5, [2], o)],
    ['zerosLike', (o) => t.zerosLike(X, o)],
    ['sum', (o) => t.sum(X, o)],
    ['max', (o) => t.max(X, o)],
    ['argmax', (o) => t.argmax(X, o)],
    ['topk', (o) => t.topk(X, 1, o)],
    ['gelu', (o) => t.gelu(X, o)],
    ['attention', (o) => t.attention(Q, K, KV, o)],
    ['rope', (o) => t.rope(X, o)],
    ['quantize', (o) => t.quantize(W, o)],
    ['sparse.fromDense', (o) => t.sparse.fromDense(W, o)],
  ];
  for (const [op, call] of slots) {
    for (const [label, v, descr] of bad) {
      throws(a, `${op}(options = ${label})`, () => call(v), { op, code: 'E_TYPE', has: ['options must be', descr] });
    }
  }
  throws(a, 'arange(5, options = a Tensor)', () => t.arange(5, X), { op: 'arange', code: 'E_TYPE', has: ['options', 'Tensor object'] });
  throws(a, 'to(null)', () => X.to(null), { op: 'to', code: 'E_TYPE', has: ['target', 'null'] });
  throws(a, 'to([])', () => X.to([]), { op: 'to', code: 'E_TYPE', has: ['target', 'array'] });
  throws(a, 'to(42)', () => X.to(42), { op: 'to', code: 'E_TYPE', has: ['target', 'number 42'] });
  a.end();
});

// ---- shapes ----------------------------------------------------------------------------------------

test('bad shapes: negative, non-integer, NaN, huge (2**40), non-arrays', (a) => {
  const elems = [
    ['-1', -1, 'number -1'],
    ['1.5', 1.5, 'number 1.5'],
    ['NaN', NaN, 'number NaN'],
    ['Infinity', Infinity, 'number Infinity'],
    ["'2'", '2', 'string "2"'],
    ['null', null, 'null'],
    ['{}', {}, 'plain object'],
    ['a Tensor', X, 'Tensor object'],
  ];
  const slots = [
    ['zeros', 'shape[1]', (d) => t.zeros([2, d])],
    ['ones', 'shape[1]', (d) => t.ones([2, d])],
    ['full', 'shape[1]', (d) => t.full([2, d], 0)],
    ['randn', 'shape[1]', (d) => t.randn([2, d])],
    ['rand', 'shape[1]', (d) => t.rand([2, d])],
    ['tensor', 'options.shape[0]', (d) => t.tensor([1, 2], { shape: [d, 2] })],
    ['fromTypedArray', 'options.shape[0]', (d) => t.fromTypedArray(F32, { shape: [d, 2] })],
    ['expand', 'shape[0]', (d) => X.expand(d, 2, 4)],
    ['sparse.csr', 'shape[1]', (d) => t.sparse.csr([0, 0], [], [], [1, d])],
  ];
  for (const [op, arg, call] of slots) {
    for (const [label, d, descr] of elems) {
      if (op === 'expand' && label === '-1') continue; // -1 keeps a dim; on a new leading dim it has its own error
      throws(a, `${op} with ${arg} = ${label}`, () => call(d), { op, code: 'E_SHAPE', has: [arg, 'non-negative integer', descr] });
    }
    throws(a, `${op} with a 2**40 dim`, () => call(2 ** 40), { op, code: 'E_SHAPE', has: ['1099511627776', 'more than the limit'] });
  }
  for (const [label, d, descr] of elems) {
    if (label === '-1') continue; // -1 is reshape's inferred dim
    throws(a, `reshape with ${label}`, () => X.reshape(d, 4), { op: 'reshape', code: 'E_SHAPE', has: ['shape[0]', descr] });
  }
  for (const op of ['zeros', 'randn']) {
    for (const [label, v, descr] of [['null', null, 'null'], ['a number', 3, 'number 3'], ['a string', '3', 'string'], ['a Tensor', X, 'Tensor object'], ['an object', {}, 'plain object']]) {
      throws(a, `${op}(shape = ${label})`, () => t[op](v), { op, code: 'E_TYPE', has: ['shape must be an array', descr] });
    }
  }
  throws(a, 'zeros([2**20, 2**20]): too many elements', () => t.zeros([2 ** 20, 2 ** 20]), { op: 'zeros', code: 'E_SHAPE', has: ['[1048576, 1048576]', 'more than the limit'] });
  throws(a, 'zeros with 65 dims', () => t.zeros(new Array(65).fill(1)), { op: 'zeros', code: 'E_SHAPE', has: ['65 dims'] });
  throws(a, 'reshape to 65 dims', () => X.reshape(new Array(63).fill(1).concat([2, 4])), { op: 'reshape', code: 'E_SHAPE', has: ['65 dims'] });
  a.end();
});

test('huge requests fail cleanly: E_SHAPE beyond the element limit, E_OOM when the host cannot allocate', (a) => {
  const big = t.ones([1, 1]).expand(2 ** 16, 2 ** 16 - 1); // a stride-0 view: no memory behind it
  a.deepEqual(big.shape, [65536, 65535], 'a broadcast view may be large (up to the element limit)');
  throws(a, 'expand past the element limit', () => big.expand(2, 65536, 65535), { op: 'expand', code: 'E_SHAPE', has: ['[2, 65536, 65535]', 'more than the limit'] });
  throws(a, 'expand(-1, 2**40)', () => ONE11.expand(-1, 2 ** 40), { op: 'expand', code: 'E_SHAPE', has: ['1099511627776'] });
  const col = t.zeros([2 ** 20, 1]);
  const row = t.zeros([1, 2 ** 20]);
  throws(a, 'add broadcasting to 2**40 elements', () => t.add(col, row), { op: 'add', code: 'E_SHAPE', has: ['[1048576, 1]', '[1, 1048576]', 'more than the limit'] });
  throws(a, 'where broadcasting to 2**40 elements', () => t.where(col, row, 0), { op: 'where', code: 'E_SHAPE', has: ['more than the limit'] });
  throws(a, 'matmul with a 2**40-element output', () => t.matmul(col, row), { op: 'matmul', code: 'E_SHAPE', has: ['[1048576, 1]', '[1, 1048576]', 'more than the limit'] });
  throws(a, 'linear with a 2**40-element output', () => t.linear(col, col), { op: 'linear', code: 'E_SHAPE', has: ['more than the limit'] });
  const ids = t.zeros([2 ** 20], { dtype: 'int8' });
  throws(a, 'embedding with a 2**40-element output', () => t.embedding(ids, row), { op: 'embedding', code: 'E_SHAPE', has: ['[1048576]', '[1, 1048576]'] });
  throws(a, 'arange(0, 2**40)', () => t.arange(0, 2 ** 40), { op: 'arange', code: 'E_SHAPE', has: ['1099511627776'] });
  throws(a, 'arange(0, 1, 2**-40)', () => t.arange(0, 1, 2 ** -40), { op: 'arange', code: 'E_SHAPE', has: ['more than the limit'] });
  [big, col, row, ids].forEach((x) => x.dispose());

  // 2**32 - 1 float64 elements (32 GiB) is within the element limit; on a host with less memory the
  // allocation itself fails, which must surface as E_OOM, not a RangeError.
  const fs = require('fs');
  let small = false;
  try {
    const info = fs.readFileSync('/proc/meminfo', 'utf8');
    const kb = (k) => Number((info.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm')) || [])[1] || Infinity);
    const overcommit = fs.readFileSync('/proc/sys/vm/overcommit_memory', 'utf8').trim();
    small = (kb('MemTotal') + kb('SwapTotal')) * 1024 < 30 * 2 ** 30 && overcommit !== '1';
  } catch {
    small = false;
  }
  if (small) {
    throws(a, 'zeros([2**32 - 1], float64) on a small host', () => t.zeros([2 ** 32 - 1], { dtype: 'float64' }), { op: 'zeros', code: 'E_OOM', has: ['4294967295', 'float64'] });
    throws(a, 'arange(0, 2**32 - 2) on a small host', () => t.arange(0, 2 ** 32 - 2), { op: 'arange', code: 'E_OOM' });
  } else {
    a.skip('host has 30 GiB or more (or always overcommits): a 32 GiB allocation might succeed, E_OOM not checked');
  }
  a.end();
});

// ---- dims and integer arguments ----------------------------------------------------------------------

test('dims and integer arguments: non-integer, NaN, huge, wrong type, out of range', (a) => {
  const bad = [
    ['1.5', 1.5, 'number 1.5'],
    ['NaN', NaN, 'number NaN'],
    ['Infinity', Infinity, 'number Infinity'],
    ['2**40', 2 ** 40, 'number 1099511627776'],
    ['-(2**40)', -(2 ** 40), 'number -1099511627776'],
    ["'0'", '0', 'string "0"'],
    ['{}', {}, 'plain object'],
    ['[0]', [0], 'array(length 1)'],
    ['a Tensor', X, 'Tensor object'],
    ['true', true, 'boolean true'],
  ];
  const huge = ['2**40', '-(2**40)'];
  const slots = [
    ['softmax', 'dim', (v) => t.softmax(X, v), []],
    ['sum', 'dim', (v) => t.sum(X, { dim: v }), ['[0]']],
    ['argmax', 'dim', (v) => t.argmax(X, { dim: v }), []],
    ['cat', 'dim', (v) => t.cat([X, X], v), []],
    ['cumsum', 'dim', (v) => t.cumsum(X, v), []],
    ['permute', 'dims[0]', (v) => X.permute(v, 0), ['[0]']],
    ['transpose', 'dim0', (v) => X.transpose(v, 0), []],
    ['slice', 'dim', (v) => X.slice(v), []],
    ['slice', 'start', (v) => X.slice(0, v), huge],
    ['slice', 'step', (v) => X.slice(0, 0, 2, v), ['2**40']],
    ['select', 'index', (v) => X.select(0, v), []],
    ['unsqueeze', 'dim', (v) => X.unsqueeze(v), []],
    ['squeeze', 'dim', (v) => X.squeeze(v), []],
    ['topk', 'k', (v) => t.topk(X, v), []],
    ['tril', 'diagonal', (v) => t.tril(X, v), huge],
    ['setNumThreads', 'n', (v) => t.setNumThreads(v), []],
    ['rope', 'options.offset', (v) => t.rope(X, { offset: v }), ['2**40']],
    ['attention', 'options.kvOffset', (v) => t.attention(Q, K, KV, { kvOffset: v }), []],
    ['quantize', 'options.groupSize', (v) => t.quantize(W, { dtype: 'int4', groupSize: v }), []],
  ];
  for (const [op, arg, call, skip] of slots) {
    for (const [label, v, descr] of bad) {
      if (skip.includes(label)) continue;
      throws(a, `${op}(${arg} = ${label})`, () => call(v), { op, code: 'E_ARG', has: [arg, descr] });
    }
  }
  // out of range for the tensor's rank / size
  const range = [
    ['softmax dim 5 of a 2-D tensor', () => t.softmax(X, 5), 'softmax', ['dim', '[-2, 1]', 'rank 2', 'number 5']],
    ['softmax dim -3', () => t.softmax(X, -3), 'softmax', ['dim', 'number -3']],
    ['sum dim [0, 2]', () => t.sum(X, { dim: [0, 2] }), 'sum', ['dim[1]', 'rank 2']],
    ['sum dims repeat', () => t.sum(X, { dim: [1, -1] }), 'sum', ['repeats']],
    ['argmax dim 2', () => t.argmax(X, { dim: 2 }), 'argmax', ['dim', 'rank 2']],
    ['cat dim 2', () => t.cat([X, X], 2), 'cat', ['dim', 'rank 2']],
    ['permute(0, 2)', () => X.permute(0, 2), 'permute', ['dims[1]', 'rank 2']],
    ['permute(0, 0)', () => X.permute(0, 0), 'permute', ['repeated']],
    ['permute(0)', () => X.permute(0), 'permute', ['[2, 4]']],
    ['transpose(0, 2)', () => X.transpose(0, 2), 'transpose', ['dim1', 'rank 2']],
    ['select(0, 2)', () => X.select(0, 2), 'select', ['index', 'number 2']],
    ['select(0, -3)', () => X.select(0, -3), 'select', ['index', 'number -3']],
    ['slice step 0', () => X.slice(0, 0, 2, 0), 'slice', ['step', 'number 0']],
    ['slice step -1', () => X.slice(0, 0, 2, -1), 'slice', ['step', 'number -1']],
    ['unsqueeze(3)', () => X.unsqueeze(3), 'unsqueeze', ['dim', 'rank 3']],
    ['topk k = 5 of 4', () => t.topk(X, 5), 'topk', ['k', '[0, 4]', 'number 5']],
    ['topk k = -1', () => t.topk(X, -1), 'topk', ['k', 'number -1']],
    ['setNumThreads(0)', () => t.setNumThreads(0), 'setNumThreads', ['n', '[1, 1024]']],
    ['setNumThreads(2000)', () => t.setNumThreads(2000), 'setNumThreads', ['n', 'number 2000']],
  ];
  for (const [label, f, op, has] of range) throws(a, label, f, { op, code: 'E_ARG', has });
  a.end();
});

// ---- op by op: shapes, dtypes, values ----------------------------------------------------------------

test('creation: tensor, fromTypedArray, zeros, arange, randn', (a) => {
  const cyclic = [];
  cyclic.push(cyclic);
  let deep = 1;
  for (let i = 0; i < 10000; i++) deep = [deep];
  const cases = [
    ['tensor: ragged', () => t.tensor([[1, 2], [3]]), 'tensor', 'E_SHAPE', ['ragged', 'data[1]', 'length 2']],
    ['tensor: string element', () => t.tensor([1, '2']), 'tensor', 'E_TYPE', ['data[1]', 'string "2"']],
    ['tensor: object element', () => t.tensor([[1], [{}]]), 'tensor', 'E_TYPE', ['data[1][0]', 'plain object']],
    ['tensor: hole', () => t.tensor([1, , 3]), 'tensor', 'E_TYPE', ['data[1]', 'undefined']], // eslint-disable-line no-sparse-arrays
    ['tensor: cyclic array (must not hang)', () => t.tensor(cyclic), 'tensor', 'E_SHAPE', ['nested more than 64']],
    ['tensor: 10000 levels deep (no stack overflow)', () => t.tensor(deep), 'tensor', 'E_SHAPE', ['nested more than 64']],
    ['tensor: BigInt64Array', () => t.tensor(new BigInt64Array(2)), 'tensor', 'E_DTYPE', ['BigInt']],
    ['tensor: Uint16Array needs a dtype', () => t.tensor(new Uint16Array(2)), 'tensor', 'E_DTYPE', ['Uint16Array', 'fromTypedArray']],
    ['tensor: shape holds 4, data 3', () => t.tensor([1, 2, 3], { shape: [2, 2] }), 'tensor', 'E_SHAPE', ['[2, 2]', '4', '3']],
    ['tensor: unknown dtype', () => t.tensor([1], { dtype: 'float128' }), 'tensor', 'E_DTYPE', ['options.dtype', 'float128', 'bfloat16']],
    ['tensor: device gpu', () => t.tensor([1], { device: 'gpu' }), 'tensor', 'E_DEVICE', ["'cpu' or 'cuda'", 'string "gpu"']],
    ['tensor: a DataView', () => t.tensor(new DataView(new ArrayBuffer(4))), 'tensor', 'E_TYPE', ['DataView']],
    ['fromTypedArray: Float32Array for float16', () => t.fromTypedArray(F32, { dtype: 'float16' }), 'fromTypedArray', 'E_DTYPE', ['float16', 'Uint16Array', 'Float32Array']],
    ['fromTypedArray: Uint8Array bits for bfloat16', () => t.fromTypedArray(new Uint8Array(2), { dtype: 'bfloat16' }), 'fromTypedArray', 'E_DTYPE', ['bfloat16', 'Uint16Array', 'Uint8Array']],
    ['fromTypedArray: int4 [5] needs 3 bytes', () => t.fromTypedArray(new Uint8Array(2), { dtype: 'int4', shape: [5] }), 'fromTypedArray', 'E_SHAPE', ['[5]', 'int4', '3', '2']],
    ['fromTypedArray: plain array', () => t.fromTypedArray([1, 2]), 'fromTypedArray', 'E_TYPE', ['typed array', 'array(length 2)']],
    ['fromTypedArray: Uint16Array needs a dtype', () => t.fromTypedArray(new Uint16Array(2)), 'fromTypedArray', 'E_DTYPE', ['Uint16Array']],
    ['zeros: unknown dtype', () => t.zeros([2], { dtype: 'int64' }), 'zeros', 'E_DTYPE', ['options.dtype', 'int64']],
    ['zeros: cuda device needs cuda', null, 'zeros', 'E_DEVICE', ['cuda', 'not available']],
    ['full: value null', () => t.full([2], null), 'full', 'E_TYPE', ['value', 'null']],
    ['arange: step 0', () => t.arange(0, 5, 0), 'arange', 'E_ARG', ['step', 'nonzero']],
    ['arange: NaN end', () => t.arange(NaN), 'arange', 'E_ARG', ['end', 'NaN']],
    ['arange: Infinity end', () => t.arange(0, Infinity), 'arange', 'E_ARG', ['end', 'Infinity']],
    ['arange: NaN step', () => t.arange(0, 5, NaN), 'arange', 'E_ARG', ['step', 'NaN']],
    ['arange: string start', () => t.arange('0', 5), 'arange', 'E_ARG', ['start', 'string "0"']],
    ['randn: int dtype', () => t.randn([2], { dtype: 'int32' }), 'randn', 'E_DTYPE', ['floating', 'int32']],
    ['randn: seed string', () => t.randn([2], { seed: 'a' }), 'randn', 'E_ARG', ['options.seed', 'string']],
    ['randn: seed NaN', () => t.randn([2], { seed: NaN }), 'randn', 'E_ARG', ['options.seed', 'NaN']],
    ['randint: high <= low', () => t.randint(5, 5, [2]), 'randint', 'E_ARG', ['high', 'low']],
    ['randint: no integer in range', () => t.randint(0.2, 0.8, [2]), 'randint', 'E_ARG', ['[0.2, 0.8)']],
    ['randint: unknown dtype', () => t.randint(0, 5, [2], { dtype: 'x' }), 'randint', 'E_DTYPE', ['options.dtype']],
    ['manualSeed: NaN', () => t.manualSeed(NaN), 'manualSeed', 'E_ARG', ['seed', 'NaN']],
  ];
  const cudaUp = t.backends().find((b) => b.name === 'cuda').available;
  for (const [label, f, op, code, has] of cases) {
    if (f === null) {
      if (!cudaUp) throws(a, label, () => t.zeros([2], { device: 'cuda' }), { op, code, has });
      continue;
    }
    throws(a, label, f, { op, code, has });
  }
  a.end();
});

test('views: reshape, permute, slice, transpose, expand, to', (a) => {
  const cases = [
    ['reshape [2, 4] -> [3, 3]', () => X.reshape(3, 3), 'reshape', 'E_SHAPE', ['[3, 3]', '9', '[2, 4]', '8']],
    ['reshape with two -1', () => X.reshape(-1, -1), 'reshape', 'E_SHAPE', ['shape[1]', 'single -1']],
    ['reshape -1 next to 0', () => X.reshape(0, -1), 'reshape', 'E_SHAPE', ['-1', '[2, 4]']],
    ['reshape -1 that does not divide', () => X.reshape(3, -1), 'reshape', 'E_SHAPE', ['-1', '8 elements']],
    ['expand [2, 4] -> [3, 4]', () => X.expand(3, 4), 'expand', 'E_SHAPE', ['[2, 4]', '[3, 4]', 'dim 0']],
    ['expand to fewer dims', () => X.expand(4), 'expand', 'E_SHAPE', ['[2, 4]', 'fewer dims']],
    ['expand -1 on a new leading dim', () => X.expand(-1, 2, 4), 'expand', 'E_SHAPE', ['-1', 'leading']],
    ['item of [2, 4]', () => X.item(), 'item', 'E_SHAPE', ['one element', '[2, 4]']],
    ['to unknown dtype', () => X.to('float128'), 'to', 'E_DTYPE', ['float128', 'float16']],
    ['to { dtype: 5 }', () => X.to({ dtype: 5 }), 'to', 'E_DTYPE', ['number 5']],
    ['to device tpu', () => X.to({ device: 'tpu' }), 'to', 'E_DEVICE', ['string "tpu"']],
  ];
  for (const [label, f, op, code, has] of cases) throws(a, label, f, { op, code, has });
  if (!t.backends().find((b) => b.name === 'cuda').available) {
    throws(a, "to('cuda') without a GPU", () => X.to('cuda'), { op: 'to', code: 'E_DEVICE', has: ["'cuda'", 'not available'] });
  }
  a.end();
});

test('elementwise, matmul, linear: shape and broadcasting failures', (a) => {
  const cases = [
    ['add [2, 4] + [3]', () => t.add(X, B3), 'add', 'E_SHAPE', ['[2, 4]', '[3]', 'broadcast']],
    ['mul [2, 4] * [4, 2]', () => t.mul(X, XT), 'mul', 'E_SHAPE', ['[2, 4]', '[4, 2]']],
    ['sub of two numbers', () => t.sub(1, 2), 'sub', 'E_TYPE', ['Tensor']],
    ['where with cond [3]', () => t.where(B3, X, 0), 'where', 'E_SHAPE', ['[3] (cond)', '[2, 4] (a)']],
    ['gelu approximate fast', () => t.gelu(X, { approximate: 'fast' }), 'gelu', 'E_ARG', ['approximate', 'string "fast"']],
    ['gelu approximate 10n (no JSON crash)', () => t.gelu(X, { approximate: 10n }), 'gelu', 'E_ARG', ['bigint 10']],
    ['matmul [2, 3] x [4, 5]', () => t.matmul(t.ones([2, 3]), t.ones([4, 5])), 'matmul', 'E_SHAPE', ['[2, 3]', '[4, 5]', '3', '4']],
    ['matmul batch [2, 2, 3] x [3, 3, 4]', () => t.matmul(t.ones([2, 2, 3]), t.ones([3, 3, 4])), 'matmul', 'E_SHAPE', ['[2, 2, 3]', '[3, 3, 4]']],
    ['matmul of a 0-d tensor', () => t.matmul(t.tensor(1), V4), 'matmul', 'E_SHAPE', ['[] (a)', '[4] (b)']],
    ['linear weight [4, 3] for K = 4', () => t.linear(X, WT), 'linear', 'E_SHAPE', ['[2, 4]', '[4, 3]']],
    ['linear weight 1-D', () => t.linear(X, V4), 'linear', 'E_SHAPE', ['weight [4]']],
    ['linear bias [4] for N = 3', () => t.linear(X, W, V4), 'linear', 'E_SHAPE', ['bias', '[3]', '[4]']],
  ];
  for (const [label, f, op, code, has] of cases) {
    if (label.startsWith('matmul [2, 3]') || label.startsWith('matmul batch') || label.startsWith('matmul of')) {
      // these build their operands inside; build outside so the memory check sees only the op
      continue;
    }
    throws(a, label, f, { op, code, has });
  }
  const m23 = t.ones([2, 3]);
  const m45 = t.ones([4, 5]);
  const b223 = t.ones([2, 2, 3]);
  const b334 = t.ones([3, 3, 4]);
  const s0 = t.tensor(1);
  throws(a, 'matmul [2, 3] x [4, 5]', () => t.matmul(m23, m45), { op: 'matmul', code: 'E_SHAPE', has: ['[2, 3]', '[4, 5]', 'inner dims 3 and 4'] });
  throws(a, 'matmul batch [2, 2, 3] x [3, 3, 4]', () => t.matmul(b223, b334), { op: 'matmul', code: 'E_SHAPE', has: ['[2, 2, 3]', '[3, 3, 4]'] });
  throws(a, 'matmul of a 0-d tensor', () => t.matmul(s0, V4), { op: 'matmul', code: 'E_SHAPE', has: ['[] (a)', '[4] (b)'] });
  a.end();
});

test('attention: heads, head dims, lengths, dtypes, mask, options', (a) => {
  const T = (shape, dtype = 'float32') => t.ones(shape, { dtype });
  const q = T([1, 4, 2, 8]);
  const k3 = T([1, 3, 2, 8]);
  const k4d = T([1, 2, 2, 4]);
  const kLong = T([1, 2, 3, 8]);
  const vShort = T([1, 2, 2, 8]);
  const q2 = T([2, 4, 2, 8]);
  const k16 = T([1, 2, 3, 8], 'float16');
  const qi = T([1, 4, 2, 8], 'int32');
  const q3d = T([4, 2, 8]);
  const k0 = T([1, 0, 3, 8]);
  const mask22 = T([2, 2]);
  const maskBool = t.tensor([[true, false, true], [true, true, true]]);
  const q8 = T([1, 4, 2, 8], 'float8_e4m3fn');
  const cases = [
    ['Hq % Hkv != 0 (4 vs 3)', () => t.attention(q, k3, k3), 'E_SHAPE', ['query heads (4)', 'kv heads (3)', 'q [1, 4, 2, 8]', 'k [1, 3, 2, 8]']],
    ['Hkv = 0', () => t.attention(q, k0, k0), 'E_SHAPE', ['kv heads (0)']],
    ['q and k head dims differ (8 vs 4)', () => t.attention(q, k4d, k4d), 'E_SHAPE', ['head dims', 'q [1, 4, 2, 8]', 'k [1, 2, 2, 4]']],
    ['k and v lengths differ', () => t.attention(q, kLong, vShort), 'E_SHAPE', ['k [1, 2, 3, 8]', 'v [1, 2, 2, 8]']],
    ['batch sizes differ', () => t.attention(q2, kLong, kLong), 'E_SHAPE', ['batch', 'q [2, 4, 2, 8]']],
    ['q float32 with k float16', () => t.attention(q, k16, kLong), 'E_DTYPE', ['float32', 'float16']],
    ['int32 q', () => t.attention(qi, kLong, kLong), 'E_DTYPE', ['q', 'int32']],
    ['fp8 q', () => t.attention(q8, kLong, kLong), 'E_DTYPE', ['q', 'float8_e4m3fn']],
    ['3-D q', () => t.attention(q3d, kLong, kLong), 'E_SHAPE', ['q', '4-D', '[4, 2, 8]']],
    ['mask [2, 2] for [1, 4, 2, 3]', () => t.attention(q, kLong, kLong, { mask: mask22 }), 'E_SHAPE', ['options.mask [2, 2]', '[1, 4, 2, 3]']],
    ['bool mask (torch reads it as keep/drop)', () => t.attention(q, kLong, kLong, { mask: maskBool }), 'E_DTYPE', ['options.mask', 'bool']],
    ['mask a plain object', () => t.attention(q, kLong, kLong, { mask: {} }), 'E_TYPE', ['options.mask', 'plain object']],
    ['causal a string', () => t.attention(q, kLong, kLong, { causal: 'yes' }), 'E_ARG', ['options.causal', 'string']],
    ['scale NaN', () => t.attention(q, kLong, kLong, { scale: NaN }), 'E_ARG', ['options.scale', 'NaN']],
  ];
  for (const [label, f, code, has] of cases) throws(a, `attention: ${label}`, f, { op: 'attention', code, has });
  a.end();
});

test('reductions, softmax, cat, embedding, norms, rope', (a) => {
  const empty = t.zeros([0]);
  const empty2 = t.zeros([0, 2]);
  const s0 = t.tensor(2);
  const idsF = t.tensor([0, 1]);
  const ids3 = t.tensor([0, 3], { dtype: 'int32' });
  const idsNeg = t.tensor([[1, -1]], { dtype: 'int8' });
  const ids64 = t.tensor([0], { dtype: 'int4' });
  const odd = t.ones([2, 3]);
  const oneD = t.ones([4]);
  const posT = t.tensor([0, 1]);
  const posDet = detachedCopy(new Float64Array([0, 1]));
  const cases = [
    ['sum keepdim a string', () => t.sum(X, { keepdim: 'yes' }), 'sum', 'E_ARG', ['options.keepdim', 'string']],
    ['max over an empty dim', () => t.max(empty2, { dim: 0 }), 'max', 'E_SHAPE', ['empty', '[0, 2]']],
    ['argmax of an empty tensor', () => t.argmax(empty), 'argmax', 'E_SHAPE', ['empty', '[0]']],
    ['cat: [2, 4] with [3]', () => t.cat([X, B3]), 'cat', 'E_SHAPE', ['tensors[1]', '[3]', '[2, 4]']],
    ['cat: [2, 4] with [2, 3] along 0', () => t.cat([X, odd], 0), 'cat', 'E_SHAPE', ['tensors[1]', '[2, 3]', 'outside dim 0']],
    ['cat: empty list', () => t.cat([]), 'cat', 'E_TYPE', ['non-empty', 'array(length 0)']],
    ['cat: 0-d tensors', () => t.cat([s0, s0]), 'cat', 'E_SHAPE', ['zero-dim']],
    ['cat: a Tensor instead of a list', () => t.cat(X), 'cat', 'E_TYPE', ['tensors', 'Tensor object']],
    ['embedding: float ids', () => t.embedding(idsF, TABLE), 'embedding', 'E_DTYPE', ['ids', 'integer', 'float32']],
    ['embedding: int4 ids', () => t.embedding(ids64, TABLE), 'embedding', 'E_DTYPE', ['ids', 'int4']],
    ['embedding: id 3 of a [3, 2] table', () => t.embedding(ids3, TABLE), 'embedding', 'E_ARG', ['ids contains 3', 'flat index 1', '[0, 3)', '[3, 2]']],
    ['embedding: id -1', () => t.embedding(idsNeg, TABLE), 'embedding', 'E_ARG', ['-1', '[3, 2]']],
    ['embedding: 1-D table', () => t.embedding(IDS, oneD), 'embedding', 'E_SHAPE', ['table', '2-D', '[4]']],
    ['rmsNorm: weight [3] for D = 4', () => t.rmsNorm(X, B3), 'rmsNorm', 'E_SHAPE', ['weight', '[4]', '[3]']],
    ['rmsNorm: eps NaN', () => t.rmsNorm(X, null, NaN), 'rmsNorm', 'E_ARG', ['eps', 'NaN']],
    ['rmsNorm: 0-d x', () => t.rmsNorm(s0), 'rmsNorm', 'E_SHAPE', ['x', 'scalar']],
    ['layerNorm: bias [3] for D = 4', () => t.layerNorm(X, V4, B3), 'layerNorm', 'E_SHAPE', ['bias', '[4]', '[3]']],
    ['layerNorm: weight 2-D', () => t.layerNorm(X, X), 'layerNorm', 'E_SHAPE', ['weight', '[2, 4]']],
    ['rope: 1-D x', () => t.rope(oneD), 'rope', 'E_SHAPE', ['[..., S, D]', '[4]']],
    ['rope: odd D = 3', () => t.rope(odd), 'rope', 'E_ARG', ['D = 3', '[2, 3]', 'even']],
    ['rope: rotaryDim 3', () => t.rope(X, { rotaryDim: 3 }), 'rope', 'E_ARG', ['options.rotaryDim', 'even']],
    ['rope: rotaryDim 6 > D', () => t.rope(X, { rotaryDim: 6 }), 'rope', 'E_ARG', ['options.rotaryDim', '[0, 4]']],
    ['rope: 3 positions for S = 2', () => t.rope(X, { positions: [0, 1, 2] }), 'rope', 'E_SHAPE', ['options.positions', '3', 'S = 2']],
    ['rope: NaN position', () => t.rope(X, { positions: [0, NaN] }), 'rope', 'E_ARG', ['options.positions[1]', 'NaN']],
    ['rope: positions a string', () => t.rope(X, { positions: 'ab' }), 'rope', 'E_TYPE', ['options.positions', 'string']],
    ['rope: detached positions', () => t.rope(X, { positions: posDet }), 'rope', 'E_DETACHED', ['options.positions', 'detached']],
    ['rope: negative offset', () => t.rope(X, { offset: -1 }), 'rope', 'E_ARG', ['options.offset', 'number -1']],
    ['rope: theta -1', () => t.rope(X, { theta: -1 }), 'rope', 'E_ARG', ['options.theta', 'positive']],
    ['rope: invFreq of 1 entry', () => t.rope(X, { invFreq: [1] }), 'rope', 'E_ARG', ['options.invFreq', '2 entries']],
    ['rope: interleaved 1', () => t.rope(X, { interleaved: 1 }), 'rope', 'E_ARG', ['options.interleaved', 'number 1']],
  ];
  for (const [label, f, op, code, has] of cases) throws(a, label, f, { op, code, has });
  a.ok(t.rope(X, { positions: posT }).shape.length === 2, 'rope accepts a Tensor of positions (control)');
  a.end();
});

test('quantize, dequantize, qmatmul, sparse.fromDense, sparse.csr, spmm', (a) => {
  const wi = t.ones([4, 4], { dtype: 'int32' });
  const w1 = t.ones([4]);
  const w0 = t.zeros([0, 4]);
  const x3 = t.ones([2, 3]);
  const xi = t.ones([2, 4], { dtype: 'int32' });
  const bi = t.ones([2, 3], { dtype: 'int32' });
  const b4 = t.ones([4, 2]);
  const cases = [
    ['quantize: int32 tensor', () => t.quantize(wi, { dtype: 'int8' }), 'quantize', 'E_DTYPE', ['w', 'float', 'int32']],
    ['quantize: 1-D', () => t.quantize(w1, { dtype: 'int8' }), 'quantize', 'E_SHAPE', ['2-D', '[4]']],
    ['quantize: empty', () => t.quantize(w0, { dtype: 'int8' }), 'quantize', 'E_SHAPE', ['non-empty', '[0, 4]']],
    ['quantize: dtype float16', () => t.quantize(W, { dtype: 'float16' }), 'quantize', 'E_DTYPE', ['options.dtype', 'float16', 'int4']],
    ['quantize: no dtype', () => t.quantize(W), 'quantize', 'E_DTYPE', ['options.dtype', 'undefined']],
    ['quantize: axis 0', () => t.quantize(W, { dtype: 'int8', axis: 0 }), 'quantize', 'E_ARG', ['options.axis', 'number 0']],
    ['quantize: groupSize 0', () => t.quantize(W, { dtype: 'int4', groupSize: 0 }), 'quantize', 'E_ARG', ['options.groupSize', 'number 0']],
    ['quantize: asymmetric int8', () => t.quantize(W, { dtype: 'int8', symmetric: false }), 'quantize', 'E_ARG', ['symmetric', 'int8']],
    ['dequantize: dtype int32', () => t.dequantize(QW, 'int32'), 'dequantize', 'E_DTYPE', ['dtype', 'int32']],
    ['dequantize: unknown dtype', () => t.dequantize(QW, 'floaty'), 'dequantize', 'E_DTYPE', ['dtype', 'floaty']],
    ['qmatmul: x [2, 3] for K = 4', () => t.qmatmul(x3, QW), 'qmatmul', 'E_SHAPE', ['x [2, 3]', 'K = 4', '[4, 3]']],
    ['qmatmul: int32 x', () => t.qmatmul(xi, QW), 'qmatmul', 'E_DTYPE', ['x', 'float', 'int32']],
    ['sparse.fromDense: 1-D', () => t.sparse.fromDense(w1, { format: 'csr' }), 'sparse.fromDense', 'E_SHAPE', ['2-D', '[4]']],
    ['sparse.fromDense: int32', () => t.sparse.fromDense(wi, { format: 'csr' }), 'sparse.fromDense', 'E_DTYPE', ['float', 'int32']],
    ['sparse.fromDense: format coo', () => t.sparse.fromDense(W, { format: 'coo' }), 'sparse.fromDense', 'E_ARG', ['options.format', 'string "coo"']],
    ['spmm: b [4, 2] for K = 2', () => t.spmm(SP, b4), 'spmm', 'E_SHAPE', ['K = 2', '[2, 2]', '[4, 2]']],
    ['spmm: int32 b', () => t.spmm(SP, bi), 'spmm', 'E_DTYPE', ['b', 'float', 'int32']],
  ];
  for (const [label, f, op, code, has] of cases) throws(a, label, f, { op, code, has });
  a.end();
});

test('sparse.csr: bad structure and bad arrays', (a) => {
  const op = 'sparse.csr';
  const cases = [
    ['decreasing rowPtr', () => t.sparse.csr([0, 2, 1, 2], [0, 1], [1, 2], [3, 2]), 'E_ARG', ['rowPtr decreases at row 1', '2 > 1', '[3, 2]']],
    ['column out of range', () => t.sparse.csr([0, 1, 2], [0, 2], [1, 2], [2, 2]), 'E_ARG', ['colIdx[1] = 2', '[0, 2)', 'row 1']],
    ['negative column', () => t.sparse.csr([0, 1, 2], [0, -1], [1, 2], [2, 2]), 'E_ARG', ['colIdx[1] = -1']],
    ['unsorted columns', () => t.sparse.csr([0, 2, 2], [1, 0], [1, 2], [2, 2]), 'E_ARG', ['strictly increasing', 'row 0']],
    ['duplicate column', () => t.sparse.csr([0, 2, 2], [1, 1], [1, 2], [2, 2]), 'E_ARG', ['strictly increasing']],
    ['rowPtr[0] = 1', () => t.sparse.csr([1, 1, 1], [], [], [2, 2]), 'E_ARG', ['rowPtr[0] = 1']],
    ['rowPtr too short', () => t.sparse.csr([0, 1], [0], [1], [2, 2]), 'E_ARG', ['M+1 = 3', 'rowPtr length 2']],
    ['nnz disagrees with colIdx', () => t.sparse.csr([0, 1, 3], [0, 1], [1, 2], [2, 2]), 'E_ARG', ['rowPtr[M] = 3', '2 column indices']],
    ['values count disagrees', () => t.sparse.csr([0, 1, 2], [0, 1], [1], [2, 2]), 'E_ARG', ['values 1']],
    ['non-integer rowPtr', () => t.sparse.csr([0, 0.5, 1], [0], [1], [2, 2]), 'E_ARG', ['rowPtr[1]', 'int32 integer', 'number 0.5']],
    ['rowPtr entry 2**40', () => t.sparse.csr([0, 2 ** 40], [0], [1], [1, 1]), 'E_ARG', ['rowPtr[1]', '1099511627776']],
    ['NaN column', () => t.sparse.csr([0, 1], [NaN], [1], [1, 1]), 'E_ARG', ['colIdx[0]', 'NaN']],
    ['colIdx a string', () => t.sparse.csr([0, 1], 'x', [1], [1, 1]), 'E_TYPE', ['colIdx', 'string "x"']],
    ['rowPtr null', () => t.sparse.csr(null, [0], [1], [1, 1]), 'E_TYPE', ['rowPtr', 'null']],
    ['rowPtr undefined', () => t.sparse.csr(undefined, [0], [1], [1, 1]), 'E_TYPE', ['rowPtr', 'undefined']],
    ['values a plain object', () => t.sparse.csr([0, 1], [0], {}, [1, 1]), 'E_TYPE', ['values', 'plain object']],
    ['values with a string', () => t.sparse.csr([0, 1], [0], ['1'], [1, 1]), 'E_TYPE', ['values[0]', 'string']],
    ['shape [1, 1, 1]', () => t.sparse.csr([0, 1], [0], [1], [1, 1, 1]), 'E_SHAPE', ['[M, K]', 'array(length 3)']],
    ['shape -1', () => t.sparse.csr([0, 1], [0], [1], [1, -1]), 'E_SHAPE', ['shape[1]', 'number -1']],
  ];
  for (const [label, f, code, has] of cases) throws(a, `sparse.csr: ${label}`, f, { op, code, has });
  const ok = t.sparse.csr(new Int32Array([0, 1, 1]), [1], new Float64Array([2.5]), [2, 2]);
  a.deepEqual(ok.toDense().toArray(), [[0, 2.5], [0, 0]], 'a valid CSR still builds (control)');
  a.end();
});

// ---- dispose, detach ------------------------------------------------------------------------------

test('use after dispose: every op says E_DISPOSED, naming op and argument', async (a) => {
  const sync = [
    ['data', 'tensor', () => D.data()],
    ['toFloat32', 'tensor', () => D.toFloat32()],
    ['toFloat64', 'tensor', () => D.toFloat64()],
    ['toArray', 'tensor', () => D.toArray()],
    ['item', 'tensor', () => D.item()],
    ['reshape', 'tensor', () => D.reshape(-1)],
    ['view', 'tensor', () => D.view(8)],
    ['flatten', 'tensor', () => D.flatten()],
    ['permute', 'tensor', () => D.permute(1, 0)],
    ['transpose', 'tensor', () => D.transpose()],
    ['slice', 'tensor', () => D.slice(0, 1)],
    ['select', 'tensor', () => D.select(0, 0)],
    ['expand', 'tensor', () => D.expand(3, 2, 4)],
    ['squeeze', 'tensor', () => D.squeeze()],
    ['unsqueeze', 'tensor', () => D.unsqueeze(0)],
    ['contiguous', 'tensor', () => D.contiguous()],
    ['clone', 'tensor', () => D.clone()],
    ['to', 'tensor', () => D.to('float16')],
    ['add', 'a', () => t.add(D, 1)],
    ['add', 'b', () => t.add(X, D)],
    ['sub', 'a', () => t.sub(D, X)],
    ['mul', 'b', () => t.mul(2, D)],
    ['div', 'a', () => t.div(D, 2)],
    ['where', 'cond', () => t.where(D, X, X)],
    ['where', 'a', () => t.where(X, D, X)],
    ['where', 'b', () => t.where(X, 0, D)],
    ['exp', 'x', () => t.exp(D)],
    ['gelu', 'x', () => t.gelu(D)],
    ['relu', 'x', () => t.relu(D)],
    ['matmul', 'a', () => t.matmul(D, WT)],
    ['matmul', 'b', () => t.matmul(X, D)],
    ['linear', 'x', () => t.linear(D, W)],
    ['linear', 'weight', () => t.linear(X, D)],
    ['linear', 'bias', () => t.linear(X, W, D)],
    ['attention', 'q', () => t.attention(D, K, KV)],
    ['attention', 'k', () => t.attention(Q, D, KV)],
    ['attention', 'v', () => t.attention(Q, K, D)],
    ['attention', 'options.mask', () => t.attention(Q, K, KV, { mask: D })],
    ['softmax', 'x', () => t.softmax(D)],
    ['logSoftmax', 'x', () => t.logSoftmax(D)],
    ['sum', 'x', () => t.sum(D)],
    ['mean', 'x', () => t.mean(D)],
    ['max', 'x', () => t.max(D)],
    ['argmax', 'x', () => t.argmax(D)],
    ['cumsum', 'x', () => t.cumsum(D, 0)],
    ['topk', 'x', () => t.topk(D, 1)],
    ['cat', 'tensors[0]', () => t.cat([D, X])],
    ['cat', 'tensors[1]', () => t.cat([X, D])],
    ['embedding', 'ids', () => t.embedding(D, TABLE)],
    ['embedding', 'table', () => t.embedding(IDS, D)],
    ['rmsNorm', 'x', () => t.rmsNorm(D)],
    ['rmsNorm', 'weight', () => t.rmsNorm(X, D)],
    ['layerNorm', 'x', () => t.layerNorm(D)],
    ['layerNorm', 'bias', () => t.layerNorm(X, V4, D)],
    ['rope', 'x', () => t.rope(D)],
    ['rope', 'options.positions', () => t.rope(X, { positions: D })],
    ['tril', 'x', () => t.tril(D)],
    ['quantize', 'w', () => t.quantize(D, { dtype: 'int8' })],
    ['dequantize', 'values', () => t.dequantize(QWD)],
    ['qmatmul', 'x', () => t.qmatmul(D, QW)],
    ['qmatmul', 'values', () => t.qmatmul(X, QWD)],
    ['sparse.fromDense', 'w', () => t.sparse.fromDense(D, { format: 'csr' })],
    ['sparse.csr', 'values', () => t.sparse.csr([0, 1], [0], D.select(0, 0), [1, 1])],
    ['spmm', 'sparse part 0', () => t.spmm(SPD, B2)],
    ['spmm', 'b', () => t.spmm(SP, D)],
    ['sparse.toDense', 'sparse part 0', () => SPD.toDense()],
    ['zerosLike', 't', () => t.zerosLike(D)],
    ['onesLike', 't', () => t.onesLike(D)],
  ];
  for (const [op, arg, f] of sync) {
    // sparse.csr's values view is built from D first, so select() reports it: accept either op there
    const want = op === 'sparse.csr' ? { op: 'select', code: 'E_DISPOSED', has: ['dispose()'] } : { op, code: 'E_DISPOSED', has: [arg, 'dispose()', '[2, 4]'] };
    if (op === 'dequantize' || op === 'spmm' || op === 'sparse.toDense' || (op === 'qmatmul' && arg === 'values')) want.has = [arg, 'dispose()'];
    throws(a, `${op}(${arg} disposed)`, f, want);
  }
  const asyncs = [
    ['dataAsync', 'tensor', () => D.dataAsync()],
    ['toFloat32Async', 'tensor', () => D.toFloat32Async()],
    ['matmul', 'a', () => t.matmulAsync(D, WT)],
    ['attention', 'q', () => t.attentionAsync(D, K, KV)],
    ['qmatmul', 'x', () => t.qmatmulAsync(D, QW)],
    ['spmm', 'b', () => t.spmmAsync(SP, D)],
  ];
  for (const [op, arg, f] of asyncs) await rejects(a, `async ${op}(${arg} disposed)`, f, { op, code: 'E_DISPOSED', has: [arg, 'dispose()'] });
  a.equal(String(D), 'tensor(<disposed>, dtype=float32, shape=[2, 4])', 'toString of a disposed tensor does not throw');
  a.ok(D.disposed, 'disposed flag');
  a.doesNotThrow(() => D.dispose(), 'dispose twice is a no-op');
  a.deepEqual([D.shape, D.dtype], [[2, 4], 'float32'], 'shape and dtype stay readable after dispose');
  a.end();
});

test('detached buffers (transferred with structuredClone) give E_DETACHED', (a) => {
  const f32 = new Float32Array([1, 2, 3, 4]);
  const ab = f32.buffer;
  structuredClone(ab, { transfer: [ab] });
  a.equal(f32.length, 0, 'the transfer detached the array (the setup works)');
  const cases = [
    ['tensor(detached Float32Array)', () => t.tensor(f32), 'tensor', ['data', 'detached']],
    ['tensor(detached, { shape })', () => t.tensor(f32, { shape: [2, 2] }), 'tensor', ['detached']],
    ['tensor(detached Int32Array)', () => t.tensor(detachedCopy(new Int32Array([1, 2]))), 'tensor', ['Int32Array', 'detached']],
    ['tensor(detached subarray)', () => { const buf = new ArrayBuffer(16); const sub = new Float32Array(buf, 4, 2); structuredClone(buf, { transfer: [buf] }); return t.tensor(sub); }, 'tensor', ['detached']],
    ['fromTypedArray(detached float16 bits)', () => t.fromTypedArray(detachedCopy(new Uint16Array([0x3c00])), { dtype: 'float16' }), 'fromTypedArray', ['Uint16Array', 'detached']],
    ['fromTypedArray(detached int4 bytes)', () => t.fromTypedArray(detachedCopy(new Uint8Array([0x21])), { dtype: 'int4' }), 'fromTypedArray', ['detached']],
    ['sparse.csr(detached rowPtr)', () => t.sparse.csr(detachedCopy(new Int32Array([0, 1])), [0], [1], [1, 1]), 'sparse.csr', ['rowPtr', 'detached']],
    ['sparse.csr(detached colIdx)', () => t.sparse.csr([0, 1], detachedCopy(new Int32Array([0])), [1], [1, 1]), 'sparse.csr', ['colIdx', 'detached']],
    ['sparse.csr(detached values)', () => t.sparse.csr([0, 1], [0], detachedCopy(new Float32Array([1])), [1, 1]), 'sparse.csr', ['values', 'detached']],
    ['rope(positions detached)', () => t.rope(X, { positions: detachedCopy(new Float64Array([0, 1])) }), 'rope', ['options.positions', 'detached']],
    ['rope(invFreq detached)', () => t.rope(X, { invFreq: detachedCopy(new Float64Array([1, 0.5])) }), 'rope', ['options.invFreq', 'detached']],
  ];
  for (const [label, f, op, has] of cases) throws(a, label, f, { op, code: 'E_DETACHED', has });
  // an empty but attached array is not "detached"
  a.deepEqual(t.tensor(new Float32Array(0)).shape, [0], 'an empty (attached) Float32Array is a valid empty tensor');
  a.deepEqual(t.tensor(new Uint8Array(new ArrayBuffer(0))).shape, [0], 'so is a view of a zero-length ArrayBuffer');
  a.end();
});

// ---- backends ---------------------------------------------------------------------------------------

test('backends: unknown names and unavailable backends', (a) => {
  const before = t.getBackend();
  for (const [label, v, has] of [['wat', 'wat', ['"wat"', 'cuda, cpu, js']], ['CPU', 'CPU', ['"CPU"']], ['empty string', '', ['""']], ['a number', 42, ['42']], ['an object', {}, ['unknown backend']]]) {
    throws(a, `setBackend(${label})`, () => t.setBackend(v), { op: 'setBackend', code: 'E_BACKEND', has });
  }
  throws(a, 'setBackend(a Tensor)', () => t.setBackend(X), { op: 'setBackend', code: 'E_BACKEND', has: ['unknown backend'] });
  for (const b of t.backends().filter((x) => !x.available)) {
    throws(a, `setBackend('${b.name}') while unavailable`, () => t.setBackend(b.name), { op: 'setBackend', code: 'E_BACKEND', has: [`'${b.name}'`, 'unavailable', b.reason] });
  }
  a.equal(t.getBackend(), before, 'a failed setBackend leaves the backend unchanged');
  const cpu = t.backends().find((b) => b.name === 'cpu');
  if (!cpu.available) throws(a, 'setNumThreads without the cpu backend', () => t.setNumThreads(2), { op: 'setNumThreads', code: 'E_BACKEND', has: ['cpu'] });
  a.end();
});

test('setBackend(10n) is a TesseraError (registry.ts builds the message with JSON.stringify)', (a) => {
  throws(a, 'setBackend(10n)', () => t.setBackend(10n), { op: 'setBackend', code: 'E_BACKEND', has: ['10'] });
  throws(a, 'setBackend(Tensor) names it without dumping internals', () => t.setBackend(X), { op: 'setBackend', code: 'E_BACKEND', has: ['Tensor object'] });
  a.end();
});

// ---- NaN in the data is not an error ---------------------------------------------------------------

test('NaN in the data propagates, as in PyTorch (no error)', (a) => {
  const n = t.tensor([[1, NaN], [3, 4]]);
  const eye = t.tensor([[1, 0], [0, 1]]);
  const check = (label) => {
    let out = null;
    a.doesNotThrow(() => { out = t.matmul(n, eye); }, `${label}: matmul with a NaN input does not throw`);
    const v = out.toFloat64();
    a.ok(Number.isNaN(v[0]) && Number.isNaN(v[1]), `${label}: the row holding the NaN is NaN (NaN·0 = NaN)`);
    sameRow(a, [v[2], v[3]], [3, 4], `${label}: the other row is exact`);
  };
  check(`backend ${t.getBackend()}`);
  t.setBackend('js');
  try {
    check('backend js');
  } finally {
    restoreBackend();
  }
  const s = t.sum(n, { dim: 1 }).toFloat64();
  a.ok(Number.isNaN(s[0]) && s[1] === 7, 'sum: NaN row gives NaN, the other 7');
  const m = t.max(n, { dim: 1 }).toFloat64();
  a.ok(Number.isNaN(m[0]) && m[1] === 4, 'max propagates NaN');
  const sm = t.softmax(n).toFloat64();
  a.ok(Number.isNaN(sm[0]) && Number.isNaN(sm[1]) && Math.abs(sm[2] + sm[3] - 1) < 1e-6, 'softmax: NaN row is NaN, the other sums to 1');
  const ad = t.add(n, 1).toFloat64();
  a.ok(Number.isNaN(ad[1]) && ad[0] === 2, 'add propagates NaN elementwise');
  a.end();
});

function sameRow(a, got, want, msg) {
  a.ok(got.length === want.length && got.every((v, i) => v === want[i]), `${msg} (${got} vs ${want})`);
}

test('attention with a NaN in q propagates NaN on every backend', (a) => {
  // The native cpu flash-attention kernel returns zeros for a query row whose scores are NaN (it treats the
  // row as fully masked); the js reference and torch give NaN. Left as TODO until native/attention is fixed.
  const qv = new Float32Array(8).fill(1);
  qv[0] = NaN;
  const q = t.tensor(qv, { shape: [1, 1, 2, 4] });
  const kv = t.ones([1, 1, 2, 4]);
  for (const b of [ENV_BACKEND, 'js']) {
    t.setBackend(b);
    try {
      const o = t.attention(q, kv, kv).toFloat64();
      a.ok([0, 1, 2, 3].every((i) => Number.isNaN(o[i])) && [4, 5, 6, 7].every((i) => o[i] === 1), `backend ${t.lastRun('attention').backend}: row 0 NaN, row 1 ones`);
    } finally {
      restoreBackend();
    }
  }
  a.end();
});

// ---- after all of that, the library still works ----------------------------------------------------

test('after every bad input above, a normal op still works', (a) => {
  const x = t.tensor([[1, 2], [3, 4]]);
  const y = t.tensor([[5, 6], [7, 8]]);
  a.deepEqual(t.matmul(x, y).toArray(), [[19, 22], [43, 50]], 'matmul by hand');
  a.deepEqual(t.add(x, 1).toArray(), [[2, 3], [4, 5]], 'add');
  a.equal(t.getBackend(), DEFAULT_BACKEND, 'the backend is what it was at start-up');
  a.ok(X.toArray().flat().every((v) => v === 1), 'the shared fixtures were never modified');
  a.end();
});
