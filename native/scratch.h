// scratch: 64-byte-aligned heap arrays for kernel drivers, and a per-thread buffer that only grows
// (kept between calls: no page faults per call). Shared by qgemm and spmm.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace tessera {
namespace detail {

struct free_deleter {
  void operator()(void* p) const { std::free(p); }
};

template <class T>
using aligned_ptr = std::unique_ptr<T[], free_deleter>;

template <class T>
aligned_ptr<T> alloc_aligned(size_t n) {
  const size_t bytes = std::max<size_t>(64, (n * sizeof(T) + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return aligned_ptr<T>(static_cast<T*>(p));
}

// A per-thread buffer that only grows: kept between calls (no page faults per call).
template <class T>
class scratch {
 public:
  T* get(size_t n) {
    if (n > cap_) {
      p_ = alloc_aligned<T>(n);
      cap_ = n;
    }
    return p_.get();
  }

 private:
  aligned_ptr<T> p_;
  size_t cap_ = 0;
};

}  // namespace detail
}  // namespace tessera
