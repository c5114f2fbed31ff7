// thread_pool: implementation (see thread_pool.h for the model).
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace tessera {

namespace {

struct job {
  detail::task_fn fn;
  void* ctx;
  int64_t n_tasks;
  int max_helpers;                // workers allowed in besides the caller
  std::atomic<int64_t> next{0};   // next unclaimed task index
  int helpers_inside = 0;         // guarded by pool::mu
  std::atomic<int> helpers_busy{0};  // the same count, readable without the lock (the caller's spin)
  std::exception_ptr error;       // first error; guarded by error_mu
  std::mutex error_mu;

  bool has_work() const { return next.load(std::memory_order_relaxed) < n_tasks; }

  void run_tasks() {
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n_tasks) return;
      try {
        fn(ctx, i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        next.store(n_tasks, std::memory_order_relaxed);  // skip the rest
      }
    }
  }
};

// How long a thread that ran out of work spins (yielding the core to nothing else but its sibling
// hyperthread via pause) before it sleeps on a condition variable: a sleeping worker on a VM can take
// a millisecond or more to wake, longer than many whole kernels, while kernels often come in quick
// succession (the layers of a model, the K blocks of a GEMM). Short enough that an idle process costs
// nothing measurable.
constexpr auto k_spin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until ready() or k_spin has passed; true when ready.
template <class Ready>
bool spin_until(Ready ready) {
  const auto end = std::chrono::steady_clock::now() + k_spin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= end) return false;
  }
}

int initial_threads() {
  int n = static_cast<int>(std::thread::hardware_concurrency());
  if (n < 1) n = 1;
  if (const char* env = std::getenv("TESSERA_NUM_THREADS")) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1) n = static_cast<int>(std::min<long>(v, k_max_threads));
  }
  return std::min(n, k_max_threads);
}

class pool {
 public:
  pool() : target_(initial_threads()) {}

  int size() {
    std::lock_guard<std::mutex> lock(mu_);
    return target_;
  }

  void resize(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    target_ = std::clamp(n, 1, k_max_threads);
  }

  void run(job& j) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      spawn_locked(target_ - 1);
      j.max_helpers = std::min(target_ - 1, n_workers_);
      if (j.max_helpers > 0) jobs_.push_back(&j);
    }
    if (j.max_helpers > 0) {
      posted_.fetch_add(1, std::memory_order_release);
      work_cv_.notify_all();
    }
    j.run_tasks();
    {
      std::lock_guard<std::mutex> lock(mu_);
      remove_locked(&j);  // no new helper enters from here on
    }
    spin_until([&] { return j.helpers_busy.load(std::memory_order_acquire) == 0; });
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return j.helpers_inside == 0; });
  }

 private:
  void spawn_locked(int wanted) {
    try {
      while (n_workers_ < wanted) {
        std::thread([this] { worker_loop(); }).detach();  // lives until process exit
        ++n_workers_;
      }
    } catch (const std::system_error&) {
      // Out of threads: run with the workers we have (the caller always makes progress).
    }
  }

  void remove_locked(job* j) {
    jobs_.erase(std::remove(jobs_.begin(), jobs_.end(), j), jobs_.end());
  }

  // A job a worker may enter now; drops exhausted jobs from the list.
  job* pick_locked() {
    for (size_t i = 0; i < jobs_.size();) {
      job* j = jobs_[i];
      if (!j->has_work()) {
        jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(i));
        continue;
      }
      if (j->helpers_inside < j->max_helpers) return j;
      ++i;
    }
    return nullptr;
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      job* j = pick_locked();
      if (j == nullptr) {
        // out of work: spin a little for the next job before sleeping
        const uint64_t seen = posted_.load(std::memory_order_acquire);
        lock.unlock();
        spin_until([&] { return posted_.load(std::memory_order_acquire) != seen; });
        lock.lock();
        work_cv_.wait(lock, [&] { return (j = pick_locked()) != nullptr; });
      }
      ++j->helpers_inside;
      j->helpers_busy.fetch_add(1, std::memory_order_relaxed);
      lock.unlock();
      j->run_tasks();
      lock.lock();
      j->helpers_busy.fetch_sub(1, std::memory_order_release);
      if (--j->helpers_inside == 0) done_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::vector<job*> jobs_;
  std::atomic<uint64_t> posted_{0};  // jobs published so far (the workers' spin watches it)
  int n_workers_ = 0;
  int target_;
};

pool& the_pool() {
  static pool* p = new pool();  // leaked on purpose, see header
  return *p;
}

}  // namespace

int num_threads() { return the_pool().size(); }

void set_num_threads(int n) { the_pool().resize(n); }

namespace detail {

void parallel_for_impl(int64_t n_tasks, task_fn fn, void* ctx) {
  if (n_tasks <= 0) return;
  if (n_tasks == 1) {
    fn(ctx, 0);
    return;
  }
  job j;
  j.fn = fn;
  j.ctx = ctx;
  j.n_tasks = n_tasks;
  the_pool().run(j);
  if (j.error) std::rethrow_exception(j.error);
}

}  // namespace detail

}  // namespace tessera
