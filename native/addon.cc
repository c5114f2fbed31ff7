// addon: the tessera_cpu N-API surface. Narrow on purpose:
//   info() -> { version, simd, threads, napiVersion, compiler }
//   setNumThreads(n), getNumThreads()
//   matmulF32(a, b, out, batch, M, N, K, strideA, strideB, transA, transB)
//   matmulMixed(a, b, out, batch, M, N, K, strideA, strideB, transA, transB, aDtype, bDtype)
//   matmulF32Async(...same) -> Promise<void>
//   attentionF32(q, k, v, out, B, Hq, Hkv, Sq, Sk, D, Dv, scale, causal, kvOffset)
//   attentionF32Async(...same) -> Promise<void>
//   spmmCsrF32(rowPtr, colIdx, values, b, out, M, K, N, nnz), spmmCsrF32Async(...same)
//   spmm24F32(values, meta, b, out, M, K, N), spmm24F32Async(...same)
//   qgemmPrepack(qdtype, K, N, groupSize, perTensor, values, scales, zeros) -> packed
//   qgemm(packed, x, out, M, xDtype, activations), qgemmAsync(...same) -> Promise<void>
//     (activations 'float', or 'int8' for W4A8 with int4 / uint4 weights)
//   allocF32(n) -> Float32Array over a recycled block (out_pool.h), or null below its minimum size;
//   poolCachedBytes() -> idle bytes the pool holds
//   peakRate(kind, seconds, parallel) -> calibration loop ops/s; readBandwidth(bytes, seconds, parallel)
//     -> sequential read bytes/s (peak.h)
// Every argument is validated here (args.h) even though the TS layer validates
// too. Async forms run the kernel on a libuv worker thread (which then fans out
// to the thread pool) and keep references to the typed arrays until the promise
// settles. They cannot stop JS from detaching/transferring a buffer while the
// work runs: callers must not transfer an array that has an op in flight.
// napiVersion reports the N-API version the addon is built against (8).
#include <napi.h>

#include <cmath>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "attention.h"
#include "cpu_features.h"
#include "gemm.h"
#include "out_pool.h"
#include "peak.h"
#include "qgemm.h"
#include "spmm.h"
#include "thread_pool.h"

namespace tessera {

namespace {

constexpr const char* k_version = "0.1.0";

// Runs `work` on a libuv worker thread; its promise resolves with undefined or
// rejects with an Error. The completion step uses the C API and never throws:
// while a worker_threads environment is torn down JS cannot run, node-addon-api
// wrappers would throw there, and an exception escaping a completion callback
// aborts the process. (Node waits for queued work before freeing the
// environment, so the typed arrays outlive the kernel.)
class kernel_worker : public Napi::AsyncWorker {
 public:
  kernel_worker(Napi::Env env, const char* name, std::function<void()> work,
                std::initializer_list<Napi::Object> keep_alive)
      : Napi::AsyncWorker(env, name), work_(std::move(work)) {
    napi_value promise = nullptr;
    if (napi_create_promise(env, &deferred_, &promise) != napi_ok)
      throw Napi::Error::New(env, std::string(name) + ": could not create a promise");
    promise_ = Napi::Persistent(Napi::Value(env, promise).As<Napi::Object>());
    for (const Napi::Object& o : keep_alive) refs_.push_back(Napi::Persistent(o));
  }

  Napi::Value promise() const { return promise_.Value(); }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const std::bad_alloc&) {
      error_ = "tessera_cpu: out of memory";
    } catch (const std::exception& e) {
      error_ = std::string("tessera_cpu: ") + e.what();
    } catch (...) {
      error_ = "tessera_cpu: unknown native error";
    }
  }

  void OnWorkComplete(Napi::Env env, napi_status status) override {
    napi_handle_scope scope = nullptr;
    if (status != napi_cancelled && napi_open_handle_scope(env, &scope) == napi_ok) {
      napi_value value = nullptr;
      if (error_.empty()) {
        if (napi_get_undefined(env, &value) == napi_ok) napi_resolve_deferred(env, deferred_, value);
      } else {
        napi_value message = nullptr;
        if (napi_create_string_utf8(env, error_.data(), error_.size(), &message) == napi_ok &&
            napi_create_error(env, nullptr, message, &value) == napi_ok)
          napi_reject_deferred(env, deferred_, value);
      }
      napi_close_handle_scope(env, scope);
    }
    Destroy();  // delete this: releases the typed-array references
  }

 private:
  std::function<void()> work_;
  std::string error_;
  napi_deferred deferred_ = nullptr;
  Napi::ObjectReference promise_;
  std::vector<Napi::ObjectReference> refs_;
};

// Runs `work` on the calling thread, mapping C++ failures to JS errors.
void run_sync(Napi::Env env, const char* name, const std::function<void()>& work) {
  try {
    work();
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, std::string("tessera_cpu.") + name + ": out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("tessera_cpu.") + name + ": " + e.what());
  } catch (...) {
    throw Napi::Error::New(env, std::string("tessera_cpu.") + name + ": unknown native error");
  }
}

// ---- matmulF32 ------------------------------------------------------------------

struct matmul_call {
  f32_arg a, b, out;
  gemm_f32_shape shape;
};

// Arguments 3..10 of matmulF32 / matmulMixed (batch, M, N, K, strides, transposes) and the element
// counts they imply for a, b and out.
struct matmul_dims {
  gemm_f32_shape shape;
  uint64_t need_a, need_b, need_out;
};

