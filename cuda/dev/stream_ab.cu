// stream_ab.cu: how fast can a split-KV decode grid stream a KV cache, with no attention math? A standalone
// probe (nvcc -O3 -arch=sm_90a -o stream_ab cuda/dev/stream_ab.cu; ./stream_ab) for cuda/dev/NOTES.md:
// it reads the K and V of B1 Hkv8 Sk32768 D128 bf16 (134 MB) with the decode kernel's grid (one CTA per
// (kv head, split), 128 threads) through shared-memory stage rings filled three ways, and a plain
// vectorized read as the reference:
//   cpasync: 16-byte cp.async per thread into rows padded to 272 bytes (what attn_mma_kernel does);
//   bulkrow: cp.async.bulk per 256-byte row into padded rows, completion on an mbarrier per stage;
//   bulktile: one cp.async.bulk per K and V tile (contiguous, unpadded), mbarrier per stage.
// Each landed stage is touched (one 16-byte read per thread) before the CTA barrier frees it. Times: CUDA
// events around each launch (median of 100, as the attention benchmark) and around 100 back-to-back launches.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#define CK(x)                                                                        \
  do {                                                                               \
    cudaError_t e_ = (x);                                                            \
    if (e_ != cudaSuccess) {                                                         \
      std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));        \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

constexpr int kRowBytes = 256;  // D128 bf16

__device__ __forceinline__ uint32_t su32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void mbar_init(uint32_t b, int n) { asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(b), "r"(n)); }
__device__ __forceinline__ void mbar_expect(uint32_t b, int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t b, int parity) {
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(b), "r"(parity)
        : "memory");
  }
}
__device__ __forceinline__ void bulk(uint32_t dst, const void* src, int bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst), "l"(src),
               "r"(bytes), "r"(bar)
               : "memory");
}

// kMode 0 cpasync, 1 bulkrow, 2 bulktile
template <int kMode, int kKeys, int kStages>
__global__ void __launch_bounds__(128) stream_kernel(const uint8_t* K, const uint8_t* V, int Sk, int keys_per_cta, int* sink) {
  constexpr int kStride = kMode == 2 ? kRowBytes : kRowBytes + 16;
  constexpr int kTileBytes = kKeys * kStride;
  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ __align__(8) uint64_t bars[kStages];
  const int tid = threadIdx.x;
  const int64_t col = blockIdx.y;
  const int k0 = blockIdx.z * keys_per_cta, k1 = min(Sk, k0 + keys_per_cta);
  const int n_tiles = (k1 - k0) / kKeys;
  const uint8_t* kg = K + (col * Sk + k0) * kRowBytes;
  const uint8_t* vg = V + (col * Sk + k0) * kRowBytes;
  const uint32_t sK = su32(smem), sV = sK + kStages * kTileBytes;
  if (kMode != 0 && tid == 0) {
    for (int s = 0; s < kStages; ++s) mbar_init(su32(&bars[s]), 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  auto issue = [&](int t) {
    const int st = t % kStages;
    const uint8_t* ks = kg + int64_t(t) * kKeys * kRowBytes;
    const uint8_t* vs = vg + int64_t(t) * kKeys * kRowBytes;
    if (kMode == 0) {
      for (int c = tid; c < kKeys * 16; c += 128) {
        const int r = c / 16, o = (c % 16) * 16;
        const uint32_t d = st * kTileBytes + r * kStride + o;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sK + d), "l"(ks + r * kRowBytes + o) : "memory");
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sV + d), "l"(vs + r * kRowBytes + o) : "memory");
      }
      asm volatile("cp.async.commit_group;" ::: "memory");
    } else if (kMode == 1) {
      const uint32_t bar = su32(&bars[st]);
      if (tid == 0) mbar_expect(bar, 2 * kKeys * kRowBytes);
      __syncwarp();
      if (tid < 32)
        for (int r = tid; r < kKeys; r += 32) {
          bulk(sK + st * kTileBytes + r * kStride, ks + r * kRowBytes, kRowBytes, bar);
          bulk(sV + st * kTileBytes + r * kStride, vs + r * kRowBytes, kRowBytes, bar);
        }
    } else if (tid == 0) {
      const uint32_t bar = su32(&bars[st]);
      mbar_expect(bar, 2 * kKeys * kRowBytes);
      bulk(sK + st * kTileBytes, ks, kKeys * kRowBytes, bar);
      bulk(sV + st * kTileBytes, vs, kKeys * kRowBytes, bar);
    }
  };
  for (int t = 0; t < kStages - 1; ++t)
    if (t < n_tiles || kMode == 0) {
      if (t < n_tiles) issue(t);
      else asm volatile("cp.async.commit_group;" ::: "memory");
    }
  int acc = 0;
  for (int t = 0; t < n_tiles; ++t) {
    if (t + kStages - 1 < n_tiles) issue(t + kStages - 1);
    else if (kMode == 0) asm volatile("cp.async.commit_group;" ::: "memory");
    const int st = t % kStages;
    if (kMode == 0) {
      asm volatile("cp.async.wait_group %0;" ::"n"(kStages - 1) : "memory");
    } else {
      mbar_wait(su32(&bars[st]), (t / kStages) & 1);
    }
    __syncthreads();
    const int4 x = *reinterpret_cast<const int4*>(smem + st * kTileBytes + (tid % kKeys) * kStride + (tid / kKeys) * 16);
    const int4 y = *reinterpret_cast<const int4*>(smem + kStages * kTileBytes + st * kTileBytes + (tid % kKeys) * kStride);
    acc ^= x.x ^ x.w ^ y.y;
    __syncthreads();
  }
  if (acc == 0x7fffffff) sink[0] = acc;
}

