// thread_pool: one process-wide pool of std::thread workers behind parallel_for.
//
// Model: parallel_for(n, f) publishes a job of n independent tasks; idle workers
// and the calling thread claim task indices from an atomic counter until none
// are left, then the caller waits for helpers still inside the job. The caller
// always works on its own job, so concurrent callers (JS main thread plus libuv
// threads running async ops) and nested calls never deadlock; at most
// num_threads() threads (caller included) work on one job.
//
// A thread out of work spins ~200 us (pause) before sleeping, so kernels that follow
// each other quickly do not pay a sleeping thread's wake-up (up to ~1 ms on a VM).
//
// Size: hardware_concurrency, overridden by env TESSERA_NUM_THREADS, changed at
// run time by set_num_threads. Workers are spawned lazily and never retired;
// shrinking only lowers the per-job limit. The pool is intentionally leaked at
// process exit so no destructor races a worker still inside a job.
//
// Task partitioning must never change arithmetic: kernels give each output
// element to exactly one task, so results are bit-identical for any size.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace tessera {

constexpr int k_max_threads = 256;

int num_threads();
void set_num_threads(int n);  // clamped to [1, k_max_threads]

namespace detail {
using task_fn = void (*)(void* ctx, int64_t index);
void parallel_for_impl(int64_t n_tasks, task_fn fn, void* ctx);
}  // namespace detail

// Runs f(i) for i in [0, n_tasks) on the pool; returns when all are done.
// The first exception thrown by a task is rethrown here (remaining unstarted
// tasks are skipped).
template <class F>
void parallel_for(int64_t n_tasks, F&& f) {
  using fn_type = std::remove_reference_t<F>;
  detail::parallel_for_impl(
      n_tasks,
      [](void* ctx, int64_t i) { (*static_cast<fn_type*>(ctx))(i); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

// Runs f(i) for i in [0, n): on the pool when parallel and there is more than one task, else inline.
template <class F>
void run_tasks(bool parallel, int64_t n, F&& f) {
  if (parallel && n > 1) {
    parallel_for(n, f);
  } else {
    for (int64_t i = 0; i < n; ++i) f(i);
  }
}

}  // namespace tessera
