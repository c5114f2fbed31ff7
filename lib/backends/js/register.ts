/** Registers the reference kernels as the 'js' backend: every op, every dtype (computed in float64). */
import { DType } from '../../dtype';
import { OpName, registerKernel } from '../../registry';
import { Tensor } from '../../tensor';
import { fromOut, toArr } from '../host';
import * as js from './index';
import { Arr, Out } from './types';

type Attrs = { outDtype: DType } & Record<string, any>;

function reg(op: OpName, f: (xs: Arr[], a: Attrs) => Out): void {
  registerKernel({
    op,
    backend: 'js',
    variant: `${op}_js_f64`,
    run: (inputs: Tensor[], attrs: Attrs) => fromOut(f(inputs.map(toArr), attrs), attrs.outDtype),
  });
}

for (const op of ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'] as const) {
  reg(op, ([a, b]) => js.binary(op, a, b));
}
for (const op of ['neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'gelu_tanh', 'square'] as const) {
  reg(op, ([a]) => js.unary(op, a));
}
reg('where', ([c, a, b]) => js.where(c, a, b));
for (const op of ['sum', 'mean', 'max', 'min'] as const) {
  reg(op, ([a], at) => js.reduce(op, a, at.dims, at.keepdim));
}
reg('argmax', ([a], at) => js.argmax(a, at.dim, at.keepdim));
reg('argmin', ([a], at) => js.argmin(a, at.dim, at.keepdim));
reg('softmax', ([a], at) => js.softmax(a, at.dim));
reg('logSoftmax', ([a], at) => js.logSoftmax(a, at.dim));
reg('cumsum', ([a], at) => js.cumsum(a, at.dim));
registerKernel({
  op: 'topk',
  backend: 'js',
  run: (inputs: Tensor[], at: Attrs) => {
    const r = js.topk(toArr(inputs[0]), at.k, at.dim, at.largest);
    return [fromOut(r.values, at.outDtype), fromOut(r.indices, 'int32')];
  },
});
reg('rmsNorm', ([x, w], at) => js.rmsNorm(x, at.hasWeight ? w : null, at.eps));
reg('layerNorm', (xs, at) => {
  let i = 1;
  const w = at.hasWeight ? xs[i++] : null;
  const b = at.hasBias ? xs[i++] : null;
  return js.layerNorm(xs[0], w, b, at.eps);
});
reg('embedding', ([ids, table]) => js.embedding(ids, table));
reg('cat', (xs, at) => js.cat(xs, at.dim));
reg('tril', ([a], at) => js.tril(a, at.diagonal));
reg('triu', ([a], at) => js.triu(a, at.diagonal));
reg('rope', ([x], at) => js.rope(x, { positions: at.positions, invFreq: at.invFreq, rotaryDim: at.rotaryDim, interleaved: at.interleaved }));
reg('matmul', ([a, b]) => js.matmul(a, b));
reg('linear', ([x, w, b]) => js.linear(x, w, b ?? null));
reg('attention', ([q, k, v, m], at) => js.attention(q, k, v, { causal: at.causal, scale: at.scale, kvOffset: at.kvOffset, mask: m ?? null }));
