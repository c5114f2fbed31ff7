/**
 * Pure-JS reference backend: simple float64 kernels over contiguous row-major arrays. The fallback
 * backend and the oracle every native/CUDA kernel is tested against. Re-exports only.
 */
export * from './types';
export * from './elementwise';
export * from './reduce';
export * from './norm';
export * from './indexing';
export * from './rope';
export * from './matmul';
export * from './attention';
