/**
 * The 'cuda' backend: device storage through the CUDA addon (one stream, a caching allocator) and the
 * kernels it has (ops.ts). Ops it lacks, or inputs a kernel's supports() refuses, run through a host round
 * trip (registry.dispatch), so every op works on cuda tensors. Without a GPU, driver or built addon it
 * reports unavailable with the reason.
 */
import { TesseraError } from '../../errors';
import { setBackendInfo } from '../../registry';
import { DeviceView, registerDevice } from '../../storage';
import { CudaBinding, CudaBuffer, loadCudaBinding } from './native';
import { CUDA_DTYPE, registerCudaOps } from './ops';
import { registerCudaAttention } from './attention';
import { createCudaEventTimer } from './timer';
import { setDeviceTimer } from '../../profile/profiler';

function wrapOom<T>(op: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const msg = (e as Error).message;
    if (/out of memory/i.test(msg)) throw new TesseraError('E_OOM', op, msg);
    throw new TesseraError('E_NATIVE', op, msg);
  }
}

export function registerCudaBackend(): void {
  const { binding, reason } = loadCudaBinding();
  if (!binding) {
    setBackendInfo({ name: 'cuda', device: 'cuda', available: false, reason, detail: {} });
    return;
  }
  const cb: CudaBinding = binding;
  const info = cb.deviceInfo();
  setBackendInfo({ name: 'cuda', device: 'cuda', available: true, reason: '', detail: { ...(info.devices[0] ?? {}) } });
  registerDevice({
    name: 'cuda',
    alloc: (bytes) => wrapOom('alloc', () => cb.malloc(bytes)),
    free: (h) => cb.free(h as never),
    upload: (h, src) => wrapOom('upload', () => cb.memcpyHtoD(h as never, 0, src)),
    download: (h, dst) => wrapOom('download', () => cb.memcpyDtoH(dst, h as never, 0)),
    downloadAsync: async (h, dst) => {
      await cb.memcpyDtoHAsync(dst, h as never, 0);
    },
    copy: (dst, src, bytes) => wrapOom('copy', () => cb.memcpyDtoD(dst as never, 0, src as never, 0, bytes)),
    copyView: (dst, src) => {
      const dd = CUDA_DTYPE[dst.dtype];
      const sd = CUDA_DTYPE[src.dtype];
      if (dd === undefined || sd === undefined || dst.shape.length > 8) return false;
      // copyStrided converts between float dtypes; other pairs are bit copies of one dtype
      if (dd !== sd && !(dd <= 2 && sd <= 2)) return false;
      const ref = (v: DeviceView, dt: number) => ({ h: v.handle as CudaBuffer, dt, off: v.offset, shape: v.shape, strides: v.strides });
      wrapOom('copy_', () => cb.copyStrided(ref(dst, dd), ref(src, sd)));
      return true;
    },
  });
  registerCudaOps(cb);
  registerCudaAttention(cb);
  // profile() times cuda kernels with CUDA events on the stream when the addon has them (timer.ts)
  const timer = createCudaEventTimer(cb);
  if (timer) setDeviceTimer('cuda', timer);
}
