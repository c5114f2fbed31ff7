/**
 * KV cache: per layer, keys and values preallocated as [1, Hkv, maxLen, D] (the SDPA layout attention()
 * reads), float32. A forward step writes its S new rows at positions length .. length + S - 1 of every
 * layer in place, then advance(S). Attention reads the view [1, Hkv, length + S, D]; that view is strided
 * (each head's rows are maxLen apart), so the kernels gather it into a contiguous block per call: a copy
 * of 2 x layers x Hkv x length x D floats per token, small next to the weights a decode step reads.
 *
 * On a device (a model loaded with backend 'cuda') the cache lives in device memory, in the dtype the
 * decoder's attention runs in (float32, or the half dtype of the weights when the flash kernel takes the
 * shape), and write() is one device copy_ per tensor into the cache's slice: no host round trip.
 */
import { TesseraError } from '../errors';
import { DType, castStorage, storageBytes } from '../dtype';
import { hostStorage } from '../backends/host';
import { zeros } from '../creation';
import { Device } from '../storage';
import { Tensor } from '../tensor';

export interface KVShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
}

/** Where the cache lives and in which dtype (default: host memory, float32). */
export interface KVCacheOptions {
  device?: Device;
  dtype?: DType;
}

export class KVCache {
  readonly maxLen: number;
  readonly device: Device;
  readonly dtype: DType;
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** tokens already cached (the position of the next token) */
  length = 0;
  private readonly k: Tensor[];
  private readonly v: Tensor[];
  private disposed = false;

  constructor(shape: KVShape, maxLen: number, options: KVCacheOptions = {}) {
    if (!Number.isInteger(maxLen) || maxLen < 1) throw new TesseraError('E_ARG', 'KVCache', `maxLen must be a positive integer, got ${maxLen}`);
    this.maxLen = maxLen;
    this.numLayers = shape.numLayers;
    this.numKvHeads = shape.numKvHeads;
    this.headDim = shape.headDim;
    this.device = options.device ?? 'cpu';
    this.dtype = this.device === 'cpu' ? 'float32' : options.dtype ?? 'float32';
    const dims = [1, shape.numKvHeads, maxLen, shape.headDim];
    const make = () => zeros(dims, { dtype: this.dtype, device: this.device });
    this.k = Array.from({ length: shape.numLayers }, make);
    this.v = Array.from({ length: shape.numLayers }, make);
  }

  /** Bytes held by the cache. */
  get bytes(): number {
    return 2 * this.numLayers * storageBytes(this.dtype, this.numKvHeads * this.maxLen * this.headDim);
  }

  private check(op: string): void {
    if (this.disposed) throw new TesseraError('E_DISPOSED', op, 'the KV cache was disposed');
  }

  /** Room for S more tokens? */
  fits(S: number): boolean {
    return this.length + S <= this.maxLen;
  }

  /** Writes k, v [1, Hkv, S, D] of layer at positions length .. length + S - 1 (no advance). */
  write(layer: number, k: Tensor, v: Tensor): void {
    this.check('KVCache.write');
    const S = k.shape[2];
    if (!this.fits(S)) {
      throw new TesseraError('E_ARG', 'KVCache.write', `cache holds ${this.length} of ${this.maxLen} tokens; ${S} more do not fit`);
    }
    const D = this.headDim;
    for (const [src, dst] of [[k, this.k[layer]], [v, this.v[layer]]] as const) {
      if (src.ndim !== 4 || src.shape[1] !== this.numKvHeads || src.shape[3] !== D) {
        throw new TesseraError('E_SHAPE', 'KVCache.write', `expected [1, ${this.numKvHeads}, S, ${D}], got [${src.shape.join(', ')}]`);
      }
      if (this.device !== 'cpu') {
        // rows length .. length + S - 1 of every head: one strided device copy (converting to the cache dtype)
        const rows = dst.slice(2, this.length, this.length + S);
        try {
          rows.copy_(src);
        } finally {
          rows.dispose();
        }
        continue;
      }
      let data = hostStorage(src);
      if (src.dtype !== 'float32') data = castStorage(src.dtype, 'float32', data, src.size);
      const out = dst._s.host as Float32Array;
      dst._s.version++;
      for (let h = 0; h < this.numKvHeads; h++) {
        out.set((data as Float32Array).subarray(h * S * D, (h + 1) * S * D), (h * this.maxLen + this.length) * D);
      }
    }
  }

  /** Keys and values of layer for the first len positions, as views [1, Hkv, len, D] (dispose them). */
  view(layer: number, len: number): { k: Tensor; v: Tensor } {
    this.check('KVCache.view');
    return { k: this.k[layer].slice(2, 0, len), v: this.v[layer].slice(2, 0, len) };
  }

  advance(S: number): void {
    this.length += S;
  }

  /** Forget everything (keeps the memory). */
  reset(): void {
    this.length = 0;
  }

  /** Keep only the first n positions (e.g. to reuse a shared prompt prefix). */
  truncate(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.length) throw new TesseraError('E_ARG', 'KVCache.truncate', `n must be an integer in [0, ${this.length}], got ${n}`);
    this.length = n;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