matmul_dims parse_matmul_dims(const arg_reader& r) {
  matmul_dims d;
  gemm_f32_shape& s = d.shape;
  s.batch = r.integer(3, 1, k_max_dim, "[1, 2^31-1]");
  s.m = r.integer(4, 1, k_max_dim, "[1, 2^31-1]");
  s.n = r.integer(5, 1, k_max_dim, "[1, 2^31-1]");
  s.k = r.integer(6, 1, k_max_dim, "[1, 2^31-1]");
  s.stride_a = r.integer(7, 0, k_max_safe, "[0, 2^53-1]");
  s.stride_b = r.integer(8, 0, k_max_safe, "[0, 2^53-1]");
  s.trans_a = r.boolean(9);
  s.trans_b = r.boolean(10);
  const uint64_t batch_m1 = static_cast<uint64_t>(s.batch - 1);
  d.need_a = size_add(size_mul(batch_m1, s.stride_a), size_mul(s.m, s.k));
  d.need_b = size_add(size_mul(batch_m1, s.stride_b), size_mul(s.k, s.n));
  d.need_out = size_mul(size_mul(s.batch, s.m), s.n);
  return d;
}

matmul_call parse_matmul(const Napi::CallbackInfo& info, const char* name) {
  const arg_reader r(info, name,
                     {"a", "b", "out", "batch", "M", "N", "K", "strideA", "strideB", "transA",
                      "transB"});
  matmul_call c;
  c.a = r.float32_array(0);
  c.b = r.float32_array(1);
  c.out = r.float32_array(2);
  const matmul_dims d = parse_matmul_dims(r);
  c.shape = d.shape;
  r.require_length(0, c.a, d.need_a, "(batch-1)*strideA + M*K");
  r.require_length(1, c.b, d.need_b, "(batch-1)*strideB + K*N");
  r.require_length(2, c.out, d.need_out, "batch*M*N");
  r.require_disjoint(2, c.out, d.need_out, 0, c.a, d.need_a);
  r.require_disjoint(2, c.out, d.need_out, 1, c.b, d.need_b);
  return c;
}

Napi::Value matmul_f32(const Napi::CallbackInfo& info) {
  const matmul_call c = parse_matmul(info, "matmulF32");
  run_sync(info.Env(), "matmulF32", [&] { gemm_f32(c.out.data, c.a.data, c.b.data, c.shape); });
  return info.Env().Undefined();
}

Napi::Value matmul_f32_async(const Napi::CallbackInfo& info) {
  const matmul_call c = parse_matmul(info, "matmulF32Async");
  auto* w = new kernel_worker(
      info.Env(), "tessera_cpu.matmulF32Async",
      [out = c.out.data, a = c.a.data, b = c.b.data, shape = c.shape] { gemm_f32(out, a, b, shape); },
      {c.a.object, c.b.object, c.out.object});
  Napi::Value p = w->promise();
  w->Queue();  // the worker deletes itself after settling the promise
  return p;
}

// ---- attentionF32 ---------------------------------------------------------------

struct attention_call {
  f32_arg q, k, v, out;
  attention_f32_shape shape;
};

attention_call parse_attention(const Napi::CallbackInfo& info, const char* name) {
  const arg_reader r(info, name,
                     {"q", "k", "v", "out", "B", "Hq", "Hkv", "Sq", "Sk", "D", "Dv", "scale",
                      "causal", "kvOffset"});
  attention_call c;
  c.q = r.float32_array(0);
  c.k = r.float32_array(1);
  c.v = r.float32_array(2);
  c.out = r.float32_array(3);
  attention_f32_shape& s = c.shape;
  s.batch = r.integer(4, 1, k_max_dim, "[1, 2^31-1]");
  s.heads_q = r.integer(5, 1, k_max_dim, "[1, 2^31-1]");
  s.heads_kv = r.integer(6, 1, k_max_dim, "[1, 2^31-1]");
  s.seq_q = r.integer(7, 1, k_max_dim, "[1, 2^31-1]");
  s.seq_k = r.integer(8, 1, k_max_dim, "[1, 2^31-1]");
  s.dim = r.integer(9, 1, k_max_dim, "[1, 2^31-1]");
  s.dim_v = r.integer(10, 1, k_max_dim, "[1, 2^31-1]");
  const double scale = r.finite_number(11);
  if (std::fabs(scale) > 3.4028234663852886e38)
    r.throw_range(r.label(11) + " must fit in a float32, got " + std::to_string(scale));
  s.scale = static_cast<float>(scale);
  s.causal = r.boolean(12);
  s.kv_offset = r.integer(13, -k_max_safe, k_max_safe, "[-(2^53-1), 2^53-1]");
  if (s.heads_q % s.heads_kv != 0)
    r.throw_range(r.label(5) + " must be a multiple of " + r.label(6) + ", got Hq=" +
                  std::to_string(s.heads_q) + ", Hkv=" + std::to_string(s.heads_kv));

  const uint64_t bq = size_mul(s.batch, s.heads_q);
  const uint64_t bkv = size_mul(s.batch, s.heads_kv);
  const uint64_t need_q = size_mul(size_mul(bq, s.seq_q), s.dim);
  const uint64_t need_k = size_mul(size_mul(bkv, s.seq_k), s.dim);
  const uint64_t need_v = size_mul(size_mul(bkv, s.seq_k), s.dim_v);
  const uint64_t need_out = size_mul(size_mul(bq, s.seq_q), s.dim_v);
  r.require_length(0, c.q, need_q, "B*Hq*Sq*D");
  r.require_length(1, c.k, need_k, "B*Hkv*Sk*D");
  r.require_length(2, c.v, need_v, "B*Hkv*Sk*Dv");
  r.require_length(3, c.out, need_out, "B*Hq*Sq*Dv");
  r.require_disjoint(3, c.out, need_out, 0, c.q, need_q);
  r.require_disjoint(3, c.out, need_out, 1, c.k, need_k);
  r.require_disjoint(3, c.out, need_out, 2, c.v, need_v);
  return c;
}

