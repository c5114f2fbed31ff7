// addon: the tessera_cpu N-API surface. Narrow on purpose:
//   info() -> { version, simd, threads, napiVersion, compiler }
//   setNumThreads(n), getNumThreads()
//   matmulF32(a, b, out, batch, M, N, K, strideA, strideB, transA, transB)
//   matmulF32Async(...same) -> Promise<void>
//   attentionF32(q, k, v, out, B, Hq, Hkv, Sq, Sk, D, Dv, scale, causal, kvOffset)
//   attentionF32Async(...same) -> Promise<void>
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
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "attention.h"
#include "cpu_features.h"
#include "gemm.h"
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

matmul_call parse_matmul(const Napi::CallbackInfo& info, const char* name) {
  const arg_reader r(info, name,
                     {"a", "b", "out", "batch", "M", "N", "K", "strideA", "strideB", "transA",
                      "transB"});
  matmul_call c;
  c.a = r.float32_array(0);
  c.b = r.float32_array(1);
  c.out = r.float32_array(2);
  gemm_f32_shape& s = c.shape;
  s.batch = r.integer(3, 1, k_max_dim, "[1, 2^31-1]");
  s.m = r.integer(4, 1, k_max_dim, "[1, 2^31-1]");
  s.n = r.integer(5, 1, k_max_dim, "[1, 2^31-1]");
  s.k = r.integer(6, 1, k_max_dim, "[1, 2^31-1]");
  s.stride_a = r.integer(7, 0, k_max_safe, "[0, 2^53-1]");
  s.stride_b = r.integer(8, 0, k_max_safe, "[0, 2^53-1]");
  s.trans_a = r.boolean(9);
  s.trans_b = r.boolean(10);

  const uint64_t batch_m1 = static_cast<uint64_t>(s.batch - 1);
  const uint64_t need_a = size_add(size_mul(batch_m1, s.stride_a), size_mul(s.m, s.k));
  const uint64_t need_b = size_add(size_mul(batch_m1, s.stride_b), size_mul(s.k, s.n));
  const uint64_t need_out = size_mul(size_mul(s.batch, s.m), s.n);
  r.require_length(0, c.a, need_a, "(batch-1)*strideA + M*K");
  r.require_length(1, c.b, need_b, "(batch-1)*strideB + K*N");
  r.require_length(2, c.out, need_out, "batch*M*N");
  r.require_disjoint(2, c.out, need_out, 0, c.a, need_a);
  r.require_disjoint(2, c.out, need_out, 1, c.b, need_b);
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
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads_js, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, get_num_threads_js, "getNumThreads"));
  exports.Set("matmulF32", Napi::Function::New(env, matmul_f32, "matmulF32"));
  exports.Set("matmulF32Async", Napi::Function::New(env, matmul_f32_async, "matmulF32Async"));
  exports.Set("attentionF32", Napi::Function::New(env, attention_f32_sync, "attentionF32"));
  exports.Set("attentionF32Async",
              Napi::Function::New(env, attention_f32_async, "attentionF32Async"));
  return exports;
}

}  // namespace tessera

static Napi::Object init_tessera_cpu(Napi::Env env, Napi::Object exports) {
  return tessera::init(env, exports);
}

NODE_API_MODULE(tessera_cpu, init_tessera_cpu)
