/** Native thread count for the cpu backend (default: hardware concurrency, or env TESSERA_NUM_THREADS). */
import { loadCpuBinding } from './backends/cpu/binding';
import { TesseraError } from './errors';
import { checkInt } from './validate';

export function setNumThreads(n: number): void {
  checkInt(n, 'setNumThreads', 'n', 1, 1024);
  const { binding, reason } = loadCpuBinding();
  if (!binding) throw new TesseraError('E_BACKEND', 'setNumThreads', `the cpu backend is unavailable: ${reason}`);
  binding.setNumThreads(n);
}
