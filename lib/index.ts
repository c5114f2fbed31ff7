/**
 * tessera: tensors for Node.js. Public API (re-exports only) plus backend start-up: the js backend always
 * serves; the native cpu and cuda backends register when their addons load, and when the cpu addon cannot
 * load, one line says why (once) and how to get it. Nothing here throws at import.
 */
import { registerCpuBackend } from './backends/cpu/register';
import { registerCudaBackend } from './backends/cuda/register';
import './backends/js/register';
import './backends/js/register-lowp';
import { backends, setBackend, BackendName, BACKEND_ORDER } from './registry';

export { TesseraError } from './errors';
export type { ErrorCode } from './errors';
export { DTYPES } from './dtype';
export type { DType } from './dtype';
export { Tensor, isTensor } from './tensor';
export { memory } from './storage';
export type { Device } from './storage';
export { tensor, fromTypedArray, zeros, ones, full, zerosLike, onesLike, arange, randn, rand, randint, manualSeed } from './creation';
export type { CreateOptions, RandomOptions } from './creation';
export { backends, setBackend, getBackend, lastRun, OP_NAMES } from './registry';
export type { BackendInfo, BackendName, OpName, RunRecord } from './registry';
export * from './ops/elementwise';
export * from './ops/reduce';
export * from './ops/nn';
export * from './ops/linalg';
export { quantize, dequantize, qmatmul, qmatmulAsync, QuantizedTensor, isQuantized } from './ops/quant';
export type { QmatmulOptions } from './ops/quant';
export type { QuantizeOptions } from './ops/quant';
export { sparse, spmm, spmmAsync, SparseTensor } from './ops/sparse';
export type { SparseFormat } from './ops/sparse';
export { setNumThreads } from './threads';
export * from './models';
export { loadTokenizer, Tokenizer } from './io/tokenizer';
export { SafetensorsFile, Checkpoint, loadSafetensors, saveSafetensors } from './io/safetensors';
export * from './profile';

function safely(f: () => void): void {
  try {
    f();
  } catch {
    /* a broken addon must never break import; backends() reports it unavailable */
  }
}
safely(registerCpuBackend);
safely(registerCudaBackend);

const cpu = backends().find((b) => b.name === 'cpu')!;
if (!cpu.available && !process.env.TESSERA_QUIET && process.env.TESSERA_NO_NATIVE !== '1') {
  process.stderr.write(
    `tessera: native CPU backend unavailable (${cpu.reason}); using the pure-JS backend. ` +
      'Reinstall on linux-x64 to get the prebuilt addon, or build it with `npm rebuild tessera` (needs a C++ toolchain).\n',
  );
}

const envBackend = process.env.TESSERA_BACKEND;
if (envBackend) {
  if ((BACKEND_ORDER as readonly string[]).includes(envBackend)) {
    try {
      setBackend(envBackend as BackendName);
    } catch (e) {
      process.emitWarning(`TESSERA_BACKEND=${envBackend} ignored: ${(e as Error).message}`, { code: 'TESSERA_BACKEND' });
    }
  } else {
    process.emitWarning(`TESSERA_BACKEND=${envBackend} ignored: expected one of ${BACKEND_ORDER.join(', ')}`, { code: 'TESSERA_BACKEND' });
  }
}
