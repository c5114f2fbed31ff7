/**
 * The profiler: a run hook on the registry (registry.setRunHook) that times every kernel call and keeps
 * one raw record per call while at least one session is open. When no session is open the hook is null,
 * so dispatch pays one null check and nothing else.
 *
 * Timing, per call:
 *  - host kernels: process.hrtime.bigint() right before and after the kernel's run(); for async kernels
 *    (dispatchAsync) the second stamp is taken when the awaited promise settles, so the interval includes
 *    the time the result waits for the event loop to pick it up.
 *  - device kernels (a backend whose tensors live off the host, e.g. cuda): with a DeviceTimer registered
 *    for the backend (setDeviceTimer), markers are recorded around the launch and resolved into device
 *    time when the session stops; without one, the device is synchronized before and after the call and
 *    the interval is timed on the host ('host-sync'), which includes launch and sync latency.
 * The cost (FLOPs, bytes) is computed from the recorded shapes when the session stops, not per call.
 */
import { TesseraError } from '../errors';
import { BackendName, OpName, RunRecord, setRunHook } from '../registry';
import { Device } from '../storage';
import { Tensor } from '../tensor';
import { loadCudaBinding } from '../backends/cuda/native';
import { TensorMeta } from './cost';

/**
 * Event-based device timing a device backend can supply (CUDA: cudaEventRecord / cudaEventElapsedTime).
 * mark() is called right before a kernel launch and right after it returns (after its promise settles for
 * async kernels); elapsedNs() is called only when the session stops and may block until the later marker
 * has completed on the device. Device times are placed on the host timeline through an anchor marker,
 * recorded (after synchronize(), when given) together with a host timestamp at the first device call.
 */
export interface DeviceTimer {
  /** records a marker on the backend's stream and returns its handle */
  mark(): unknown;
  /** optional start marker, recorded when the op queues its first device work rather than at the call */
  markStart?(): unknown;
  /** nanoseconds between two markers from mark(), a before b */
  elapsedNs(a: unknown, b: unknown): number;
  /** waits for all queued device work; makes the anchor exact */
  synchronize?(): void;
  /** frees markers once the session has read them */
  release?(marks: unknown[]): void;
}

export type Timing = 'host' | 'host-sync' | 'device';

/** @internal what the hook keeps per call (a class: one hidden class, cheap to allocate); turned into a
 * ProfileRecord when the session stops */
export class RawRecord {
  constructor(
    readonly op: OpName,
    readonly backend: BackendName,
    readonly variant: string,
    readonly device: Device,
    readonly async: boolean,
    readonly inputs: TensorMeta[],
    readonly outputs: TensorMeta[],
    readonly attrs: unknown,
    readonly t0: bigint,
    readonly t1: bigint,
    readonly timing: Timing,
    readonly timer: DeviceTimer | undefined,
    readonly anchor: Anchor | undefined,
    readonly m0: unknown,
    readonly m1: unknown,
  ) {}
}

interface Anchor {
  mark: unknown;
  hostNs: bigint;
}

/** @internal */
export class Session {
  readonly origin = process.hrtime.bigint();
  readonly startedAt = new Date();
  readonly raws: RawRecord[] = [];
  open = true;
}

const sessions: Session[] = [];
const timers = new Map<BackendName, DeviceTimer>();
const anchors = new Map<DeviceTimer, Anchor>();
let installed = false;

/** Registers (or with null removes) event-based device timing for a backend's kernels. */
export function setDeviceTimer(backend: BackendName, timer: DeviceTimer | null): void {
  if (timer) timers.set(backend, timer);
  else timers.delete(backend);
}

/** @internal the DeviceTimer registered for a backend, if any (tests: is cuda event-timed here?) */
export function getDeviceTimer(backend: BackendName): DeviceTimer | undefined {
  return timers.get(backend);
}

let cudaSync: (() => void) | null | undefined;
function deviceSync(device: Device): void {
  if (device !== 'cuda') return;
  if (cudaSync === undefined) {
    const { binding } = loadCudaBinding();
    cudaSync = binding ? () => binding.synchronize() : null;
  }
  cudaSync?.();
}

function anchorFor(timer: DeviceTimer): Anchor {
  let a = anchors.get(timer);
  if (!a) {
    timer.synchronize?.();
    a = { mark: timer.mark(), hostNs: process.hrtime.bigint() };
    anchors.set(timer, a);
  }
  return a;
}

// Tensor shapes are frozen arrays, so records keep them by reference instead of copying.
function meta(ts: Tensor[]): TensorMeta[] {
  const out = new Array<TensorMeta>(ts.length);
  for (let i = 0; i < ts.length; i++) out[i] = { shape: ts[i].shape, dtype: ts[i].dtype };
  return out;
}

function outMeta(out: unknown): TensorMeta[] {
  if (out instanceof Tensor) return [{ shape: out.shape, dtype: out.dtype }];
  if (Array.isArray(out)) return meta(out.filter((t): t is Tensor => t instanceof Tensor));
  return [];
}

