// ops_addon.cc: the N-API surface of the tensor kernels and the allocator (TypeScript view: CudaBinding in
// lib/backends/cuda/native.ts; the callers are lib/backends/cuda/ops.ts).
//
//   emptyCache()  allocatorStats() -> {allocated, cached, reserved, peakAllocated, ...}  resetPeakStats()
//   unary(op, out, x)  binary(op, out, a, b)  where(out, cond, a, b)  copyStrided(out, x)
//   triangle(out, x, diagonal, lower)  reduce(op, out, x, nKept)  softmax(out, x, dim, log)  cumsum(out, x, dim)
//   rmsNorm(out, x, weight|null, eps)  layerNorm(out, x, weight|null, bias|null, eps)  embedding(out, ids, table)
//   rope(out, x, positions: Float64Array, invFreq: Float64Array, rotaryDim, interleaved)
//   matmul(out, a, b, bias|null)
// A tensor argument is a plain object {h, dt, off, shape, strides}: h a buffer handle from malloc(), dt a
// dtype code (ops.cuh DType), off and strides in elements. This file only converts and type-checks JS
// values; the bounds of every view are checked against its buffer by check_ref() on the CUDA side.
// Errors carry the codes of addon.cc: E_TYPE, E_ARG, E_DISPOSED, E_OOM, E_BACKEND, E_NATIVE.
#include "ops_addon.h"

#include <cmath>
#include <string>

#include "napi_errors.h"
#include "ops.cuh"