Napi::Value attention_f32_sync(const Napi::CallbackInfo& info) {
  const attention_call c = parse_attention(info, "attentionF32");
  run_sync(info.Env(), "attentionF32",
           [&] { attention_f32(c.out.data, c.q.data, c.k.data, c.v.data, c.shape); });
  return info.Env().Undefined();
}

Napi::Value attention_f32_async(const Napi::CallbackInfo& info) {
  const attention_call c = parse_attention(info, "attentionF32Async");
  auto* w = new kernel_worker(
      info.Env(), "tessera_cpu.attentionF32Async",
      [out = c.out.data, q = c.q.data, k = c.k.data, v = c.v.data, shape = c.shape] {
        attention_f32(out, q, k, v, shape);
      },
      {c.q.object, c.k.object, c.v.object, c.out.object});
  Napi::Value p = w->promise();
  w->Queue();
  return p;
}

// ---- spmm (sparse A @ dense B: CSR, 2:4) -----------------------------------------

// Int32Array / Uint8Array arguments (index parts of a sparse matrix), checked as
// strictly as float32_array checks a Float32Array.
struct index_arg {
  const void* data = nullptr;
  uint64_t length = 0;  // elements
  uint64_t bytes = 0;
  Napi::Object object;
};

// "Float32Array", "a number", ... for error messages; never runs JS code.
std::string value_kind(const Napi::Value& v) {
  static const char* const typed[] = {"Int8Array",   "Uint8Array",   "Uint8ClampedArray", "Int16Array",
                                      "Uint16Array", "Int32Array",   "Uint32Array",       "Float32Array",
                                      "Float64Array", "BigInt64Array", "BigUint64Array"};
  static const char* const kinds[] = {"undefined", "null",     "a boolean",   "a number", "a string",
                                      "a symbol",  "an object", "a function", "an external", "a bigint"};
  if (v.IsTypedArray()) {
    const size_t t = static_cast<size_t>(v.As<Napi::TypedArray>().TypedArrayType());
    return t < sizeof typed / sizeof *typed ? typed[t] : "a typed array";
  }
  const size_t t = static_cast<size_t>(v.Type());
  return t < sizeof kinds / sizeof *kinds ? kinds[t] : "an unknown value";
}

index_arg index_array(const arg_reader& r, const Napi::CallbackInfo& info, size_t i,
                      napi_typedarray_type want, const char* want_name, size_t elem_bytes) {
  const Napi::Value v = info[i];
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer = nullptr;
  size_t byte_offset = 0;
  if (!v.IsTypedArray() ||
      napi_get_typedarray_info(info.Env(), v, &type, &length, &data, &buffer, &byte_offset) != napi_ok ||
      type != want)
    r.throw_type(r.label(i) + " must be " + want_name + ", got " + value_kind(v));
  bool detached = false;
  if (napi_is_detached_arraybuffer(info.Env(), buffer, &detached) != napi_ok) detached = true;
  if (detached) r.throw_type(r.label(i) + " is " + want_name + " whose ArrayBuffer is detached");
  if (length > 0 && data == nullptr) r.throw_type(r.label(i) + " has no backing store");
  return {data, length, length * elem_bytes, v.As<Napi::Object>()};
}

void require_count(const arg_reader& r, size_t i, uint64_t have, uint64_t needed, const char* formula) {
  f32_arg counted;  // require_length reads only .length
  counted.length = have;
  r.require_length(i, counted, needed, formula);
}

// The output must share no byte with an index array either.
void require_apart(const arg_reader& r, size_t i_out, const f32_arg& out, uint64_t out_len,
                   size_t i_in, const index_arg& in) {
  const uintptr_t o0 = reinterpret_cast<uintptr_t>(out.data);
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(in.data);
  if (o0 < a0 + in.bytes && a0 < o0 + out_len * sizeof(float))
    r.throw_range(r.label(i_out) + " overlaps " + r.label(i_in) +
                  " in memory; the output must not share bytes with an input");
}

// ---- matmulMixed: float16 / bfloat16 operands, widened while packed -------------------
//   matmulMixed(a, b, out, batch, M, N, K, strideA, strideB, transA, transB, aDtype, bDtype)
// a / b: Float32Array for 'float32', Uint16Array of raw bits for 'float16' / 'bfloat16'.

struct matmul_mixed_call {
  const void* a = nullptr;
  const void* b = nullptr;
  gemm_src a_src = gemm_src::f32, b_src = gemm_src::f32;
  Napi::Object a_object, b_object;
  f32_arg out;
  gemm_f32_shape shape;
};

