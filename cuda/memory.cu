// memory.cu: the caching device allocator, frees, and host/device copies on the backend stream.
//
// Caching allocator. cudaMalloc is slow (tens of us to ms) and cudaFree synchronizes the whole device, so
// a free from JS (dispose, or a GC finalizer) would stall the JS thread behind every queued kernel. Instead
// a freed block goes onto the free list of its size class and the next request of that class takes it:
//   size classes  requests round up to a multiple of 512 B up to 1 MiB; beyond that to a multiple of a
//                 quarter of the request's power of two (1.25, 1.5, 1.75, 2 MiB, 2.5 MiB ...), so rounding
//                 wastes at most 25% and the number of classes stays small. A block serves only its class
//                 (no splitting): simple and predictable, and tensor workloads repeat the same sizes.
//   reuse         stream-ordered: the backend has ONE stream and every kernel and copy is queued on it, so
//                 work queued after the free that reuses the block runs after the work that used it before.
//                 No event or sync is needed at free time. (A read still in flight on a freed block is a
//                 queued copy too, so it lands before any later kernel overwrites the block.)
//   out of memory on cudaMalloc failure: synchronize, cudaFree every cached block, retry once; then
//                 Code::oom, with the allocator's numbers in the message. The backend stays usable.
//   emptyCache    the same release on demand; peaks and counters are kept for allocatorStats().
// The allocator state is a heap object never destroyed: finalizers may return blocks during exit.
//
// Synchronous copies (h2d, d2h) go through cudaMemcpyAsync on the backend stream followed by a stream
// sync, not plain cudaMemcpy: cudaMemcpy runs on the legacy default stream, which does not order with
// the backend's non-blocking stream, so it could overtake a kernel still writing the source.
// The asynchronous read stages through pinned memory: a DMA into pinned memory needs no CPU thread, and
// the JS-owned destination is written only on the JS thread, after the wait, when it is known to be alive.
// Staging blocks are pooled: cudaFreeHost synchronizes the whole device, which would stall the JS thread
// behind every queued kernel. Blocks are powers of two from 64 KiB; up to 1 GiB of blocks of at most
// 256 MiB stay cached for the life of the process, larger or surplus ones are freed after use.
// Queued uploads (copy_h2d_queued) use the same pool; their blocks return to it when an event says the
// DMA has finished (checked without waiting at the next queued upload).
#include "memory.cuh"

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
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
  Status s = status_from_cuda(cudaMallocHost(&out->ptr, capacity), "pinned staging (cudaMallocHost)");
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

// ------------------------------------------------------------------------------------------ allocator

constexpr size_t kSmallLimit = size_t(1) << 20;
constexpr size_t kSmallStep = 512;

struct Allocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // size class -> idle blocks
  AllocatorStats st;
};

Allocator& allocator() {
  static Allocator* a = new Allocator();  // never destroyed (see the header)
  return *a;
}

void note_peaks(AllocatorStats& st) {
  st.reserved = st.allocated + st.cached;
  if (st.allocated > st.peak_allocated) st.peak_allocated = st.allocated;
  if (st.reserved > st.peak_reserved) st.peak_reserved = st.reserved;
}

// Frees every cached block; the caller holds a.mu and has synchronized the stream.
void release_cached(Allocator& a) {
  for (auto& entry : a.free_lists) {
    for (void* p : entry.second) {
      cudaFree(p);
      a.st.device_frees++;
      a.st.cached -= entry.first;
      a.st.cached_blocks--;
    }
  }
  a.free_lists.clear();
  cudaGetLastError();
  note_peaks(a.st);
}

std::string oom_text(size_t bytes, size_t cls, const AllocatorStats& st) {
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  cudaGetLastError();
  const auto mib = [](size_t b) { return std::to_string(b >> 20) + " MiB"; };
  return "CUDA out of memory: tried to allocate " + std::to_string(bytes) + " bytes (size class " +
         std::to_string(cls) + "); device " + mib(free_b) + " free of " + mib(total_b) + "; tessera holds " +
         mib(st.allocated) + " in live tensors and released its cache before failing";
}

// ------------------------------------------------------------------------------------------ queued uploads

struct InFlight {
  PinnedBlock block;
  cudaEvent_t done;
};

struct UploadQueue {
  std::mutex mu;
  std::vector<InFlight> pending;
};

UploadQueue& upload_queue() {
  static UploadQueue* q = new UploadQueue();
  return *q;
}

// Returns the staging blocks of finished uploads to the pinned pool; never waits.
void reclaim_uploads() {
  UploadQueue& q = upload_queue();
  std::lock_guard<std::mutex> lock(q.mu);
  for (size_t i = 0; i < q.pending.size();) {
    if (cudaEventQuery(q.pending[i].done) == cudaSuccess) {
      pinned_release(q.pending[i].block);
      cudaEventDestroy(q.pending[i].done);
      q.pending[i] = q.pending.back();
      q.pending.pop_back();
    } else {
      ++i;
    }
  }
  cudaGetLastError();  // cudaErrorNotReady is not an error here
}

}  // namespace

