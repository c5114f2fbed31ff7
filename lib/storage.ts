/**
 * Storage: the memory behind one or more tensors (views share it). Host storage is a typed array in the
 * dtype's storage format (see dtype.ts); device storage is an opaque handle owned by a device table
 * (ggml-backend style: alloc / free / upload / download). Storage is reference counted by the tensors
 * that view it: dispose() drops one reference, the last one frees device memory at once. A
 * FinalizationRegistry is the backstop for tensors nobody disposed.
 */
import { DType, Storage as HostArray, allocStorage, storageBytes } from './dtype';
import { TesseraError } from './errors';

export type Device = 'cpu' | 'cuda';
export const DEVICES: readonly Device[] = ['cpu', 'cuda'];

/** What a non-host device provides. Handles are opaque to everything but the device's own table. */
export interface DeviceTable {
  name: Device;
  alloc(bytes: number): unknown;
  free(handle: unknown): void;
  upload(handle: unknown, src: HostArray): void;
  download(handle: unknown, dst: HostArray): void;
  downloadAsync(handle: unknown, dst: HostArray): Promise<void>;
  copy(dst: unknown, src: unknown, bytes: number): void;
  /**
   * dst view := src view (same shape, any strides and element offsets, src converted to dst's dtype),
   * queued on the device; false when the device has no kernel for these dtypes (callers go through the host).
   */
  copyView?(dst: DeviceView, src: DeviceView): boolean;
}

/** A strided view of device storage as copyView() takes it (offset and strides in elements). */
export interface DeviceView {
  handle: unknown;
  dtype: DType;
  offset: number;
  shape: readonly number[];
  strides: readonly number[];
}

const deviceTables = new Map<Device, DeviceTable>();
export function registerDevice(t: DeviceTable): void {
  deviceTables.set(t.name, t);
}
export function deviceTable(d: Device, op: string): DeviceTable {
  const t = deviceTables.get(d);
  if (!t) throw new TesseraError('E_DEVICE', op, `device '${d}' is not available (see backends())`);
  return t;
}

/**
 * Called with the host array of a cpu storage freed by its last dispose (set by the cpu backend): an array
 * from the native output pool goes back to the pool at once (its ArrayBuffer detached), not at the next
 * garbage collection, so a loop that disposes what it is done with reuses warm memory.
 */
let hostRecycler: ((host: HostArray) => void) | null = null;
export function setHostRecycler(f: ((host: HostArray) => void) | null): void {
  hostRecycler = f;
}

interface Counters { tensors: number; storages: number; bytes: number }
const counters: Record<Device, Counters> = {
  cpu: { tensors: 0, storages: 0, bytes: 0 },
  cuda: { tensors: 0, storages: 0, bytes: 0 },
};

export class StorageBlock {
  readonly device: Device;
  readonly dtype: DType;
  /** storage elements' logical count (tensor elements, not bytes; packed dtypes hold 2 per byte) */
  readonly numel: number;
  readonly bytes: number;
  host: HostArray | null;
  handle: unknown;
  refs = 0;
  freed = false;
  /** Bumped by every in-place write (Tensor.copy_, KV cache appends): caches derived from the contents key on it. */
  version = 0;

  constructor(device: Device, dtype: DType, numel: number, host: HostArray | null, handle: unknown) {
    this.device = device;
    this.dtype = dtype;
    this.numel = numel;
    this.bytes = storageBytes(dtype, numel);
    this.host = host;
    this.handle = handle;
    const c = counters[device];
    c.storages++;
    c.bytes += this.bytes;
  }

  static host(dtype: DType, numel: number, data?: HostArray): StorageBlock {
    return new StorageBlock('cpu', dtype, numel, data ?? allocStorage(dtype, numel), null);
  }

  static device(device: Device, dtype: DType, numel: number, op: string): StorageBlock {
    if (device === 'cpu') return StorageBlock.host(dtype, numel);
    const t = deviceTable(device, op);
    const handle = t.alloc(Math.max(1, storageBytes(dtype, numel)));
    return new StorageBlock(device, dtype, numel, null, handle);
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs > 0 || this.freed) return;
    this.freed = true;
    const c = counters[this.device];
    c.storages--;
    c.bytes -= this.bytes;
    if (this.device !== 'cpu' && this.handle !== null) {
      const t = deviceTables.get(this.device);
      try {
        t?.free(this.handle);
      } catch {
        /* freeing must never throw from a finalizer or dispose */
      }
      this.handle = null;
    }
    if (this.host && hostRecycler) {
      try {
        hostRecycler(this.host);
      } catch {
        /* recycling is an optimization: the garbage collector returns the block otherwise */
      }
    }
    this.host = null;
  }
}

export function countTensor(device: Device, delta: number): void {
  counters[device].tensors += delta;
}

/** Live tensors and bytes per device (bytes count each storage once, however many views share it). */
export function memory(): Record<Device, { tensors: number; bytes: number; storages: number }> {
  return {
    cpu: { ...counters.cpu },
    cuda: { ...counters.cuda },
  };
}

/** True when a typed array's ArrayBuffer has been detached (transferred away). */
export function isDetached(a: ArrayBufferView): boolean {
  if (a.byteLength !== 0) return false;
  const ab = a.buffer as ArrayBuffer;
  if (ab.byteLength !== 0) return false;
  try {
    new Uint8Array(ab);
    return false;
  } catch {
    return true;
  }
}
