/**
 * The kernel registry: kernels keyed by (op, backend), op names declared once (OP_NAMES), backends
 * tried in priority order cuda > cpu > js with per-op fallback when a backend lacks an op or dtype.
 * A backend is a small record (name, device, availability and why); its kernels say what they support.
 */
import { TesseraError, describe } from './errors';
import { Device } from './storage';
import { Tensor, toDevice } from './tensor';

export const OP_NAMES = [
  // elementwise
  'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'where',
  'neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu',
  'gelu_tanh', 'square',
  // reductions and normalizations
  'sum', 'mean', 'max', 'min', 'argmax', 'argmin', 'softmax', 'logSoftmax', 'cumsum', 'topk',
  'rmsNorm', 'layerNorm',
  // indexing and layout
  'embedding', 'cat', 'tril', 'triu', 'rope',
  // linear algebra, attention, low precision, sparse
  'matmul', 'linear', 'attention', 'quantize', 'dequantize', 'qmatmul', 'sparseFromDense', 'sparseToDense', 'spmm',
] as const;
export type OpName = (typeof OP_NAMES)[number];

export type BackendName = 'cuda' | 'cpu' | 'js';
export const BACKEND_ORDER: readonly BackendName[] = ['cuda', 'cpu', 'js'];

export interface BackendInfo {
  name: BackendName;
  device: Device;
  available: boolean;
  /** why it is unavailable ('' when available) */
  reason: string;
  /** free-form facts: simd level, threads, GPU name ... */
  detail: Record<string, unknown>;
}

/** Inputs are live tensors on the backend's device; attrs are validated by the op layer. */
export interface Kernel {
  op: OpName;
  backend: BackendName;
  /** true, or a reason this kernel cannot take these inputs (dtype, shape) so dispatch falls through */
  supports?(inputs: Tensor[], attrs: any): true | string;
  run(inputs: Tensor[], attrs: any): Tensor | Tensor[];
  /** off-main-thread form; absent means run() is wrapped in a resolved promise */
  runAsync?(inputs: Tensor[], attrs: any): Promise<Tensor | Tensor[]>;
  /** kernel variant name reported by lastRun() (e.g. 'gemm_f32_avx2') */
  variant?: string | ((inputs: Tensor[], attrs: any) => string);
}

const backendInfo = new Map<BackendName, BackendInfo>([
  ['js', { name: 'js', device: 'cpu', available: true, reason: '', detail: {} }],
  ['cpu', { name: 'cpu', device: 'cpu', available: false, reason: 'not loaded', detail: {} }],
  ['cuda', { name: 'cuda', device: 'cuda', available: false, reason: 'not loaded', detail: {} }],
]);
const kernels = new Map<string, Kernel>();
let forced: BackendName | null = null;

export function setBackendInfo(info: BackendInfo): void {
  backendInfo.set(info.name, info);
}
export function registerKernel(k: Kernel): void {
  if (!(OP_NAMES as readonly string[]).includes(k.op)) throw new Error(`registerKernel: unknown op '${k.op}'`);
  kernels.set(`${k.op}/${k.backend}`, k);
}
export function getKernel(op: OpName, backend: BackendName): Kernel | undefined {
  return kernels.get(`${op}/${backend}`);
}
export function hasKernel(op: OpName, backend: BackendName): boolean {
  return kernels.has(`${op}/${backend}`);
}

/** Every backend with available true/false and why. */
export function backends(): BackendInfo[] {
  return BACKEND_ORDER.map((n) => {
    const b = backendInfo.get(n)!;
    return { ...b, detail: { ...b.detail } };
  });
}

/** Force dispatch to start at this backend (falling back down the order per op); null restores the default. */
export function setBackend(name: BackendName | null): void {
  if (name === null) {
    forced = null;
    return;
  }
  const b = backendInfo.get(name as BackendName);
  if (!b) throw new TesseraError('E_BACKEND', 'setBackend', `unknown backend ${typeof name === 'string' ? JSON.stringify(name) : describe(name)}; expected one of ${BACKEND_ORDER.join(', ')}`);
  if (!b.available) throw new TesseraError('E_BACKEND', 'setBackend', `backend '${name}' is unavailable: ${b.reason}`);
  forced = name as BackendName;
}
export function getBackend(): BackendName {
  if (forced) return forced;
  return BACKEND_ORDER.find((n) => backendInfo.get(n)!.available && backendInfo.get(n)!.device === 'cpu')!;
}