gemm_src parse_src(const arg_reader& r, const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) r.throw_type(r.label(i) + " must be a string");
  const std::string d = info[i].As<Napi::String>().Utf8Value();
  if (d == "float32") return gemm_src::f32;
  if (d == "float16") return gemm_src::f16;
  if (d == "bfloat16") return gemm_src::bf16;
  r.throw_range(r.label(i) + " must be float32, float16 or bfloat16");
}

matmul_mixed_call parse_matmul_mixed(const Napi::CallbackInfo& info, const char* name) {
  const arg_reader r(info, name,
                     {"a", "b", "out", "batch", "M", "N", "K", "strideA", "strideB", "transA",
                      "transB", "aDtype", "bDtype"});
  matmul_mixed_call c;
  c.a_src = parse_src(r, info, 11);
  c.b_src = parse_src(r, info, 12);
  c.out = r.float32_array(2);
  const matmul_dims d = parse_matmul_dims(r);
  c.shape = d.shape;
  const uint64_t need_out = d.need_out;
  r.require_length(2, c.out, need_out, "batch*M*N");
  auto operand = [&](size_t i, gemm_src src, uint64_t need, const char* formula, const void** data,
                     Napi::Object* object) {
    if (src == gemm_src::f32) {
      const f32_arg x = r.float32_array(i);
      r.require_length(i, x, need, formula);
      r.require_disjoint(2, c.out, need_out, i, x, need);
      *data = x.data;
      *object = x.object;
    } else {
      const index_arg x = index_array(r, info, i, napi_uint16_array, "a Uint16Array (raw 16-bit floats)", 2);
      require_count(r, i, x.length, need, formula);
      require_apart(r, 2, c.out, need_out, i, x);
      *data = x.data;
      *object = x.object;
    }
  };
  operand(0, c.a_src, d.need_a, "(batch-1)*strideA + M*K", &c.a, &c.a_object);
  operand(1, c.b_src, d.need_b, "(batch-1)*strideB + K*N", &c.b, &c.b_object);
  return c;
}

Napi::Value matmul_mixed(const Napi::CallbackInfo& info) {
  const matmul_mixed_call c = parse_matmul_mixed(info, "matmulMixed");
  run_sync(info.Env(), "matmulMixed", [&] { gemm_mixed(c.out.data, c.a, c.a_src, c.b, c.b_src, c.shape); });
  return info.Env().Undefined();
}

Napi::Value matmul_mixed_async(const Napi::CallbackInfo& info) {
  const matmul_mixed_call c = parse_matmul_mixed(info, "matmulMixedAsync");
  auto* w = new kernel_worker(
      info.Env(), "tessera_cpu.matmulMixedAsync",
      [out = c.out.data, a = c.a, as = c.a_src, b = c.b, bs = c.b_src, shape = c.shape] {
        gemm_mixed(out, a, as, b, bs, shape);
      },
      {c.a_object, c.b_object, c.out.object});
  Napi::Value p = w->promise();
  w->Queue();
  return p;
}


// Kernel-time structure errors become a RangeError (sync) or a rejection naming the call (async).
void run_spmm_sync(Napi::Env env, const char* name, const char* format, const std::function<void()>& work) {
  std::string bad;
  run_sync(env, name, [&] {
    try {
      work();
    } catch (const spmm_format_error& e) {
      bad = e.what();
    }
  });
  if (!bad.empty())
    throw Napi::RangeError::New(env, std::string("tessera_cpu.") + name + ": invalid " + format + ": " + bad);
}

std::function<void()> spmm_async_work(const char* name, const char* format, std::function<void()> work) {
  return [name, format, work = std::move(work)] {
    try {
      work();
    } catch (const spmm_format_error& e) {
      throw std::runtime_error(std::string(name) + ": invalid " + format + ": " + e.what());
    }
  };
}

struct spmm_csr_call {
  index_arg row_ptr, col_idx;
  f32_arg values, b, out;
  spmm_csr_f32_args args;
};

spmm_csr_call parse_spmm_csr(const Napi::CallbackInfo& info, const char* name) {
  const arg_reader r(info, name, {"rowPtr", "colIdx", "values", "b", "out", "M", "K", "N", "nnz"});
  spmm_csr_call c;
  c.row_ptr = index_array(r, info, 0, napi_int32_array, "an Int32Array", 4);
  c.col_idx = index_array(r, info, 1, napi_int32_array, "an Int32Array", 4);
  c.values = r.float32_array(2);
  c.b = r.float32_array(3);
  c.out = r.float32_array(4);
  spmm_csr_f32_args& a = c.args;
  a.m = r.integer(5, 1, k_max_dim, "[1, 2^31-1]");
  a.k = r.integer(6, 1, k_max_dim, "[1, 2^31-1]");
  a.n = r.integer(7, 1, k_max_dim, "[1, 2^31-1]");
  a.nnz = r.integer(8, 0, k_max_dim, "[0, 2^31-1]");
  const uint64_t need_b = size_mul(a.k, a.n);
  const uint64_t need_out = size_mul(a.m, a.n);
  require_count(r, 0, c.row_ptr.length, static_cast<uint64_t>(a.m) + 1, "M+1");
  require_count(r, 1, c.col_idx.length, a.nnz, "nnz");
  r.require_length(2, c.values, a.nnz, "nnz");
  r.require_length(3, c.b, need_b, "K*N");
  r.require_length(4, c.out, need_out, "M*N");
  require_apart(r, 4, c.out, need_out, 0, c.row_ptr);
  require_apart(r, 4, c.out, need_out, 1, c.col_idx);
  r.require_disjoint(4, c.out, need_out, 2, c.values, a.nnz);
  r.require_disjoint(4, c.out, need_out, 3, c.b, need_b);
  a.row_ptr = static_cast<const int32_t*>(c.row_ptr.data);
  a.col_idx = static_cast<const int32_t*>(c.col_idx.data);
  a.values = c.values.data;
  a.b = c.b.data;
  // rowPtr in full here (O(M)); colIdx entry by entry inside the kernel (spmm.cc).
  const std::string bad = csr_row_ptr_error(a.row_ptr, a.m, a.nnz);
  if (!bad.empty()) r.throw_range(r.label(0) + " is not a CSR row pointer: " + bad);
  return c;
}