namespace tessera_cuda {

namespace {

using namespace js;

BufferUnwrap g_unwrap = nullptr;

double number(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throw_type(env, what + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

size_t count(Napi::Env env, const Napi::Value& v, const std::string& what) {
  const double d = number(env, v, what);
  if (!(d >= 0) || d > kMaxSafeInteger || std::floor(d) != d) {
    throw with_code(Napi::RangeError::New(env, what + " must be a non-negative integer"), "E_ARG");
  }
  return static_cast<size_t>(d);
}

std::vector<size_t> counts(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw_type(env, what + " must be an array");
  Napi::Array arr = v.As<Napi::Array>();
  if (arr.Length() > 64) throw with_code(Napi::RangeError::New(env, what + " has more than 64 dims"), "E_ARG");
  std::vector<size_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) out[i] = count(env, arr.Get(i), what + "[" + std::to_string(i) + "]");
  return out;
}

TensorRef tensor(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Env env = info.Env();
  const std::string what = std::string(fn) + ": " + name;
  if (!info[i].IsObject() || info[i].IsArray()) throw_type(env, what + " must be a tensor descriptor object");
  Napi::Object o = info[i].As<Napi::Object>();
  TensorRef t;
  t.buf = g_unwrap(o.Get("h"));
  if (t.buf == nullptr) throw_type(env, what + ".h must be a CUDA buffer handle from malloc()");
  if (t.buf->freed) throw with_code(Napi::Error::New(env, what + " was freed"), "E_DISPOSED");
  const size_t dt = count(env, o.Get("dt"), what + ".dt");
  if (dt >= kDTypeCount) throw with_code(Napi::RangeError::New(env, what + ".dt is not a dtype code"), "E_ARG");
  t.dtype = static_cast<int>(dt);
  t.offset = count(env, o.Get("off"), what + ".off");
  t.shape = counts(env, o.Get("shape"), what + ".shape");
  t.strides = counts(env, o.Get("strides"), what + ".strides");
  return t;
}

// null/undefined -> false (absent), else the descriptor in *out.
bool optional_tensor(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, TensorRef* out) {
  if (info[i].IsNull() || info[i].IsUndefined()) return false;
  *out = tensor(info, i, fn, name);
  return true;
}

std::string op_name(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  if (!info[i].IsString()) throw_type(info.Env(), std::string(fn) + ": op must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

bool flag(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (!info[i].IsBoolean()) throw_type(info.Env(), std::string(fn) + ": " + name + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

const double* f64_array(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, size_t* n) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw_type(info.Env(), std::string(fn) + ": " + name + " must be a Float64Array");
  }
  Napi::Float64Array a = info[i].As<Napi::Float64Array>();
  if (a.ArrayBuffer().ByteLength() == 0 && a.ElementLength() > 0) {
    throw with_code(Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " is detached"), "E_DETACHED");
  }
  *n = a.ElementLength();
  return a.Data();
}

Napi::Value Undefined(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

// ---------------------------------------------------------------------------------------- allocator

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  expect_args(info, 0, "emptyCache");
  check(info.Env(), allocator_empty_cache());
  return Undefined(info);
}

Napi::Value AllocatorStatsJs(const Napi::CallbackInfo& info) {
  expect_args(info, 0, "allocatorStats");
  const AllocatorStats st = allocator_stats();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const auto set = [&](const char* k, size_t v) { o.Set(k, Napi::Number::New(env, static_cast<double>(v))); };
  set("allocated", st.allocated);
  set("cached", st.cached);
  set("reserved", st.reserved);
  set("peakAllocated", st.peak_allocated);
  set("peakReserved", st.peak_reserved);
  set("requested", st.requested);
  set("liveBuffers", st.live_buffers);
  set("cachedBlocks", st.cached_blocks);
  set("allocCalls", st.alloc_calls);
  set("cacheHits", st.cache_hits);
  set("deviceMallocs", st.device_mallocs);
  set("deviceFrees", st.device_frees);
  set("oomRetries", st.oom_retries);
  set("ooms", st.ooms);
  return o;
}

Napi::Value ResetPeakStats(const Napi::CallbackInfo& info) {
  expect_args(info, 0, "resetPeakStats");
  allocator_reset_peaks();
  return Undefined(info);
}

// ---------------------------------------------------------------------------------------- kernels

Napi::Value Unary(const Napi::CallbackInfo& info) {
  expect_args(info, 3, "unary");
  const std::string op = op_name(info, 0, "unary");
  check(info.Env(), ew_unary(op, tensor(info, 1, "unary", "out"), tensor(info, 2, "unary", "x")));
  return Undefined(info);
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  expect_args(info, 4, "binary");
  const std::string op = op_name(info, 0, "binary");
  check(info.Env(), ew_binary(op, tensor(info, 1, "binary", "out"), tensor(info, 2, "binary", "a"),
                              tensor(info, 3, "binary", "b")));
  return Undefined(info);
}

Napi::Value Where(const Napi::CallbackInfo& info) {
  expect_args(info, 4, "where");
  check(info.Env(), ew_where(tensor(info, 0, "where", "out"), tensor(info, 1, "where", "cond"),
                             tensor(info, 2, "where", "a"), tensor(info, 3, "where", "b")));
  return Undefined(info);
}

Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  expect_args(info, 2, "copyStrided");
  check(info.Env(), ew_copy(tensor(info, 0, "copyStrided", "out"), tensor(info, 1, "copyStrided", "x")));
  return Undefined(info);
}

Napi::Value Triangle(const Napi::CallbackInfo& info) {
  expect_args(info, 4, "triangle");
  const double d = number(info.Env(), info[2], "triangle: diagonal");
  if (!(std::fabs(d) <= kMaxSafeInteger) || std::floor(d) != d) {
    throw with_code(Napi::RangeError::New(info.Env(), "triangle: diagonal must be an integer"), "E_ARG");
  }
  check(info.Env(), ew_triangle(tensor(info, 0, "triangle", "out"), tensor(info, 1, "triangle", "x"),
                                static_cast<long long>(d), flag(info, 3, "triangle", "lower")));
  return Undefined(info);
}

Napi::Value Reduce(const Napi::CallbackInfo& info) {
  expect_args(info, 4, "reduce");
  const std::string op = op_name(info, 0, "reduce");
  check(info.Env(), reduce(op, tensor(info, 1, "reduce", "out"), tensor(info, 2, "reduce", "x"),
                           count(info.Env(), info[3], "reduce: nKept")));
  return Undefined(info);
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  expect_args(info, 4, "softmax");
  check(info.Env(), softmax(tensor(info, 0, "softmax", "out"), tensor(info, 1, "softmax", "x"),
                            count(info.Env(), info[2], "softmax: dim"), flag(info, 3, "softmax", "log")));
  return Undefined(info);
}

Napi::Value Cumsum(const Napi::CallbackInfo& info) {
  expect_args(info, 3, "cumsum");
  check(info.Env(), cumsum(tensor(info, 0, "cumsum", "out"), tensor(info, 1, "cumsum", "x"),
                           count(info.Env(), info[2], "cumsum: dim")));
  return Undefined(info);
}

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  expect_args(info, 4, "rmsNorm");
  TensorRef w;
  const bool has_w = optional_tensor(info, 2, "rmsNorm", "weight", &w);
  const float eps = static_cast<float>(number(info.Env(), info[3], "rmsNorm: eps"));
  check(info.Env(), rms_norm(tensor(info, 0, "rmsNorm", "out"), tensor(info, 1, "rmsNorm", "x"), has_w ? &w : nullptr, eps));
  return Undefined(info);
}

Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  expect_args(info, 5, "layerNorm");
  TensorRef w, b;
  const bool has_w = optional_tensor(info, 2, "layerNorm", "weight", &w);
  const bool has_b = optional_tensor(info, 3, "layerNorm", "bias", &b);
  const float eps = static_cast<float>(number(info.Env(), info[4], "layerNorm: eps"));
  check(info.Env(), layer_norm(tensor(info, 0, "layerNorm", "out"), tensor(info, 1, "layerNorm", "x"),
                               has_w ? &w : nullptr, has_b ? &b : nullptr, eps));
  return Undefined(info);
}

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  expect_args(info, 3, "embedding");
  check(info.Env(), embedding(tensor(info, 0, "embedding", "out"), tensor(info, 1, "embedding", "ids"),
                              tensor(info, 2, "embedding", "table")));
  return Undefined(info);
}