__global__ void read_kernel(const int4* p, int64_t n, int* sink) {
  int acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x * 4) {
    int4 a[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t j = i + int64_t(u) * gridDim.x * blockDim.x;
      a[u] = j < n ? __ldcs(p + j) : make_int4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) acc ^= a[u].x ^ a[u].w;
  }
  if (acc == 0x7fffffff) sink[0] = acc;
}

template <typename F>
void time_it(const char* name, double bytes, F launch) {
  for (int i = 0; i < 5; ++i) launch();
  CK(cudaDeviceSynchronize());
  const int n = 100;
  std::vector<cudaEvent_t> ev(2 * n);
  for (auto& e : ev) CK(cudaEventCreate(&e));
  for (int i = 0; i < n; ++i) {
    cudaEventRecord(ev[2 * i]);
    launch();
    cudaEventRecord(ev[2 * i + 1]);
  }
  CK(cudaDeviceSynchronize());
  std::vector<float> ms(n);
  for (int i = 0; i < n; ++i) cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]);
  std::sort(ms.begin(), ms.end());
  cudaEventRecord(ev[0]);
  for (int i = 0; i < n; ++i) launch();
  cudaEventRecord(ev[1]);
  CK(cudaDeviceSynchronize());
  float loop = 0;
  cudaEventElapsedTime(&loop, ev[0], ev[1]);
  loop /= n;
  for (auto& e : ev) cudaEventDestroy(e);
  std::printf("%-34s per-launch %6.1f us %5.0f GB/s | back-to-back %6.1f us %5.0f GB/s\n", name, ms[n / 2] * 1e3,
              bytes / (ms[n / 2] * 1e-3) / 1e9, loop * 1e3, bytes / (loop * 1e-3) / 1e9);
}

template <int kMode, int kKeys, int kStages>
void run(const char* name, const uint8_t* K, const uint8_t* V, int cols, int Sk, int* sink, int sms) {
  constexpr int kStride = kMode == 2 ? kRowBytes : kRowBytes + 16;
  const int smem = 2 * kStages * kKeys * kStride;
  auto kern = stream_kernel<kMode, kKeys, kStages>;
  CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  int occ = 0;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kern, 128, smem));
  const int splits = std::max(1, sms * occ / cols);
  const int kpc = ((Sk + splits - 1) / splits + kKeys - 1) / kKeys * kKeys;
  const int nz = (Sk + kpc - 1) / kpc;
  char label[96];
  std::snprintf(label, sizeof label, "%s k%d s%d %dKB %d/SM %d CTAs", name, kKeys, kStages, smem / 1024, occ, cols * nz);
  time_it(label, 2.0 * cols * Sk * kRowBytes, [&] { kern<<<dim3(1, cols, nz), 128, smem>>>(K, V, Sk, kpc, sink); });
}

int main() {
  const int cols = 8, Sk = 32768;
  const size_t bytes = size_t(cols) * Sk * kRowBytes;
  uint8_t* K;  // V follows K in one allocation, so the plain read is one kernel over both
  int* sink;
  CK(cudaMalloc(&K, 2 * bytes));
  CK(cudaMalloc(&sink, 4));
  CK(cudaMemset(K, 1, 2 * bytes));
  const uint8_t* V = K + bytes;
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs; K+V %.1f MB\n", prop.name, sms, 2.0 * bytes / 1e6);
  for (int g : {1, 2, 4, 8}) {
    char label[64];
    std::snprintf(label, sizeof label, "plain read, %d CTAs/SM x 256", g);
    time_it(label, 2.0 * bytes, [&] {
      read_kernel<<<sms * g, 256>>>(reinterpret_cast<const int4*>(K), int64_t(2 * bytes / 16), sink);
    });
  }
  run<0, 64, 3>("cpasync", K, V, cols, Sk, sink, sms);
  run<0, 64, 6>("cpasync", K, V, cols, Sk, sink, sms);
  run<0, 128, 2>("cpasync", K, V, cols, Sk, sink, sms);
  run<1, 64, 3>("bulkrow", K, V, cols, Sk, sink, sms);
  run<1, 64, 6>("bulkrow", K, V, cols, Sk, sink, sms);
  run<2, 64, 3>("bulktile", K, V, cols, Sk, sink, sms);
  run<2, 64, 4>("bulktile", K, V, cols, Sk, sink, sms);
  run<2, 64, 6>("bulktile", K, V, cols, Sk, sink, sms);
  run<2, 32, 6>("bulktile", K, V, cols, Sk, sink, sms);
  run<2, 128, 2>("bulktile", K, V, cols, Sk, sink, sms);
  run<2, 128, 3>("bulktile", K, V, cols, Sk, sink, sms);
  CK(cudaDeviceSynchronize());
  return 0;
}
