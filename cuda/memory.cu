// memory.cu: device allocation, frees, and host/device copies on the backend stream.
//
// Synchronous copies (h2d, d2h) go through cudaMemcpyAsync on the backend stream followed by a stream
// sync, not plain cudaMemcpy: cudaMemcpy runs on the legacy default stream, which does not order with
// the backend's non-blocking stream, so it could overtake a kernel still writing the source.
// The asynchronous read stages through pinned memory: a DMA into pinned memory needs no CPU thread, and
// the JS-owned destination is written only on the JS thread, after the wait, when it is known to be alive.
// Staging blocks are pooled: cudaFreeHost synchronizes the whole device, which would stall the JS thread
// behind every queued kernel. Blocks are powers of two from 64 KiB; up to 1 GiB of blocks of at most
// 256 MiB stay cached for the life of the process, larger or surplus ones are freed after use.
#include "memory.cuh"

#include <mutex>
#include <string>
#include <vector>

namespace tessera_cuda {

namespace {

constexpr size_t kPinnedMin = size_t(64) << 10;
constexpr size_t kPinnedMaxCached = size_t(256) << 20;
constexpr size_t kPinnedCacheLimit = size_t(1) << 30;

struct PinnedBlock {
  void* ptr;
  size_t capacity;
};

struct PinnedPool {
  std::mutex mu;
  std::vector<PinnedBlock> idle;
  size_t idle_bytes = 0;
};

PinnedPool& pinned_pool() {
  static PinnedPool* pool = new PinnedPool();  // never destroyed: blocks may be returned during exit
  return *pool;
}

Status pinned_acquire(size_t bytes, PinnedBlock* out) {
  size_t capacity = kPinnedMin;
  while (capacity < bytes) capacity *= 2;
  PinnedPool& pool = pinned_pool();
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    for (size_t i = 0; i < pool.idle.size(); ++i) {
      if (pool.idle[i].capacity == capacity) {
        *out = pool.idle[i];
        pool.idle[i] = pool.idle.back();
        pool.idle.pop_back();
        pool.idle_bytes -= capacity;
        return status_ok();
      }
    }
  }
  out->ptr = nullptr;
  out->capacity = capacity;
  Status s = status_from_cuda(cudaMallocHost(&out->ptr, capacity), "memcpyDtoHAsync (pinned staging)");
  if (!s.ok()) out->ptr = nullptr;
  return s;
}

void pinned_release(PinnedBlock block) {
  PinnedPool& pool = pinned_pool();
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    if (block.capacity <= kPinnedMaxCached && pool.idle_bytes + block.capacity <= kPinnedCacheLimit) {
      pool.idle.push_back(block);
      pool.idle_bytes += block.capacity;
      return;
    }
  }
  cudaFreeHost(block.ptr);
}

std::string range_text(const char* what, size_t offset, size_t bytes, size_t size) {
  return std::string(what) + ": offset " + std::to_string(offset) + " + " + std::to_string(bytes) +
         " bytes exceeds the " + std::to_string(size) + "-byte buffer";
}

const char* byte_ptr(const DeviceBuffer& buf, size_t offset) {
  return static_cast<const char*>(buf.ptr) + offset;
}

}  // namespace

Status buffer_check(const DeviceBuffer& buf, size_t offset, size_t bytes, const char* what) {
  if (buf.freed) return status_error(Code::freed, std::string(what) + ": buffer was freed");
  if (offset > buf.bytes || bytes > buf.bytes - offset) {
    return status_error(Code::arg, range_text(what, offset, bytes, buf.bytes));
  }
  return status_ok();
}

Status buffer_alloc(DeviceBuffer* dst, size_t bytes) {
  Status s = device_ready();
  if (!s.ok()) return s;
  dst->ptr = nullptr;
  dst->bytes = bytes;
  dst->freed = false;
  if (bytes == 0) return status_ok();  // empty tensors own no device memory
  cudaError_t err = cudaMalloc(&dst->ptr, bytes);
  if (err != cudaSuccess) {
    dst->ptr = nullptr;
    dst->freed = true;
    if (err == cudaErrorMemoryAllocation) {
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      cudaGetLastError();
      return status_error(Code::oom, "CUDA out of memory: tried to allocate " + std::to_string(bytes) +
                                         " bytes; " + std::to_string(free_b) + " of " +
                                         std::to_string(total_b) + " bytes free");
    }
    return status_from_cuda(err, "cudaMalloc");
  }
  return status_ok();
}

