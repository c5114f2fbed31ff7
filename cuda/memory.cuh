// memory.cuh: device buffers and the copies between them and host memory.
//
// A DeviceBuffer records its size so that every copy and kernel can be bounds-checked here, on the CUDA
// side, whatever the caller validated. All copies are queued on the backend stream (device.cuh).
#pragma once

#include <cstddef>

#include "device.cuh"

namespace tessera_cuda {

struct DeviceBuffer {
  void* ptr = nullptr;  // null for a 0-byte buffer, and after free
  size_t bytes = 0;
  bool freed = false;
};

// Checks that buf is live and [offset, offset + bytes) lies inside it, without overflow.
Status buffer_check(const DeviceBuffer& buf, size_t offset, size_t bytes, const char* what);

Status buffer_alloc(DeviceBuffer* dst, size_t bytes);
// Frees once; a second call returns Code::freed. cudaFree waits for queued work on the device.
Status buffer_free(DeviceBuffer* buf);

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
