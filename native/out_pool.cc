// out_pool: see out_pool.h.
#include "out_pool.h"

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace tessera {

namespace {

struct pool_state {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> idle;  // rounded size -> blocks
  size_t cached = 0;
};

pool_state& state() {
  static pool_state* s = new pool_state();  // never destroyed: finalizers may run at exit
  return *s;
}

}  // namespace

size_t pool_round(size_t bytes) {
  constexpr size_t k_grain = size_t(1) << 16;
  return (bytes + k_grain - 1) / k_grain * k_grain;
}

void* pool_take(size_t bytes) {
  const size_t n = pool_round(bytes);
  pool_state& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.idle.find(n);
    if (it != s.idle.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      s.cached -= n;
      return p;
    }
  }
  return std::aligned_alloc(64, n);
}

void pool_give(void* p, size_t bytes) {
  if (p == nullptr) return;
  const size_t n = pool_round(bytes);
  pool_state& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.cached + n <= k_pool_max_cached) {
      s.idle[n].push_back(p);
      s.cached += n;
      return;
    }
  }
  std::free(p);
}

struct pool_lease {
  void* p;
  size_t bytes;
  bool returned;
};

namespace {

struct lease_table {
  std::mutex mu;
  std::unordered_map<const void*, pool_lease*> live;  // block -> its current lease
};

lease_table& leases() {
  static lease_table* t = new lease_table();  // never destroyed, like the pool
  return *t;
}

}  // namespace

pool_lease* pool_lease_take(size_t bytes) {
  void* p = pool_take(bytes);
  if (p == nullptr) return nullptr;
  auto* l = new pool_lease{p, bytes, false};
  lease_table& t = leases();
  std::lock_guard<std::mutex> lock(t.mu);
  t.live[p] = l;
  return l;
}

void* pool_lease_data(const pool_lease* l) { return l->p; }

void pool_lease_finalize(pool_lease* l) {
  pool_lease_return(l);
  delete l;
}

pool_lease* pool_lease_find(const void* p, size_t bytes) {
  lease_table& t = leases();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.live.find(p);
  if (it == t.live.end() || it->second->bytes != bytes || it->second->returned) return nullptr;
  return it->second;
}

void pool_lease_return(pool_lease* l) {
  {
    lease_table& t = leases();
    std::lock_guard<std::mutex> lock(t.mu);
    if (l->returned) return;
    l->returned = true;
    auto it = t.live.find(l->p);
    if (it != t.live.end() && it->second == l) t.live.erase(it);
  }
  pool_give(l->p, l->bytes);
}

size_t pool_cached_bytes() {
  pool_state& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.cached;
}

}  // namespace tessera