export interface RunRecord { op: OpName; backend: BackendName; variant: string }
const lastRuns = new Map<OpName, RunRecord>();
/** Which backend (and kernel variant) served the last call of op. */
export function lastRun(op: OpName): RunRecord | undefined {
  return lastRuns.get(op);
}

/** Run hook for the profiler: called around each kernel when set. */
export type RunHook = (rec: RunRecord, inputs: Tensor[], attrs: unknown, run: () => unknown) => unknown;
let hook: RunHook | null = null;
export function setRunHook(h: RunHook | null): void {
  hook = h;
}

function candidates(device: Device): BackendName[] {
  const start = forced ? BACKEND_ORDER.indexOf(forced) : 0;
  return BACKEND_ORDER.slice(start).filter((n) => {
    const b = backendInfo.get(n)!;
    return b.available && b.device === device;
  });
}

function pick(op: OpName, inputs: Tensor[], attrs: unknown, device: Device): Kernel | null {
  for (const name of candidates(device)) {
    const k = kernels.get(`${op}/${name}`);
    if (k && (!k.supports || k.supports(inputs, attrs) === true)) return k;
  }
  return null;
}

function commonDevice(op: OpName, inputs: Tensor[]): Device {
  const d = inputs.length ? inputs[0].device : 'cpu';
  for (let i = 1; i < inputs.length; i++) {
    if (inputs[i].device !== d) {
      throw new TesseraError('E_DEVICE', op, `all tensors must be on one device; input 0 is on ${d}, input ${i} on ${inputs[i].device}`);
    }
  }
  return d;
}

function record(op: OpName, k: Kernel, inputs: Tensor[], attrs: unknown): RunRecord {
  const variant = typeof k.variant === 'function' ? k.variant(inputs, attrs) : k.variant ?? `${op}_${k.backend}`;
  const rec = { op, backend: k.backend, variant };
  lastRuns.set(op, rec);
  return rec;
}

/**
 * Runs op on the first backend (in priority order, on the inputs' device) whose kernel takes these inputs.
 * Device tensors whose backend lacks the op take a host round trip (documented per op in the README).
 */
export function dispatch(op: OpName, inputs: Tensor[], attrs: unknown = {}): Tensor | Tensor[] {
  const device = commonDevice(op, inputs);
  const k = pick(op, inputs, attrs, device);
  if (k) {
    const rec = record(op, k, inputs, attrs);
    return hook ? (hook(rec, inputs, attrs, () => k.run(inputs, attrs)) as Tensor | Tensor[]) : k.run(inputs, attrs);
  }
  if (device !== 'cpu') return hostRoundTrip(op, inputs, attrs, device, (i) => dispatch(op, i, attrs));
  throw new TesseraError('E_BACKEND', op, `no backend can run this op for inputs ${inputs.map((t) => `${t.dtype}[${t.shape.join(', ')}]`).join(', ')}`);
}

export async function dispatchAsync(op: OpName, inputs: Tensor[], attrs: unknown = {}): Promise<Tensor | Tensor[]> {
  const device = commonDevice(op, inputs);
  const k = pick(op, inputs, attrs, device);
  if (k) {
    const rec = record(op, k, inputs, attrs);
    const run = () => (k.runAsync ? k.runAsync(inputs, attrs) : k.run(inputs, attrs));
    // The inputs' storage stays held until the kernel settles: a dispose() meanwhile frees it (and returns
    // a pooled host block for reuse) only once no worker thread can still be reading it.
    const held = inputs.map((t) => t._s);
    for (const s of held) s.retain();
    try {
      // the hook returns run()'s promise wrapped (it stamps the end when the promise settles): await it
      return hook ? ((await hook(rec, inputs, attrs, run)) as Tensor | Tensor[]) : await run();
    } finally {
      for (const s of held) s.release();
    }
  }
  if (device !== 'cpu') return hostRoundTrip(op, inputs, attrs, device, (i) => dispatch(op, i, attrs));
  return dispatch(op, inputs, attrs);
}

function hostRoundTrip(op: OpName, inputs: Tensor[], _attrs: unknown, device: Device, f: (i: Tensor[]) => Tensor | Tensor[]): Tensor | Tensor[] {
  const host = inputs.map((t) => t.to('cpu'));
  try {
    const out = f(host);
    const back = (t: Tensor) => toDevice(t, device, op);
    return Array.isArray(out) ? out.map(back) : back(out);
  } finally {
    host.forEach((t) => t.dispose());
  }
}