Napi::Value spmm_csr_f32_sync(const Napi::CallbackInfo& info) {
  const spmm_csr_call c = parse_spmm_csr(info, "spmmCsrF32");
  run_spmm_sync(info.Env(), "spmmCsrF32", "CSR", [&] { spmm_csr_f32(c.out.data, c.args); });
  return info.Env().Undefined();
}

Napi::Value spmm_csr_f32_async(const Napi::CallbackInfo& info) {
  const spmm_csr_call c = parse_spmm_csr(info, "spmmCsrF32Async");
  auto* w = new kernel_worker(
      info.Env(), "tessera_cpu.spmmCsrF32Async",
      spmm_async_work("spmmCsrF32Async", "CSR",
                      [out = c.out.data, args = c.args] { spmm_csr_f32(out, args); }),
      {c.row_ptr.object, c.col_idx.object, c.values.object, c.b.object, c.out.object});
  Napi::Value p = w->promise();
  w->Queue();
  return p;
}

struct spmm_24_call {
  index_arg meta;
  f32_arg values, b, out;
  spmm_24_f32_args args;
};

spmm_24_call parse_spmm_24(const Napi::CallbackInfo& info, const char* name) {
  const arg_reader r(info, name, {"values", "meta", "b", "out", "M", "K", "N"});
  spmm_24_call c;
  c.values = r.float32_array(0);
  c.meta = index_array(r, info, 1, napi_uint8_array, "a Uint8Array", 1);
  c.b = r.float32_array(2);
  c.out = r.float32_array(3);
  spmm_24_f32_args& a = c.args;
  a.m = r.integer(4, 1, k_max_dim, "[1, 2^31-1]");
  a.k = r.integer(5, 1, k_max_dim, "[1, 2^31-1]");
  a.n = r.integer(6, 1, k_max_dim, "[1, 2^31-1]");
  const uint64_t groups = (static_cast<uint64_t>(a.k) + 3) / 4;
  const uint64_t need_values = size_mul(a.m, 2 * groups);
  const uint64_t need_meta = size_mul(a.m, (groups + 1) / 2);
  const uint64_t need_b = size_mul(a.k, a.n);
  const uint64_t need_out = size_mul(a.m, a.n);
  r.require_length(0, c.values, need_values, "M*2*ceil(K/4)");
  require_count(r, 1, c.meta.length, need_meta, "M*ceil(ceil(K/4)/2)");
  r.require_length(2, c.b, need_b, "K*N");
  r.require_length(3, c.out, need_out, "M*N");
  r.require_disjoint(3, c.out, need_out, 0, c.values, need_values);
  require_apart(r, 3, c.out, need_out, 1, c.meta);
  r.require_disjoint(3, c.out, need_out, 2, c.b, need_b);
  a.values = c.values.data;
  a.meta = static_cast<const uint8_t*>(c.meta.data);
  a.b = c.b.data;
  return c;  // meta is validated by the kernel, row block by row block (spmm.cc)
}

Napi::Value spmm_24_f32_sync(const Napi::CallbackInfo& info) {
  const spmm_24_call c = parse_spmm_24(info, "spmm24F32");
  run_spmm_sync(info.Env(), "spmm24F32", "2:4 matrix", [&] { spmm_24_f32(c.out.data, c.args); });
  return info.Env().Undefined();
}

Napi::Value spmm_24_f32_async(const Napi::CallbackInfo& info) {
  const spmm_24_call c = parse_spmm_24(info, "spmm24F32Async");
  auto* w = new kernel_worker(
      info.Env(), "tessera_cpu.spmm24F32Async",
      spmm_async_work("spmm24F32Async", "2:4 matrix",
                      [out = c.out.data, args = c.args] { spmm_24_f32(out, args); }),
      {c.values.object, c.meta.object, c.b.object, c.out.object});
  Napi::Value p = w->promise();
  w->Queue();
  return p;
}

// ---- qgemm (quantized weights) ----------------------------------------------------

// Packed weights live behind a type-tagged External that owns a shared_ptr: JS cannot read or
// forge them, and an async call holds its own shared_ptr, so GC never frees them mid-kernel.
constexpr napi_type_tag k_qgemm_tag = {0x74657373657261ull, 0x7167656d6d706b31ull};

struct qgemm_holder {
  std::shared_ptr<const qgemm_packed> packed;
};

