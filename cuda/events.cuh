// events.cuh: CUDA events recorded on the backend stream, for the profiler's device timer
// (lib/backends/cuda/timer.ts). An event marks a point in the stream's queue; the time between two marks
// is what the device spent on the work queued between them, not what the host waited.
//
// Events come from a pool (cudaEventCreate costs a few microseconds and a profile records two marks per
// kernel call); a released event goes back to the pool and the next record reuses it.
#pragma once

#include <cuda_runtime_api.h>

#include "device.cuh"

namespace tessera_cuda {

struct EventMark {
  cudaEvent_t event = nullptr;
  bool released = false;  // back in the pool: the handle may no longer be read
  bool pending = false;   // from event_record_deferred, not recorded on the stream yet
};

// Takes an event from the pool (or creates one, timing enabled) and records it on the backend stream.
Status event_record(EventMark* mark);

// Takes an event from the pool now but records it when the calling op next touches the stream (the next
// device_stream() call: a kernel launch, a copy, or the next event_record). A profiler's start mark taken
// this way leaves out the host-side preparation an op does before it queues work on an idle device.
Status event_record_deferred(EventMark* mark);
// Records the deferred events on `stream` (called by device_stream(); nearly free when none is pending).
void event_flush_deferred(cudaStream_t stream);

// Nanoseconds from a to b (both recorded, a before b on the stream); waits for b to complete first.
// Negative when b was recorded before a. Resolution is about half a microsecond (cudaEventElapsedTime).
Status event_elapsed_ns(const EventMark& a, const EventMark& b, double* ns);

// Returns the event to the pool; a second release is a no-op.
void event_release(EventMark* mark);

// Events in the pool and events handed out and not yet released (for tests).
void event_pool_stats(size_t* idle, size_t* live);

}  // namespace tessera_cuda