Status buffer_free(DeviceBuffer* buf) {
  if (buf->freed) return status_error(Code::freed, "free: buffer was already freed");
  void* ptr = buf->ptr;
  buf->ptr = nullptr;
  buf->freed = true;  // set first: whatever cudaFree says, this buffer is never freed again
  if (ptr == nullptr) return status_ok();
  return status_from_cuda(cudaFree(ptr), "cudaFree");
}

Status copy_h2d(DeviceBuffer* dst, size_t dst_offset, const void* src, size_t bytes) {
  Status s = buffer_check(*dst, dst_offset, bytes, "memcpyHtoD");
  if (!s.ok() || bytes == 0) return s;
  s = device_ready();
  if (!s.ok()) return s;
  s = status_from_cuda(cudaMemcpyAsync(static_cast<char*>(dst->ptr) + dst_offset, src, bytes,
                                       cudaMemcpyHostToDevice, device_stream()),
                       "memcpyHtoD");
  if (!s.ok()) return s;
  return status_from_cuda(cudaStreamSynchronize(device_stream()), "memcpyHtoD (synchronize)");
}

Status copy_d2h(void* dst, const DeviceBuffer& src, size_t src_offset, size_t bytes) {
  Status s = buffer_check(src, src_offset, bytes, "memcpyDtoH");
  if (!s.ok() || bytes == 0) return s;
  s = device_ready();
  if (!s.ok()) return s;
  s = status_from_cuda(
      cudaMemcpyAsync(dst, byte_ptr(src, src_offset), bytes, cudaMemcpyDeviceToHost, device_stream()),
      "memcpyDtoH");
  if (!s.ok()) return s;
  return status_from_cuda(cudaStreamSynchronize(device_stream()), "memcpyDtoH (synchronize)");
}

Status copy_d2d(DeviceBuffer* dst, size_t dst_offset, const DeviceBuffer& src, size_t src_offset,
                size_t bytes) {
  Status s = buffer_check(*dst, dst_offset, bytes, "memcpyDtoD (destination)");
  if (!s.ok()) return s;
  s = buffer_check(src, src_offset, bytes, "memcpyDtoD (source)");
  if (!s.ok() || bytes == 0) return s;
  if (dst == &src && dst_offset < src_offset + bytes && src_offset < dst_offset + bytes) {
    return status_error(Code::arg, "memcpyDtoD: source and destination ranges overlap");
  }
  s = device_ready();
  if (!s.ok()) return s;
  return status_from_cuda(cudaMemcpyAsync(static_cast<char*>(dst->ptr) + dst_offset, byte_ptr(src, src_offset),
                                          bytes, cudaMemcpyDeviceToDevice, device_stream()),
                          "memcpyDtoD");
}

Status read_begin(PendingRead* dst, const DeviceBuffer& src, size_t src_offset, size_t bytes) {
  *dst = PendingRead{};
  Status s = buffer_check(src, src_offset, bytes, "memcpyDtoHAsync");
  if (!s.ok()) return s;
  s = device_ready();
  if (!s.ok()) return s;
  dst->bytes = bytes;
  // BlockingSync: the waiting pool thread sleeps instead of spinning on a CPU core.
  s = status_from_cuda(cudaEventCreateWithFlags(&dst->done, cudaEventBlockingSync | cudaEventDisableTiming),
                       "memcpyDtoHAsync (event)");
  if (s.ok() && bytes > 0) {
    PinnedBlock block{nullptr, 0};
    s = pinned_acquire(bytes, &block);
    dst->staging = block.ptr;
    dst->capacity = block.capacity;
    if (s.ok()) {
      s = status_from_cuda(cudaMemcpyAsync(dst->staging, byte_ptr(src, src_offset), bytes,
                                           cudaMemcpyDeviceToHost, device_stream()),
                           "memcpyDtoHAsync");
    }
  }
  if (s.ok()) s = status_from_cuda(cudaEventRecord(dst->done, device_stream()), "memcpyDtoHAsync (record)");
  if (!s.ok()) read_end(dst);
  return s;
}

Status read_wait(const PendingRead& pending) {
  return status_from_cuda(cudaEventSynchronize(pending.done), "memcpyDtoHAsync (wait)");
}

void read_end(PendingRead* pending) {
  if (pending->staging != nullptr) pinned_release({pending->staging, pending->capacity});
  if (pending->done != nullptr) cudaEventDestroy(pending->done);
  *pending = PendingRead{};
}

Status mem_info(size_t* free_bytes, size_t* total_bytes) {
  Status s = device_ready();
  if (!s.ok()) return s;
  return status_from_cuda(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}

Status synchronize() {
  Status s = device_ready();
  if (!s.ok()) return s;
  return status_from_cuda(cudaStreamSynchronize(device_stream()), "synchronize");
}

}  // namespace tessera_cuda