size_t allocator_round(size_t bytes) {
  if (bytes <= kSmallLimit) return (bytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  size_t top = size_t(1) << 63;
  while (!(bytes & top)) top >>= 1;  // highest set bit
  const size_t step = top >> 2;
  if (bytes > SIZE_MAX - step) return 0;  // caller reports it as out of memory
  return (bytes + step - 1) / step * step;
}

AllocatorStats allocator_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.st;
}

void allocator_reset_peaks() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.st.peak_allocated = a.st.allocated;
  a.st.peak_reserved = a.st.reserved;
}

Status allocator_empty_cache() {
  Status s = device_ready();
  if (!s.ok()) return s;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  // Cached blocks may still be read or written by queued work that ran before their free.
  s = status_from_cuda(cudaStreamSynchronize(device_stream()), "emptyCache (synchronize)");
  release_cached(a);
  return s;
}

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
  dst->capacity = 0;
  dst->freed = false;
  if (bytes == 0) return status_ok();  // empty tensors own no device memory
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  const size_t cls = allocator_round(bytes);
  auto it = cls == 0 ? a.free_lists.end() : a.free_lists.find(cls);
  if (it != a.free_lists.end() && !it->second.empty()) {
    dst->ptr = it->second.back();
    it->second.pop_back();
    a.st.cached -= cls;
    a.st.cached_blocks--;
    a.st.cache_hits++;
  } else {
    cudaError_t err = cls == 0 ? cudaErrorMemoryAllocation : cudaMalloc(&dst->ptr, cls);
    if (err == cudaErrorMemoryAllocation && cls != 0 && a.st.cached > 0) {
      cudaGetLastError();
      a.st.oom_retries++;
      cudaStreamSynchronize(device_stream());
      release_cached(a);
      err = cudaMalloc(&dst->ptr, cls);
    }
    if (err != cudaSuccess) {
      dst->ptr = nullptr;
      dst->freed = true;
      cudaGetLastError();
      if (err == cudaErrorMemoryAllocation) {
        a.st.ooms++;
        return status_error(Code::oom, oom_text(bytes, cls, a.st));
      }
      return status_from_cuda(err, "cudaMalloc");
    }
    a.st.device_mallocs++;
  }
  dst->capacity = cls;
  a.st.allocated += cls;
  a.st.requested += bytes;
  a.st.live_buffers++;
  a.st.alloc_calls++;
  note_peaks(a.st);
  return status_ok();
}

Status buffer_free(DeviceBuffer* buf) {
  if (buf->freed) return status_error(Code::freed, "free: buffer was already freed");
  void* ptr = buf->ptr;
  buf->ptr = nullptr;
  buf->freed = true;  // set first: this buffer is never freed again
  if (ptr == nullptr) return status_ok();
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.free_lists[buf->capacity].push_back(ptr);
  a.st.allocated -= buf->capacity;
  a.st.requested -= buf->bytes;
  a.st.live_buffers--;
  a.st.cached += buf->capacity;
  a.st.cached_blocks++;
  note_peaks(a.st);
  return status_ok();
}

Status copy_h2d_queued(DeviceBuffer* dst, size_t dst_offset, const void* src, size_t bytes) {
  Status s = buffer_check(*dst, dst_offset, bytes, "upload");
  if (!s.ok() || bytes == 0) return s;
  s = device_ready();
  if (!s.ok()) return s;
  reclaim_uploads();
  InFlight f{{nullptr, 0}, nullptr};
  s = pinned_acquire(bytes, &f.block);
  if (!s.ok()) return s;
  std::memcpy(f.block.ptr, src, bytes);
  s = status_from_cuda(cudaEventCreateWithFlags(&f.done, cudaEventDisableTiming), "upload (event)");
  if (s.ok()) {
    s = status_from_cuda(cudaMemcpyAsync(static_cast<char*>(dst->ptr) + dst_offset, f.block.ptr, bytes,
                                         cudaMemcpyHostToDevice, device_stream()),
                         "upload");
  }
  if (s.ok()) s = status_from_cuda(cudaEventRecord(f.done, device_stream()), "upload (record)");
  if (!s.ok()) {
    // Nothing may still read the block only if the copy was never queued; after a failed record the
    // stream is broken anyway, so wait for it before handing the block back.
    cudaStreamSynchronize(device_stream());
    if (f.done != nullptr) cudaEventDestroy(f.done);
    pinned_release(f.block);
    cudaGetLastError();
    return s;
  }
  UploadQueue& q = upload_queue();
  std::lock_guard<std::mutex> lock(q.mu);
  q.pending.push_back(f);
  return status_ok();
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
