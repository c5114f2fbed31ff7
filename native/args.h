// args: validation of JS arguments at the N-API boundary. Never trusts a value:
// every check that fails throws Napi::TypeError (wrong kind of value) or
// Napi::RangeError (right kind, bad value), with messages of the form
//   tessera_cpu.matmulF32: argument 4 (M) must be an integer in [1, 2^31-1], got -3
// (arguments are numbered from 0). Sizes are computed in uint64 saturating at
// 2^53 + 1, so an overflowing product can never pass a length check.
#pragma once

#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace tessera {

constexpr int64_t k_max_dim = 2147483647;            // 2^31 - 1
constexpr int64_t k_max_safe = 9007199254740991;     // 2^53 - 1
constexpr uint64_t k_too_big = 9007199254740993ull;  // 2^53 + 1: saturation value

// a * b, saturating at k_too_big.
uint64_t size_mul(uint64_t a, uint64_t b);
// a + b, saturating at k_too_big.
uint64_t size_add(uint64_t a, uint64_t b);

struct f32_arg {
  float* data = nullptr;
  uint64_t length = 0;  // elements
  Napi::Object object;  // the Float32Array, to hold a reference while async work runs
};

class arg_reader {
 public:
  // Throws unless info.Length() == names.size().
  arg_reader(const Napi::CallbackInfo& info, const char* function_name,
             std::initializer_list<const char*> names);

  f32_arg float32_array(size_t i) const;
  int64_t integer(size_t i, int64_t lo, int64_t hi, const char* range_text) const;
  bool boolean(size_t i) const;
  double finite_number(size_t i) const;

  // Throws RangeError unless buf (argument i) holds at least `needed` elements.
  void require_length(size_t i, const f32_arg& buf, uint64_t needed, const char* formula) const;
  // Throws RangeError if out[0, out_len) and in[0, in_len) share any byte.
  void require_disjoint(size_t i_out, const f32_arg& out, uint64_t out_len, size_t i_in,
                        const f32_arg& in, uint64_t in_len) const;

  [[noreturn]] void throw_range(const std::string& message) const;
  [[noreturn]] void throw_type(const std::string& message) const;
  std::string label(size_t i) const;  // "argument 4 (M)"

 private:
  const Napi::CallbackInfo& info_;
  const char* function_name_;
  std::vector<const char*> names_;
};

}  // namespace tessera