qgemm_dtype parse_qdtype(const arg_reader& r, const Napi::CallbackInfo& info, size_t i) {
  const Napi::Value v = info[i];
  if (!v.IsString()) r.throw_type(r.label(i) + " must be a string");
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "int8") return qgemm_dtype::int8;
  if (s == "int4") return qgemm_dtype::int4;
  if (s == "uint4") return qgemm_dtype::uint4;
  if (s == "float8_e4m3fn") return qgemm_dtype::fp8_e4m3fn;
  r.throw_range(r.label(i) + " must be one of int8, int4, uint4, float8_e4m3fn");
}

Napi::Value qgemm_prepack_js(const Napi::CallbackInfo& info) {
  const arg_reader r(info, "qgemmPrepack",
                     {"qdtype", "K", "N", "groupSize", "perTensor", "values", "scales", "zeros"});
  qgemm_weights w;
  w.dtype = parse_qdtype(r, info, 0);
  w.k = r.integer(1, 1, k_max_dim, "[1, 2^31-1]");
  w.n = r.integer(2, 1, k_max_dim, "[1, 2^31-1]");
  w.group_size = r.integer(3, 1, k_max_dim, "[1, 2^31-1]");
  w.per_tensor = r.boolean(4);
  if (w.group_size > w.k) r.throw_range(r.label(3) + " must be <= K (per-channel is groupSize = K)");
  if (w.per_tensor && w.group_size != w.k) r.throw_range(r.label(3) + " must equal K when perTensor");
  const bool four = w.dtype == qgemm_dtype::int4 || w.dtype == qgemm_dtype::uint4;
  const index_arg values =
      w.dtype == qgemm_dtype::int8 ? index_array(r, info, 5, napi_int8_array, "an Int8Array", 1)
                                   : index_array(r, info, 5, napi_uint8_array, "a Uint8Array", 1);
  const uint64_t kn = size_mul(w.k, w.n);
  const uint64_t need_values = four ? (kn >= k_too_big ? kn : (kn + 1) / 2) : kn;
  require_count(r, 5, values.length, need_values, four ? "ceil(K*N/2)" : "K*N");
  const f32_arg scales = r.float32_array(6);
  const uint64_t need_scales =
      w.per_tensor ? 1 : size_mul((static_cast<uint64_t>(w.k) + w.group_size - 1) / w.group_size, w.n);
  r.require_length(6, scales, need_scales, w.per_tensor ? "1" : "ceil(K/groupSize)*N");
  f32_arg zeros;
  if (w.dtype == qgemm_dtype::uint4) {
    zeros = r.float32_array(7);
    r.require_length(7, zeros, need_scales, "like scales");
  } else if (!info[7].IsNull()) {
    r.throw_type(r.label(7) + " must be null for " + info[0].As<Napi::String>().Utf8Value());
  }
  if (values.length != need_values || scales.length != need_scales ||
      (zeros.data && zeros.length != need_scales))
    r.throw_range("values, scales and zeros must have exactly the lengths the shape implies");
  w.values = static_cast<const uint8_t*>(values.data);
  w.scales = scales.data;
  w.zeros = zeros.data;
  const std::string bad = qgemm_check_scales(w);
  if (!bad.empty()) r.throw_range(bad);
  if (qgemm_packed_bytes(w) >= k_too_big) r.throw_range("the packed weights would need more than 2^53 bytes");
  Napi::Env env = info.Env();
  auto holder = std::make_unique<qgemm_holder>();
  run_sync(env, "qgemmPrepack", [&] { holder->packed = qgemm_prepack(w); });
  const int64_t bytes = static_cast<int64_t>(qgemm_bytes(*holder->packed));
  Napi::External<qgemm_holder> ext = Napi::External<qgemm_holder>::New(
      env, holder.get(), [bytes](Napi::Env e, qgemm_holder* h) {
        delete h;
        int64_t ignored = 0;
        napi_adjust_external_memory(e, -bytes, &ignored);
      });
  holder.release();  // owned by the External's finalizer now
  ext.TypeTag(&k_qgemm_tag);
  int64_t ignored = 0;
  napi_adjust_external_memory(env, bytes, &ignored);
  return ext;
}

struct qgemm_call {
  std::shared_ptr<const qgemm_packed> packed;
  Napi::Object x_object;
  const void* x = nullptr;
  qgemm_act act = qgemm_act::f32;
  f32_arg out;
  int64_t m = 0;
  bool act8 = false;
};