Napi::Value Rope(const Napi::CallbackInfo& info) {
  expect_args(info, 6, "rope");
  size_t n_pos = 0, n_freq = 0;
  const double* pos = f64_array(info, 2, "rope", "positions", &n_pos);
  const double* freq = f64_array(info, 3, "rope", "invFreq", &n_freq);
  check(info.Env(), rope(tensor(info, 0, "rope", "out"), tensor(info, 1, "rope", "x"), pos, n_pos, freq, n_freq,
                         count(info.Env(), info[4], "rope: rotaryDim"), flag(info, 5, "rope", "interleaved")));
  return Undefined(info);
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  expect_args(info, 4, "matmul");
  TensorRef bias;
  const bool has_bias = optional_tensor(info, 3, "matmul", "bias", &bias);
  check(info.Env(), matmul(tensor(info, 0, "matmul", "out"), tensor(info, 1, "matmul", "a"),
                           tensor(info, 2, "matmul", "b"), has_bias ? &bias : nullptr));
  return Undefined(info);
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports, BufferUnwrap unwrap) {
  g_unwrap = unwrap;
  const auto fn = [&](const char* name, Napi::Function::Callback cb) {
    exports.Set(name, Napi::Function::New(env, cb, name));
  };
  fn("emptyCache", EmptyCache);
  fn("allocatorStats", AllocatorStatsJs);
  fn("resetPeakStats", ResetPeakStats);
  fn("unary", Unary);
  fn("binary", Binary);
  fn("where", Where);
  fn("copyStrided", CopyStrided);
  fn("triangle", Triangle);
  fn("reduce", Reduce);
  fn("softmax", Softmax);
  fn("cumsum", Cumsum);
  fn("rmsNorm", RmsNorm);
  fn("layerNorm", LayerNorm);
  fn("embedding", Embedding);
  fn("rope", Rope);
  fn("matmul", Matmul);
}

}  // namespace tessera_cuda
