// memory.cuh: device buffers (from a caching allocator) and the copies between them and host memory.
//
// A DeviceBuffer records its size so that every copy and kernel can be bounds-checked here, on the CUDA
// side, whatever the caller validated. All copies are queued on the backend stream (device.cuh).
// Allocation goes through the caching allocator in memory.cu: a freed block returns to a per-size-class
// free list (no cudaFree, so no device-wide sync) and the next request of its class reuses it.
#pragma once

#include <cstddef>

#include "device.cuh"

namespace tessera_cuda {

struct DeviceBuffer {
  void* ptr = nullptr;  // null for a 0-byte buffer, and after free
  size_t bytes = 0;     // as requested: every bounds check uses this
  size_t capacity = 0;  // the allocator's size class (>= bytes); 0 for a 0-byte buffer
  bool freed = false;
};

// Checks that buf is live and [offset, offset + bytes) lies inside it, without overflow.
Status buffer_check(const DeviceBuffer& buf, size_t offset, size_t bytes, const char* what);

// Takes a cached block of bytes' size class, else cudaMalloc; on cudaMalloc failure empties the cache and
// retries once, then returns Code::oom ("CUDA out of memory: ...").
Status buffer_alloc(DeviceBuffer* dst, size_t bytes);
// Frees once; a second call returns Code::freed. The block goes back to the cache at once, without waiting
// for the device: every later use of it is queued on the one stream after the work that used it before.
// Never blocks, so it is safe from a GC finalizer.
Status buffer_free(DeviceBuffer* buf);

// The allocator's counters, in bytes of size classes (what the device holds for us).
struct AllocatorStats {
  size_t allocated = 0;       // in live buffers
  size_t cached = 0;          // in free lists, ready for reuse
  size_t reserved = 0;        // allocated + cached: what cudaMalloc gave us and we still hold
  size_t peak_allocated = 0;
  size_t peak_reserved = 0;
  size_t requested = 0;       // bytes asked for by live buffers (allocated minus rounding)
  size_t live_buffers = 0;
  size_t cached_blocks = 0;
  size_t alloc_calls = 0;     // buffer_alloc calls that got memory
  size_t cache_hits = 0;      // of those, served from the cache
  size_t device_mallocs = 0;  // cudaMalloc calls that succeeded
  size_t device_frees = 0;    // cudaFree calls (emptyCache, OOM retry)
  size_t oom_retries = 0;     // cudaMalloc failures that emptied the cache and tried again
  size_t ooms = 0;            // requests that failed even after that
};
AllocatorStats allocator_stats();
// The size class a request of `bytes` is served from (see memory.cu).
size_t allocator_round(size_t bytes);
// Waits for the stream, then cudaFrees every cached block; live buffers are untouched.
Status allocator_empty_cache();
// Clears the peak counters to the current values.
void allocator_reset_peaks();

// Host -> device without a wait: src is copied into pinned staging memory on the calling thread, then a
// DMA is queued on the stream; the staging block is reclaimed once an event says the DMA is done. For the
// small per-call tables kernels need (rope's positions), so that launching them never stalls the JS thread.
Status copy_h2d_queued(DeviceBuffer* dst, size_t dst_offset, const void* src, size_t bytes);

// Host -> device; returns when the copy is complete (after all work queued before it). Not queued
// without a wait: from pageable memory CUDA promises no point at which the source may be reused.
Status copy_h2d(DeviceBuffer* dst, size_t dst_offset, const void* src, size_t bytes);
// Device -> host; returns when the bytes are in dst (after all work queued before it).
Status copy_d2h(void* dst, const DeviceBuffer& src, size_t src_offset, size_t bytes);
// Device -> device, in stream order; overlapping ranges of one buffer are rejected.
Status copy_d2d(DeviceBuffer* dst, size_t dst_offset, const DeviceBuffer& src, size_t src_offset,
                size_t bytes);

// A device -> host copy in two halves, so that the wait can happen off the JS thread:
// read_begin (JS thread) queues the copy into pinned staging memory, in stream order with everything
// queued before it; read_wait (any thread) blocks, sleeping, until it lands; the caller then copies
// `staging` into its own memory and calls read_end (any thread; always, also after an error).
struct PendingRead {
  void* staging = nullptr;  // pinned host memory, at least `bytes` long
  size_t bytes = 0;
  size_t capacity = 0;      // of `staging`, for the pinned pool
  cudaEvent_t done = nullptr;
};
Status read_begin(PendingRead* dst, const DeviceBuffer& src, size_t src_offset, size_t bytes);
Status read_wait(const PendingRead& pending);
void read_end(PendingRead* pending);

Status mem_info(size_t* free_bytes, size_t* total_bytes);
// Waits for all work queued on the backend stream; reports errors of earlier kernels.
Status synchronize();

}  // namespace tessera_cuda