qgemm_call parse_qgemm(const Napi::CallbackInfo& info, const char* name) {
  const arg_reader r(info, name, {"packed", "x", "out", "M", "xDtype", "activations"});
  qgemm_call c;
  const Napi::Value pv = info[0];
  if (pv.Type() != napi_external || !pv.As<Napi::External<qgemm_holder>>().CheckTypeTag(&k_qgemm_tag))
    r.throw_type(r.label(0) + " must be packed weights from qgemmPrepack");
  c.packed = pv.As<Napi::External<qgemm_holder>>().Data()->packed;
  if (!info[4].IsString()) r.throw_type(r.label(4) + " must be a string");
  const std::string act = info[4].As<Napi::String>().Utf8Value();
  if (act == "bfloat16") c.act = qgemm_act::bf16;
  else if (act == "float16") c.act = qgemm_act::f16;
  else if (act != "float32") r.throw_range(r.label(4) + " must be float32, bfloat16 or float16");
  if (!info[5].IsString()) r.throw_type(r.label(5) + " must be a string");
  const std::string acts = info[5].As<Napi::String>().Utf8Value();
  if (acts != "float" && acts != "int8") r.throw_range(r.label(5) + " must be float or int8");
  c.act8 = acts == "int8";
  if (c.act8 && !qgemm_takes_act8(*c.packed))
    r.throw_range(r.label(5) + " int8 needs int4 or uint4 weights (int8 weights always quantize activations, fp8 never)");
  c.out = r.float32_array(2);
  c.m = r.integer(3, 1, k_max_dim, "[1, 2^31-1]");
  const uint64_t need_x = size_mul(c.m, qgemm_k(*c.packed));
  const uint64_t need_out = size_mul(c.m, qgemm_n(*c.packed));
  r.require_length(2, c.out, need_out, "M*N");
  if (c.act == qgemm_act::f32) {
    const f32_arg x = r.float32_array(1);
    r.require_length(1, x, need_x, "M*K");
    r.require_disjoint(2, c.out, need_out, 1, x, need_x);
    c.x = x.data;
    c.x_object = x.object;
  } else {
    const index_arg x = index_array(r, info, 1, napi_uint16_array, "a Uint16Array (raw 16-bit floats)", 2);
    require_count(r, 1, x.length, need_x, "M*K");
    require_apart(r, 2, c.out, need_out, 1, x);
    c.x = x.data;
    c.x_object = x.object;
  }
  return c;
}

Napi::Value qgemm_sync(const Napi::CallbackInfo& info) {
  const qgemm_call c = parse_qgemm(info, "qgemm");
  run_sync(info.Env(), "qgemm", [&] { qgemm(c.out.data, c.x, c.act, c.m, *c.packed, c.act8); });
  return info.Env().Undefined();
}

Napi::Value qgemm_async(const Napi::CallbackInfo& info) {
  const qgemm_call c = parse_qgemm(info, "qgemmAsync");
  auto* w = new kernel_worker(
      info.Env(), "tessera_cpu.qgemmAsync",
      [out = c.out.data, x = c.x, act = c.act, m = c.m, packed = c.packed, act8 = c.act8] {
        qgemm(out, x, act, m, *packed, act8);
      },
      {c.x_object, c.out.object});
  Napi::Value p = w->promise();
  w->Queue();
  return p;
}

// ---- allocF32 ---------------------------------------------------------------------

// node runs an external buffer's finalizer on the JS thread, once nothing references the ArrayBuffer.
void return_block(napi_env, void*, void* hint) { pool_lease_finalize(static_cast<pool_lease*>(hint)); }

// A kernel output of n float32 (contents unspecified): a pooled block wrapped as an external ArrayBuffer,
// or null when n * 4 < k_pool_min_bytes (the caller allocates small outputs itself).
Napi::Value alloc_f32_js(const Napi::CallbackInfo& info) {
  const arg_reader r(info, "allocF32", {"n"});
  Napi::Env env = info.Env();
  const size_t n = static_cast<size_t>(r.integer(0, 1, k_max_dim, "[1, 2^31-1]"));
  const size_t bytes = n * sizeof(float);
  if (bytes < k_pool_min_bytes) return env.Null();
  pool_lease* lease = pool_lease_take(bytes);
  if (lease == nullptr) {
    throw Napi::RangeError::New(env, "allocF32: out of memory for " + std::to_string(bytes) + " bytes");
  }
  napi_value ab;
  if (napi_create_external_arraybuffer(env, pool_lease_data(lease), bytes, return_block, lease, &ab) !=
      napi_ok) {
    pool_lease_finalize(lease);
    throw Napi::Error::New(env, "allocF32: could not wrap " + std::to_string(bytes) + " bytes as an ArrayBuffer");
  }
  return Napi::Float32Array::New(env, n, Napi::ArrayBuffer(env, ab), 0);
}

// releaseF32(a): hands the pooled block behind a (a Float32Array from allocF32, over its whole
// ArrayBuffer) back now instead of at garbage collection: the ArrayBuffer is detached first, so every JS
// view of it reads as empty from then on and the block's next owner is alone with it. The caller
// guarantees no native work still uses the memory (lib: dispose of the last tensor on it, async ops
// hold their inputs). Anything else (not ours, a sub-view, already released) is left alone: false.
Napi::Value release_f32_js(const Napi::CallbackInfo& info) {
  const arg_reader r(info, "releaseF32", {"a"});
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) return Napi::Boolean::New(env, false);
  const Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_float32_array || ta.ByteOffset() != 0) return Napi::Boolean::New(env, false);
  Napi::ArrayBuffer ab = ta.ArrayBuffer();
  const size_t bytes = ab.ByteLength();
  if (bytes == 0 || ta.ByteLength() != bytes) return Napi::Boolean::New(env, false);
  pool_lease* lease = pool_lease_find(ab.Data(), bytes);
  if (lease == nullptr) return Napi::Boolean::New(env, false);
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok || detached) {
    return Napi::Boolean::New(env, false);
  }
  if (napi_detach_arraybuffer(env, ab) != napi_ok) return Napi::Boolean::New(env, false);
  pool_lease_return(lease);
  return Napi::Boolean::New(env, true);
}

Napi::Value pool_cached_js(const Napi::CallbackInfo& info) {
  const arg_reader r(info, "poolCachedBytes", {});
  return Napi::Number::New(info.Env(), double(pool_cached_bytes()));
}

