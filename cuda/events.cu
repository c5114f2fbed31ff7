// events.cu: the event pool behind eventRecord / eventElapsedNs / eventRelease (see events.cuh).
//
// The pool is a heap object never destroyed: finalizers of forgotten handles may return events during exit.
// Releasing an event that may still be pending on the stream is fine: the next cudaEventRecord on it
// simply re-captures it, and nothing reads the old capture after release.
#include "events.cuh"

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

constexpr size_t kMaxIdle = 1 << 16;  // beyond this many idle events, released ones are destroyed

}  // namespace

Status event_record(EventMark* mark) {
  Status s = device_ready();
  if (!s.ok()) return s;
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
    s = status_from_cuda(cudaEventCreateWithFlags(&ev, cudaEventDefault), "cudaEventCreate");
    if (!s.ok()) return s;
  }
  s = status_from_cuda(cudaEventRecord(ev, device_stream()), "cudaEventRecord");
  if (!s.ok()) {
    cudaEventDestroy(ev);
    return s;
  }
  {
    std::lock_guard<std::mutex> lock(p.mu);
    ++p.live;
  }
  mark->event = ev;
  mark->released = false;
  return status_ok();
}

Status event_elapsed_ns(const EventMark& a, const EventMark& b, double* ns) {
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
