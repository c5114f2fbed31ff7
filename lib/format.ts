/**
 * PyTorch-style printing: tensor([[ 1.0000, -2.5000], ...], dtype=float16). Tensors with more than
 * 1000 elements are elided to the first and last 3 entries of each dim. Floats share one format chosen
 * from the printed values (fixed with 4 decimals, or scientific when the range is extreme).
 */
import { DType, dtypeInfo } from './dtype';

const THRESHOLD = 1000;
const EDGE = 3;

export function formatTensor(vals: Float64Array, shape: readonly number[], dtype: DType, device: string): string {
  const info = dtypeInfo(dtype);
  const elide = vals.length > THRESHOLD;
  const strides: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= shape[i];
  }
  // collect the printed values to choose one number format
  const shown: number[] = [];
  const visit = (d: number, off: number) => {
    if (d === shape.length) return void shown.push(vals[off]);
    for (const i of indices(shape[d], elide)) visit(d + 1, off + i * strides[d]);
  };
  if (vals.length > 0) visit(0, 0);
  const fmt = chooseFormat(shown, info.isFloat, dtype === 'bool');
  const width = Math.max(1, ...shown.map((v) => fmt(v).length));
  const render = (d: number, off: number, indent: string): string => {
    if (d === shape.length) return fmt(vals[off]).padStart(width);
    const parts: string[] = [];
    const idx = indices(shape[d], elide);
    for (let k = 0; k < idx.length; k++) {
      if (elide && k === EDGE && shape[d] > 2 * EDGE) parts.push('...');
      parts.push(render(d + 1, off + idx[k] * strides[d], indent + ' '));
    }
    const sep = d === shape.length - 1 ? ', ' : ',' + '\n'.repeat(shape.length - d - 1) + indent + ' ';
    return '[' + parts.join(sep) + ']';
  };
  const body = vals.length === 0 ? '[]' : render(0, 0, '       ');
  const extras: string[] = [];
  if (vals.length === 0 || shape.length > 0 && vals.length === 0) extras.push(`size=[${shape.join(', ')}]`);
  if (dtype !== 'float32' && dtype !== 'int32' && dtype !== 'bool') extras.push(`dtype=${dtype}`);
  if (device !== 'cpu') extras.push(`device='${device}'`);
  return `tensor(${body}${extras.length ? ', ' + extras.join(', ') : ''})`;
}

function indices(n: number, elide: boolean): number[] {
  const out: number[] = [];
  if (elide && n > 2 * EDGE) {
    for (let i = 0; i < EDGE; i++) out.push(i);
    for (let i = n - EDGE; i < n; i++) out.push(i);
  } else for (let i = 0; i < n; i++) out.push(i);
  return out;
}

function chooseFormat(vals: number[], isFloat: boolean, isBool: boolean): (v: number) => string {
  if (isBool) return (v) => (v !== 0 ? 'True' : 'False');
  if (!isFloat) return (v) => String(v);
  const finite = vals.filter((v) => Number.isFinite(v));
  const special = (v: number) => (Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf');
  if (finite.every((v) => Number.isInteger(v)) && finite.every((v) => Math.abs(v) < 1e8)) {
    return (v) => (Number.isFinite(v) ? v.toFixed(0) + '.' : special(v));
  }
  const nz = finite.filter((v) => v !== 0).map(Math.abs);
  const max = nz.length ? Math.max(...nz) : 0;
  const min = nz.length ? Math.min(...nz) : 0;
  const sci = max >= 1e8 || (min > 0 && min < 1e-4) || (min > 0 && max / min > 1e3 && max >= 1e3);
  // torch prints exponents with at least two digits (1.0000e-05); JS gives 1.0000e-5
  const exp = (v: number) => v.toExponential(4).replace(/e([+-])(\d)$/, 'e$10$2');
  return (v) => (!Number.isFinite(v) ? special(v) : sci ? exp(v) : v.toFixed(4));
}
