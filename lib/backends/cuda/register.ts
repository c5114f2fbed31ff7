/**
 * The 'cuda' backend: device storage through the CUDA addon (one stream, allocations per tensor) and the
 * kernels it has. Ops it lacks run through a host round trip (registry.dispatch), so every op works on
 * cuda tensors. Without a GPU, driver or built addon it reports unavailable with the reason.
 */
import { TesseraError } from '../../errors';
import { registerKernel, setBackendInfo } from '../../registry';
import { StorageBlock, registerDevice } from '../../storage';
import { Tensor } from '../../tensor';
import { CudaBinding, loadCudaBinding } from './native';

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
  registerKernel({
    op: 'add',
    backend: 'cuda',
    variant: 'add_f32_cuda',
    supports: (inputs: Tensor[], at: { outDtype: string; shape: number[] }) =>
      inputs.every((t) => t.dtype === 'float32' && t.isContiguous() && t.offset === 0 && t._s.numel === t.size) &&
      inputs[0].size === inputs[1].size && inputs[0].size === at.shape.reduce((a, b) => a * b, 1)
        ? true
        : 'add_f32_cuda takes same-shape contiguous float32 tensors',
    run(inputs: Tensor[], at: { shape: number[] }) {
      const n = inputs[0].size;
      const s = StorageBlock.device('cuda', 'float32', n, 'add');
      wrapOom('add', () => cb.addF32(inputs[0]._s.handle as never, inputs[1]._s.handle as never, s.handle as never, n));
      return new Tensor(s, at.shape);
    },
  });
}