function push(r: RawRecord): void {
  for (let i = 0; i < sessions.length; i++) sessions[i].raws.push(r);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

/** The registry's run hook. Host kernels on the common path: two clock reads, the input metadata, a push. */
function runHook(rec: RunRecord, inputs: Tensor[], attrs: unknown, run: () => unknown): unknown {
  const device: Device = inputs.length ? inputs[0].device : 'cpu';
  const timer = timers.size ? timers.get(rec.backend) : undefined;
  const ins = meta(inputs);
  if (timer === undefined && device === 'cpu') {
    const t0 = process.hrtime.bigint();
    const out = run();
    if (!isThenable(out)) {
      const t1 = process.hrtime.bigint();
      push(new RawRecord(rec.op, rec.backend, rec.variant, device, false, ins, outMeta(out), attrs, t0, t1, 'host', undefined, undefined, undefined, undefined));
      return out;
    }
    return Promise.resolve(out).then((res) => {
      const t1 = process.hrtime.bigint();
      push(new RawRecord(rec.op, rec.backend, rec.variant, device, true, ins, outMeta(res), attrs, t0, t1, 'host', undefined, undefined, undefined, undefined));
      return res;
    });
  }
  // device kernels: event markers around the launch, or a device sync on both sides
  let anchor: Anchor | undefined;
  let m0: unknown;
  if (timer) {
    anchor = anchorFor(timer);
    m0 = timer.markStart ? timer.markStart() : timer.mark();
  } else deviceSync(device);
  const timing: Timing = timer ? 'device' : 'host-sync';
  const t0 = process.hrtime.bigint();
  const out = run();
  const finish = (res: unknown, async: boolean): void => {
    const m1 = timer ? timer.mark() : undefined;
    if (!timer) deviceSync(device);
    const t1 = process.hrtime.bigint();
    push(new RawRecord(rec.op, rec.backend, rec.variant, device, async, ins, outMeta(res), attrs, t0, t1, timing, timer, anchor, m0, m1));
  };
  if (isThenable(out)) {
    return Promise.resolve(out).then((res) => {
      finish(res, true);
      return res;
    });
  }
  finish(out, false);
  return out;
}

function sync(): void {
  const want = sessions.length > 0;
  if (want === installed) return;
  installed = want;
  setRunHook(want ? runHook : null);
  if (!want) anchors.clear();
}

/** @internal opens a session (the hook is installed while any is open) */
export function openSession(): Session {
  const s = new Session();
  sessions.push(s);
  sync();
  return s;
}

/** @internal closes a session; its raw records are final afterwards */
export function closeSession(s: Session): void {
  const i = sessions.indexOf(s);
  if (i >= 0) sessions.splice(i, 1);
  s.open = false;
  sync();
}

/** @internal the innermost open session, for stopProfiling() */
export function lastSession(op: string): Session {
  const s = sessions[sessions.length - 1];
  if (!s) throw new TesseraError('E_ARG', op, 'profiling is not active (call startProfiling() first)');
  return s;
}

/** True while any profiling session is open (the registry's run hook is installed exactly then). */
export function isProfiling(): boolean {
  return installed;
}

/**
 * Runs f with the run hook removed (calibration must not profile itself), then puts it back if a
 * session is still open.
 */
export function withoutHook<T>(f: () => T): T {
  if (!installed) return f();
  setRunHook(null);
  try {
    return f();
  } finally {
    setRunHook(sessions.length ? runHook : null);
  }
}

/** Device interval of a record timed with a DeviceTimer, in ns on the host clock (absolute, bigint). */
export function resolveDeviceTime(r: RawRecord): { start: bigint; end: bigint } | null {
  if (!r.timer || !r.anchor) return null;
  const a = r.timer.elapsedNs(r.anchor.mark, r.m0);
  const b = r.timer.elapsedNs(r.anchor.mark, r.m1);
  if (!Number.isFinite(a) || !Number.isFinite(b)) return null;
  return { start: r.anchor.hostNs + BigInt(Math.round(a)), end: r.anchor.hostNs + BigInt(Math.round(Math.max(a, b))) };
}

/** Hands device markers back to their timers once no open session can still need them. */
export function releaseMarks(raws: RawRecord[]): void {
  const byTimer = new Map<DeviceTimer, Set<unknown>>();
  for (const r of raws) {
    if (!r.timer?.release) continue;
    let set = byTimer.get(r.timer);
    if (!set) byTimer.set(r.timer, (set = new Set()));
    set.add(r.m0).add(r.m1).add(r.anchor?.mark);
  }
  for (const [timer, marks] of byTimer) {
    marks.delete(undefined);
    try {
      timer.release!([...marks]);
    } catch {
      /* a timer that fails to free its markers must not lose the report */
    }
  }
}
