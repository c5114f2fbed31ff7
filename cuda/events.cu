// events.cu: the event pool behind eventRecord / eventElapsedNs / eventRelease (see events.cuh).
//
// The pool is a heap object never destroyed: finalizers of forgotten handles may return events during exit.
// Releasing an event that may still be pending on the stream is fine: the next cudaEventRecord on it
// simply re-captures it, and nothing reads the old capture after release.
#include "events.cuh"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

namespace tessera_cuda {

namespace {

struct EventPool {
  std::mutex mu;
  std::vector<cudaEvent_t> idle;
  size_t live = 0;
};

EventPool& pool() {
  static EventPool* p = new EventPool();
  return *p;
}

// Deferred start marks: recorded at the next device_stream() call.
std::mutex g_deferred_mu;
std::vector<EventMark*> g_deferred;
std::atomic<int> g_deferred_count{0};

constexpr size_t kMaxIdle = 1 << 16;  // beyond this many idle events, released ones are destroyed

}  // namespace

namespace {
// An event from the pool, or a new one with timing enabled; counted live.
Status acquire_event(cudaEvent_t* out) {
  cudaEvent_t ev = nullptr;
  EventPool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (!p.idle.empty()) {
      ev = p.idle.back();
      p.idle.pop_back();
    }
  }
  if (ev == nullptr) {
    Status s = status_from_cuda(cudaEventCreateWithFlags(&ev, cudaEventDefault), "cudaEventCreate");
    if (!s.ok()) return s;
  }
  {
    std::lock_guard<std::mutex> lock(p.mu);
    ++p.live;
  }
  *out = ev;
  return status_ok();
}
}  // namespace

namespace {
// A pooled event for mark (recorded now, or pending until the next device_stream()).
Status take_event(EventMark* mark, bool pending) {
  Status s = device_ready();
  if (!s.ok()) return s;
  cudaEvent_t ev = nullptr;
  s = acquire_event(&ev);
  if (!s.ok()) return s;
  mark->event = ev;
  mark->released = false;
  mark->pending = pending;
  return status_ok();
}
}  // namespace

Status event_record(EventMark* mark) {
  Status s = take_event(mark, false);
  if (!s.ok()) return s;
  // device_stream() first records any deferred start marks, so they precede this one on the stream
  s = status_from_cuda(cudaEventRecord(mark->event, device_stream()), "cudaEventRecord");
  if (!s.ok()) event_release(mark);
  return s;
}

Status event_record_deferred(EventMark* mark) {
  const Status s = take_event(mark, true);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(g_deferred_mu);
  g_deferred.push_back(mark);
  g_deferred_count.store(int(g_deferred.size()), std::memory_order_release);
  return status_ok();
}

void event_flush_deferred(cudaStream_t stream) {
  if (g_deferred_count.load(std::memory_order_acquire) == 0) return;
  std::lock_guard<std::mutex> lock(g_deferred_mu);
  for (EventMark* m : g_deferred) {
    cudaEventRecord(m->event, stream);  // a failure surfaces at event_elapsed_ns (never recorded)
    m->pending = false;
  }
  g_deferred.clear();
  g_deferred_count.store(0, std::memory_order_release);
}

Status event_elapsed_ns(const EventMark& a, const EventMark& b, double* ns) {
  if (a.pending || b.pending) event_flush_deferred(device_stream());
  Status s = status_from_cuda(cudaEventSynchronize(b.event), "cudaEventSynchronize");
  if (!s.ok()) return s;
  float ms = 0;
  s = status_from_cuda(cudaEventElapsedTime(&ms, a.event, b.event), "cudaEventElapsedTime");
  if (!s.ok()) return s;
  *ns = static_cast<double>(ms) * 1e6;
  return status_ok();
}

void event_release(EventMark* mark) {
  if (mark->released || mark->event == nullptr) return;
  mark->released = true;
  if (mark->pending) {
    std::lock_guard<std::mutex> lock(g_deferred_mu);
    g_deferred.erase(std::remove(g_deferred.begin(), g_deferred.end(), mark), g_deferred.end());
    g_deferred_count.store(int(g_deferred.size()), std::memory_order_release);
    mark->pending = false;
  }
  EventPool& p = pool();
  bool keep;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.live > 0) --p.live;
    keep = p.idle.size() < kMaxIdle;
    if (keep) p.idle.push_back(mark->event);
  }
  if (!keep) cudaEventDestroy(mark->event);
  mark->event = nullptr;
}

void event_pool_stats(size_t* idle, size_t* live) {
  EventPool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  *idle = p.idle.size();
  *live = p.live;
}

}  // namespace tessera_cuda
