/**
 * The 'cuda' backend: device storage through the CUDA addon (one stream, a caching allocator) and the
 * kernels it has (ops.ts). Ops it lacks, or inputs a kernel's supports() refuses, run through a host round
 * trip (registry.dispatch), so every op works on cuda tensors. Without a GPU, driver or built addon it
 * reports unavailable with the reason.
 */
import { TesseraError } from '../../errors';
import { setBackendInfo } from '../../registry';
import { registerDevice } from '../../storage';
import { CudaBinding, loadCudaBinding } from './native';
import { registerCudaOps } from './ops';
import { registerCudaAttention } from './attention';

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
  });
  registerCudaOps(cb);
  registerCudaAttention(cb);
}