// peakRate(kind, seconds, parallel): kind 0 = fp32 FMA, 1 = exact int8 (peak.h); ops per second,
// 0 without an AVX2+FMA path.
Napi::Value peak_rate_js(const Napi::CallbackInfo& info) {
  const arg_reader r(info, "peakRate", {"kind", "seconds", "parallel"});
  const auto kind = r.integer(0, 0, 1, "0 (fp32) or 1 (int8)") == 0 ? peak_kind::fp32 : peak_kind::int8;
  const double seconds = r.finite_number(1);
  if (!(seconds >= 1e-3 && seconds <= 10.0)) r.throw_range(r.label(1) + " must be in [0.001, 10]");
  return Napi::Number::New(info.Env(), peak_rate(kind, seconds, r.boolean(2)));
}

// readBandwidth(bytes, seconds, parallel): sequential read bandwidth in bytes per second over a fresh
// buffer of `bytes` (peak.h).
Napi::Value read_bandwidth_js(const Napi::CallbackInfo& info) {
  const arg_reader r(info, "readBandwidth", {"bytes", "seconds", "parallel"});
  const double bytes = r.finite_number(0);
  if (!(bytes >= 1048576.0 && bytes <= 1073741824.0)) r.throw_range(r.label(0) + " must be in [2^20, 2^30]");
  const double seconds = r.finite_number(1);
  if (!(seconds >= 1e-3 && seconds <= 10.0)) r.throw_range(r.label(1) + " must be in [0.001, 10]");
  const bool parallel = r.boolean(2);
  double rate = 0.0;
  try {
    rate = read_bandwidth(bytes, seconds, parallel);
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(info.Env(), "readBandwidth: out of memory for a " + std::to_string(static_cast<int64_t>(bytes)) + "-byte buffer");
  }
  return Napi::Number::New(info.Env(), rate);
}

// ---- info / threads -------------------------------------------------------------

Napi::Value info_js(const Napi::CallbackInfo& info) {
  const arg_reader r(info, "info", {});
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", k_version);
  o.Set("simd", simd_name(active_simd()));
  o.Set("threads", num_threads());
  o.Set("napiVersion", NAPI_VERSION);
#if defined(__clang__)
  o.Set("compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
  o.Set("compiler", "gcc " __VERSION__);
#elif defined(_MSC_VER)
  o.Set("compiler", "msvc " + std::to_string(_MSC_FULL_VER));
#else
  o.Set("compiler", "unknown");
#endif
  return o;
}

Napi::Value set_num_threads_js(const Napi::CallbackInfo& info) {
  const arg_reader r(info, "setNumThreads", {"n"});
  set_num_threads(static_cast<int>(r.integer(0, 1, k_max_threads, "[1, 256]")));
  return info.Env().Undefined();
}

Napi::Value get_num_threads_js(const Napi::CallbackInfo& info) {
  const arg_reader r(info, "getNumThreads", {});
  return Napi::Number::New(info.Env(), num_threads());
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
  active_simd();  // read TESSERA_SIMD / CPUID once, at load
  exports.Set("info", Napi::Function::New(env, info_js, "info"));
  exports.Set("allocF32", Napi::Function::New(env, alloc_f32_js, "allocF32"));
  exports.Set("releaseF32", Napi::Function::New(env, release_f32_js, "releaseF32"));
  exports.Set("poolCachedBytes", Napi::Function::New(env, pool_cached_js, "poolCachedBytes"));
  exports.Set("peakRate", Napi::Function::New(env, peak_rate_js, "peakRate"));
  exports.Set("readBandwidth", Napi::Function::New(env, read_bandwidth_js, "readBandwidth"));
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads_js, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, get_num_threads_js, "getNumThreads"));
  exports.Set("matmulF32", Napi::Function::New(env, matmul_f32, "matmulF32"));
  exports.Set("matmulMixed", Napi::Function::New(env, matmul_mixed, "matmulMixed"));
  exports.Set("matmulMixedAsync", Napi::Function::New(env, matmul_mixed_async, "matmulMixedAsync"));
  exports.Set("matmulF32Async", Napi::Function::New(env, matmul_f32_async, "matmulF32Async"));
  exports.Set("attentionF32", Napi::Function::New(env, attention_f32_sync, "attentionF32"));
  exports.Set("attentionF32Async",
              Napi::Function::New(env, attention_f32_async, "attentionF32Async"));
  exports.Set("spmmCsrF32", Napi::Function::New(env, spmm_csr_f32_sync, "spmmCsrF32"));
  exports.Set("spmmCsrF32Async", Napi::Function::New(env, spmm_csr_f32_async, "spmmCsrF32Async"));
  exports.Set("spmm24F32", Napi::Function::New(env, spmm_24_f32_sync, "spmm24F32"));
  exports.Set("spmm24F32Async", Napi::Function::New(env, spmm_24_f32_async, "spmm24F32Async"));
  exports.Set("qgemmPrepack", Napi::Function::New(env, qgemm_prepack_js, "qgemmPrepack"));
  exports.Set("qgemm", Napi::Function::New(env, qgemm_sync, "qgemm"));
  exports.Set("qgemmAsync", Napi::Function::New(env, qgemm_async, "qgemmAsync"));
  return exports;
}

}  // namespace tessera

static Napi::Object init_tessera_cpu(Napi::Env env, Napi::Object exports) {
  return tessera::init(env, exports);
}

NODE_API_MODULE(tessera_cpu, init_tessera_cpu)
