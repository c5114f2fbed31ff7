// addon.cc: the N-API surface of the CUDA backend. Nothing here computes; it checks every JS value,
// calls one function of device/memory/elementwise, and turns a failed Status into a JS exception.
//
// Exports (the TypeScript view is CudaBinding in lib/backends/cuda/native.ts):
//   deviceInfo()                                   never throws
//   malloc(bytes) -> handle                        handle: External owning one device allocation
//   free(handle)
//   memcpyHtoD(handle, dstByteOffset, typedArray)  whole typed array -> device
//   memcpyDtoH(typedArray, handle, srcByteOffset)  device -> whole typed array
//   memcpyDtoD(dst, dstByteOffset, src, srcByteOffset, bytes)
//   memcpyDtoHAsync(typedArray, handle, srcByteOffset) -> Promise<typedArray>
//   synchronize(), memInfo() -> {free, total}
//   addF32(a, b, out, n), fillF32(buf, value, n)
//   emptyCache, allocatorStats, resetPeakStats and the tensor kernels: see ops_addon.cc
//   attention(q, k, v, out, params), attentionUnsupported(params), attentionTime(...)   (see below)
//   eventRecord, eventRecordDeferred, eventElapsedNs, eventRelease, eventPoolStats: CUDA events for the profiler (see below)
// Errors carry `code` from lib/errors.ts: E_TYPE (TypeError), E_ARG (RangeError), E_DISPOSED (freed
// handle), E_DETACHED, E_OOM (message starts "CUDA out of memory"), E_BACKEND (no device), E_NATIVE.
//
// Handles are type-tagged Externals, so a foreign External cannot pass for one. The finalizer frees
// memory the JS side forgot (a GC backstop); after an explicit free() it only deletes the record.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "attention.cuh"
#include "device.cuh"
#include "elementwise.cuh"
#include "events.cuh"
#include "memory.cuh"
#include "ops_addon.h"
#include "napi_errors.h"

namespace tc = tessera_cuda;
using namespace tessera_cuda::js;

namespace {

constexpr napi_type_tag kBufferTag = {0x7465737365726163ULL, 0x7564616275663031ULL};  // "tesserac" "udabuf01"

const char* type_name(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
    default: return v.IsTypedArray() ? "typed array" : v.IsArray() ? "array" : "object";
  }
}

// A byte count, offset or element count: a Number that is a non-negative safe integer.
size_t arg_size(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  const Napi::Value v = info[i];
  if (!v.IsNumber()) {
    throw_type(info.Env(), std::string(fn) + ": " + name + " must be a number, got " + type_name(v));
  }
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > kMaxSafeInteger || std::floor(d) != d) {
    throw_range(info.Env(), std::string(fn) + ": " + name + " must be a non-negative integer, got " +
                                v.ToString().Utf8Value());
  }
  return static_cast<size_t>(d);
}

tc::DeviceBuffer* arg_buffer(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name,
                             bool allow_freed = false) {
  const Napi::Value v = info[i];
  if (!v.IsExternal() || !v.As<Napi::External<tc::DeviceBuffer>>().CheckTypeTag(&kBufferTag)) {
    throw_type(info.Env(), std::string(fn) + ": " + name + " must be a CUDA buffer handle from malloc(), got " +
                               type_name(v));
  }
  tc::DeviceBuffer* buf = v.As<Napi::External<tc::DeviceBuffer>>().Data();
  if (buf->freed && !allow_freed) {
    throw with_code(Napi::Error::New(info.Env(), std::string(fn) + ": " + name + " was freed"), "E_DISPOSED");
  }
  return buf;
}

struct HostView {
  void* data = nullptr;
  size_t bytes = 0;
};

// The bytes of a TypedArray (any element type, plain or shared buffer) as they are right now.
bool view_of(Napi::Env env, napi_value value, HostView* out) {
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value buffer;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, &buffer, &offset) != napi_ok) return false;
  bool detached = false;
  napi_is_detached_arraybuffer(env, buffer, &detached);  // false for a SharedArrayBuffer
  if (detached) return false;
  out->data = data;
  out->bytes = Napi::TypedArray(env, value).ByteLength();
  return true;
}

HostView arg_view(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  const Napi::Value v = info[i];
  if (!v.IsTypedArray()) {
    throw_type(info.Env(), std::string(fn) + ": " + name + " must be a TypedArray, got " + type_name(v));
  }
  HostView view;
  if (!view_of(info.Env(), v, &view)) {
    throw with_code(Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + "'s ArrayBuffer is detached"),
                    "E_DETACHED");
  }
  return view;
}

void finalize_buffer(Napi::Env, tc::DeviceBuffer* buf) {
  if (!buf->freed) tc::buffer_free(buf);  // GC backstop: nowhere to report a failure
  delete buf;
}

// For ops_addon.cc: the buffer behind one of our handles, or nullptr for any other value.
tc::DeviceBuffer* unwrap_buffer(const Napi::Value& v) {
  if (!v.IsExternal() || !v.As<Napi::External<tc::DeviceBuffer>>().CheckTypeTag(&kBufferTag)) return nullptr;
  return v.As<Napi::External<tc::DeviceBuffer>>().Data();
}

Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const tc::DeviceReport r = tc::device_report();
  Napi::Object out = Napi::Object::New(env);
  out.Set("available", Napi::Boolean::New(env, r.available));
  out.Set("reason", Napi::String::New(env, r.reason));
  out.Set("count", Napi::Number::New(env, r.count));
  Napi::Array devices = Napi::Array::New(env, r.devices.size());
  for (size_t i = 0; i < r.devices.size(); ++i) {
    const tc::DeviceProps& d = r.devices[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, d.index));
    o.Set("name", Napi::String::New(env, d.name));
    o.Set("major", Napi::Number::New(env, d.major));
    o.Set("minor", Napi::Number::New(env, d.minor));
    o.Set("totalMem", Napi::Number::New(env, d.total_mem));
    o.Set("smCount", Napi::Number::New(env, d.sm_count));
    o.Set("driverVersion", Napi::Number::New(env, r.driver_version));
    o.Set("runtimeVersion", Napi::Number::New(env, r.runtime_version));
    devices.Set(static_cast<uint32_t>(i), o);
  }
  out.Set("devices", devices);
  return out;
}

Napi::Value Malloc(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "malloc");
  const size_t bytes = arg_size(info, 0, "malloc", "bytes");
  auto* buf = new tc::DeviceBuffer();
  const tc::Status s = tc::buffer_alloc(buf, bytes);
  if (!s.ok()) {
    delete buf;
    throw js_error(info.Env(), s);
  }
  auto handle = Napi::External<tc::DeviceBuffer>::New(info.Env(), buf, finalize_buffer);
  handle.TypeTag(&kBufferTag);
  return handle;
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "free");
  check(info.Env(), tc::buffer_free(arg_buffer(info, 0, "free", "handle", /*allow_freed=*/true)));
  return info.Env().Undefined();
}

Napi::Value MemcpyHtoD(const Napi::CallbackInfo& info) {
  expect_args(info, 3, "memcpyHtoD");
  tc::DeviceBuffer* dst = arg_buffer(info, 0, "memcpyHtoD", "handle");
  const size_t off = arg_size(info, 1, "memcpyHtoD", "dstByteOffset");
  const HostView src = arg_view(info, 2, "memcpyHtoD", "typedArray");
  check(info.Env(), tc::copy_h2d(dst, off, src.data, src.bytes));
  return info.Env().Undefined();
}

Napi::Value MemcpyDtoH(const Napi::CallbackInfo& info) {
  expect_args(info, 3, "memcpyDtoH");
  const HostView dst = arg_view(info, 0, "memcpyDtoH", "typedArray");
  const tc::DeviceBuffer* src = arg_buffer(info, 1, "memcpyDtoH", "handle");
  const size_t off = arg_size(info, 2, "memcpyDtoH", "srcByteOffset");
  check(info.Env(), tc::copy_d2h(dst.data, *src, off, dst.bytes));
  return info.Env().Undefined();
}

Napi::Value MemcpyDtoD(const Napi::CallbackInfo& info) {
  expect_args(info, 5, "memcpyDtoD");
  tc::DeviceBuffer* dst = arg_buffer(info, 0, "memcpyDtoD", "dst");
  const size_t dst_off = arg_size(info, 1, "memcpyDtoD", "dstByteOffset");
  const tc::DeviceBuffer* src = arg_buffer(info, 2, "memcpyDtoD", "src");
  const size_t src_off = arg_size(info, 3, "memcpyDtoD", "srcByteOffset");
  const size_t bytes = arg_size(info, 4, "memcpyDtoD", "bytes");
  check(info.Env(), tc::copy_d2d(dst, dst_off, *src, src_off, bytes));
  return info.Env().Undefined();
}

// Waits for a queued device -> pinned copy on the libuv pool, then copies into the typed array on the
// JS thread. Holds references to the typed array and the handle so neither is collected meanwhile.
class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, Napi::Value dst, Napi::Value handle)
      : Napi::AsyncWorker(env, "tessera_cuda.memcpyDtoHAsync"),
        deferred_(Napi::Promise::Deferred::New(env)),
        dst_(Napi::Persistent(dst.As<Napi::Object>())),
        handle_(Napi::Persistent(handle)) {}
  ~ReadWorker() override { tc::read_end(&pending_); }

  tc::Status Begin(const tc::DeviceBuffer& src, size_t offset, size_t bytes) {
    return tc::read_begin(&pending_, src, offset, bytes);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    status_ = tc::read_wait(pending_);
    if (!status_.ok()) SetError(status_.message);
  }

  void OnOK() override {
    Napi::Env env = Env();
    HostView view;
    // The array may have been detached or shrunk (resizable ArrayBuffer) while the copy ran.
    if (!view_of(env, dst_.Value(), &view) || view.bytes < pending_.bytes) {
      deferred_.Reject(with_code(Napi::TypeError::New(env, "memcpyDtoHAsync: typedArray was detached or "
                                                           "shrunk before the copy completed"),
                                 "E_DETACHED")
                           .Value());
      return;
    }
    if (pending_.bytes > 0) std::memcpy(view.data, pending_.staging, pending_.bytes);
    tc::read_end(&pending_);
    deferred_.Resolve(dst_.Value());
  }

  void OnError(const Napi::Error&) override { deferred_.Reject(js_error(Env(), status_).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  tc::PendingRead pending_;
  tc::Status status_;
  Napi::ObjectReference dst_;
  Napi::Reference<Napi::Value> handle_;
};

Napi::Value MemcpyDtoHAsync(const Napi::CallbackInfo& info) {
  expect_args(info, 3, "memcpyDtoHAsync");
  const HostView dst = arg_view(info, 0, "memcpyDtoHAsync", "typedArray");
  const tc::DeviceBuffer* src = arg_buffer(info, 1, "memcpyDtoHAsync", "handle");
  const size_t off = arg_size(info, 2, "memcpyDtoHAsync", "srcByteOffset");
  auto worker = std::make_unique<ReadWorker>(info.Env(), info[0], info[1]);
  check(info.Env(), worker->Begin(*src, off, dst.bytes));
  Napi::Promise promise = worker->Promise();
  worker.release()->Queue();  // a queued AsyncWorker deletes itself after OnOK/OnError
  return promise;
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  expect_args(info, 0, "synchronize");
  check(info.Env(), tc::synchronize());
  return info.Env().Undefined();
}

Napi::Value MemInfo(const Napi::CallbackInfo& info) {
  expect_args(info, 0, "memInfo");
  size_t free_b = 0, total_b = 0;
  check(info.Env(), tc::mem_info(&free_b, &total_b));
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("free", Napi::Number::New(info.Env(), static_cast<double>(free_b)));
  out.Set("total", Napi::Number::New(info.Env(), static_cast<double>(total_b)));
  return out;
}

Napi::Value AddF32(const Napi::CallbackInfo& info) {
  expect_args(info, 4, "addF32");
  const tc::DeviceBuffer* a = arg_buffer(info, 0, "addF32", "a");
  const tc::DeviceBuffer* b = arg_buffer(info, 1, "addF32", "b");
  tc::DeviceBuffer* out = arg_buffer(info, 2, "addF32", "out");
  const size_t n = arg_size(info, 3, "addF32", "n");
  check(info.Env(), tc::add_f32(out, *a, *b, n));
  return info.Env().Undefined();
}

Napi::Value FillF32(const Napi::CallbackInfo& info) {
  expect_args(info, 3, "fillF32");
  tc::DeviceBuffer* buf = arg_buffer(info, 0, "fillF32", "buf");
  if (!info[1].IsNumber()) {
    throw_type(info.Env(), std::string("fillF32: value must be a number, got ") + type_name(info[1]));
  }
  // IEEE double -> float conversion, the same rounding as Math.fround (out-of-range values become ±Inf).
  const float value = static_cast<float>(info[1].As<Napi::Number>().DoubleValue());
  const size_t n = arg_size(info, 2, "fillF32", "n");
  check(info.Env(), tc::fill_f32(buf, value, n));
  return info.Env().Undefined();
}

// ---- attention (cuda/attention.cuh) ----
// attention(q, k, v, out, params) -> the variant that ran; attentionUnsupported(params) -> '' or why not; attentionTime(q, k, v, out, params, iters, warmup)
//   -> {variant, ms: number[]}. params: {dtype: 'float16'|'bfloat16', B, Hq, Hkv, Sq, Sk, D, Dv, causal,
//   scale, kvOffset, qOffset, kOffset, vOffset, outOffset (elements), variant: 'auto'|'mma'|'decode'|'sm90'|'sm90pp'|'sm90s3'|'sm90w3'}

int64_t attn_int(const Napi::Object& o, const char* key, const char* fn, bool allow_negative = false) {
  const Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_type(o.Env(), std::string(fn) + ": params." + key + " must be a number, got " + type_name(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > kMaxSafeInteger || (!allow_negative && d < 0)) {
    throw_range(o.Env(), std::string(fn) + ": params." + key + " must be a " + (allow_negative ? "" : "non-negative ") +
                             "integer, got " + v.ToString().Utf8Value());
  }
  return static_cast<int64_t>(d);
}

tc::AttnShape attn_params(const Napi::CallbackInfo& info, size_t i, const char* fn, tc::AttnVariant* variant) {
  if (!info[i].IsObject()) throw_type(info.Env(), std::string(fn) + ": params must be an object, got " + type_name(info[i]));
  const Napi::Object o = info[i].As<Napi::Object>();
  tc::AttnShape s;
  const std::string dt = o.Get("dtype").ToString().Utf8Value();
  if (dt == "bfloat16") s.dtype = tc::AttnDtype::bfloat16;
  else if (dt == "float16") s.dtype = tc::AttnDtype::float16;
  else throw_range(info.Env(), std::string(fn) + ": params.dtype must be 'float16' or 'bfloat16', got " + dt);
  s.B = attn_int(o, "B", fn), s.Hq = attn_int(o, "Hq", fn), s.Hkv = attn_int(o, "Hkv", fn);
  s.Sq = attn_int(o, "Sq", fn), s.Sk = attn_int(o, "Sk", fn), s.D = attn_int(o, "D", fn), s.Dv = attn_int(o, "Dv", fn);
  for (int64_t d : {s.B, s.Hq, s.Hkv, s.Sq, s.Sk, s.D, s.Dv}) {
    if (d > (int64_t(1) << 31)) throw_range(info.Env(), std::string(fn) + ": a dimension exceeds 2^31");
  }
  s.kv_offset = attn_int(o, "kvOffset", fn, /*allow_negative=*/true);
  s.q_off = attn_int(o, "qOffset", fn), s.k_off = attn_int(o, "kOffset", fn);
  s.v_off = attn_int(o, "vOffset", fn), s.o_off = attn_int(o, "outOffset", fn);
  const Napi::Value causal = o.Get("causal"), scale = o.Get("scale");
  if (!causal.IsBoolean()) throw_type(info.Env(), std::string(fn) + ": params.causal must be a boolean");
  if (!scale.IsNumber()) throw_type(info.Env(), std::string(fn) + ": params.scale must be a number");
  s.causal = causal.As<Napi::Boolean>().Value();
  s.scale = static_cast<float>(scale.As<Napi::Number>().DoubleValue());
  const Napi::Value var = o.Get("variant");
  const std::string vs = var.IsUndefined() ? "auto" : var.ToString().Utf8Value();
  if (vs == "auto") *variant = tc::AttnVariant::automatic;
  else if (vs == "mma") *variant = tc::AttnVariant::mma;
  else if (vs == "decode") *variant = tc::AttnVariant::decode;
  else if (vs == "sm90") *variant = tc::AttnVariant::sm90;
  else if (vs == "sm90pp") *variant = tc::AttnVariant::sm90pp;
  else if (vs == "sm90s3") *variant = tc::AttnVariant::sm90s3;
  else if (vs == "sm90w3") *variant = tc::AttnVariant::sm90w3;
  else throw_range(info.Env(), std::string(fn) + ": params.variant must be auto, mma, decode or sm90[pp|s3|w3], got " + vs);
  return s;
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  expect_args(info, 5, "attention");
  const tc::DeviceBuffer* q = arg_buffer(info, 0, "attention", "q");
  const tc::DeviceBuffer* k = arg_buffer(info, 1, "attention", "k");
  const tc::DeviceBuffer* v = arg_buffer(info, 2, "attention", "v");
  tc::DeviceBuffer* out = arg_buffer(info, 3, "attention", "out");
  tc::AttnVariant variant;
  const tc::AttnShape s = attn_params(info, 4, "attention", &variant);
  tc::AttnVariant ran = variant;
  check(info.Env(), tc::attention_forward(out, *q, *k, *v, s, variant, &ran));
  return Napi::String::New(info.Env(), tc::attention_variant_name(ran));
}

Napi::Value AttentionUnsupported(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "attentionUnsupported");
  tc::AttnVariant variant;
  const tc::AttnShape s = attn_params(info, 0, "attentionUnsupported", &variant);
  return Napi::String::New(info.Env(), tc::attention_unsupported(s, variant));
}

Napi::Value AttentionTime(const Napi::CallbackInfo& info) {
  expect_args(info, 7, "attentionTime");
  const tc::DeviceBuffer* q = arg_buffer(info, 0, "attentionTime", "q");
  const tc::DeviceBuffer* k = arg_buffer(info, 1, "attentionTime", "k");
  const tc::DeviceBuffer* v = arg_buffer(info, 2, "attentionTime", "v");
  tc::DeviceBuffer* out = arg_buffer(info, 3, "attentionTime", "out");
  tc::AttnVariant variant, ran;
  const tc::AttnShape s = attn_params(info, 4, "attentionTime", &variant);
  const size_t iters = arg_size(info, 5, "attentionTime", "iters"), warmup = arg_size(info, 6, "attentionTime", "warmup");
  if (iters < 1 || iters > 10000 || warmup > 10000) throw_range(info.Env(), "attentionTime: iters must be 1..10000, warmup <= 10000");
  std::vector<float> ms(iters);
  check(info.Env(), tc::attention_time(ms.data(), int(iters), int(warmup), &ran, out, *q, *k, *v, s, variant));
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("variant", Napi::String::New(info.Env(), tc::attention_variant_name(ran)));
  Napi::Array arr = Napi::Array::New(info.Env(), iters);
  for (size_t i = 0; i < iters; ++i) arr.Set(uint32_t(i), Napi::Number::New(info.Env(), ms[i]));
  r.Set("ms", arr);
  return r;
}
// ---- end attention ----

// ---- events (cuda/events.cuh): the profiler's device timer (lib/backends/cuda/timer.ts) ----
// eventRecord() -> handle (an event recorded on the stream); eventElapsedNs(a, b) -> ns (waits for b);
// eventRelease(handle) (idempotent); eventPoolStats() -> {idle, live}. Handles are type-tagged Externals;
// the finalizer returns a forgotten event to the pool.
constexpr napi_type_tag kEventTag = {0x7465737365726163ULL, 0x7564616576743031ULL};  // "tesserac" "udaevt01"

void finalize_event(Napi::Env, tc::EventMark* m) {
  tc::event_release(m);
  delete m;
}

tc::EventMark* arg_event(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  const Napi::Value v = info[i];
  if (!v.IsExternal() || !v.As<Napi::External<tc::EventMark>>().CheckTypeTag(&kEventTag)) {
    throw_type(info.Env(), std::string(fn) + ": " + name + " must be an event handle from eventRecord(), got " + type_name(v));
  }
  tc::EventMark* m = v.As<Napi::External<tc::EventMark>>().Data();
  if (m->released) throw with_code(Napi::Error::New(info.Env(), std::string(fn) + ": " + name + " was released"), "E_DISPOSED");
  return m;
}

// A new event handle from record (tc::event_record or tc::event_record_deferred).
Napi::Value new_event(const Napi::CallbackInfo& info, const char* fn, tc::Status (*record)(tc::EventMark*)) {
  expect_args(info, 0, fn);
  auto* m = new tc::EventMark();
  const tc::Status s = record(m);
  if (!s.ok()) {
    delete m;
    throw js_error(info.Env(), s);
  }
  auto handle = Napi::External<tc::EventMark>::New(info.Env(), m, finalize_event);
  handle.TypeTag(&kEventTag);
  return handle;
}

Napi::Value EventRecord(const Napi::CallbackInfo& info) { return new_event(info, "eventRecord", tc::event_record); }

// eventRecordDeferred() -> handle: recorded when the next op queues work on the stream (a start mark that
// leaves out the op's host-side preparation; cuda/events.cuh).
Napi::Value EventRecordDeferred(const Napi::CallbackInfo& info) {
  return new_event(info, "eventRecordDeferred", tc::event_record_deferred);
}

Napi::Value EventElapsedNs(const Napi::CallbackInfo& info) {
  expect_args(info, 2, "eventElapsedNs");
  const tc::EventMark* a = arg_event(info, 0, "eventElapsedNs", "a");
  const tc::EventMark* b = arg_event(info, 1, "eventElapsedNs", "b");
  double ns = 0;
  check(info.Env(), tc::event_elapsed_ns(*a, *b, &ns));
  return Napi::Number::New(info.Env(), ns);
}

Napi::Value EventRelease(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "eventRelease");
  const Napi::Value v = info[0];
  if (!v.IsExternal() || !v.As<Napi::External<tc::EventMark>>().CheckTypeTag(&kEventTag)) {
    throw_type(info.Env(), std::string("eventRelease: handle must be an event handle from eventRecord(), got ") + type_name(v));
  }
  tc::event_release(v.As<Napi::External<tc::EventMark>>().Data());
  return info.Env().Undefined();
}

Napi::Value EventPoolStats(const Napi::CallbackInfo& info) {
  size_t idle = 0, live = 0;
  tc::event_pool_stats(&idle, &live);
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("idle", Napi::Number::New(info.Env(), double(idle)));
  r.Set("live", Napi::Number::New(info.Env(), double(live)));
  return r;
}
// ---- end events ----

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("deviceInfo", Napi::Function::New(env, DeviceInfo, "deviceInfo"));
  exports.Set("malloc", Napi::Function::New(env, Malloc, "malloc"));
  exports.Set("free", Napi::Function::New(env, Free, "free"));
  exports.Set("memcpyHtoD", Napi::Function::New(env, MemcpyHtoD, "memcpyHtoD"));
  exports.Set("memcpyDtoH", Napi::Function::New(env, MemcpyDtoH, "memcpyDtoH"));
  exports.Set("memcpyDtoD", Napi::Function::New(env, MemcpyDtoD, "memcpyDtoD"));
  exports.Set("memcpyDtoHAsync", Napi::Function::New(env, MemcpyDtoHAsync, "memcpyDtoHAsync"));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize, "synchronize"));
  exports.Set("memInfo", Napi::Function::New(env, MemInfo, "memInfo"));
  exports.Set("addF32", Napi::Function::New(env, AddF32, "addF32"));
  exports.Set("fillF32", Napi::Function::New(env, FillF32, "fillF32"));
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("attentionUnsupported", Napi::Function::New(env, AttentionUnsupported, "attentionUnsupported"));
  exports.Set("attentionTime", Napi::Function::New(env, AttentionTime, "attentionTime"));
  exports.Set("eventRecord", Napi::Function::New(env, EventRecord, "eventRecord"));
  exports.Set("eventRecordDeferred", Napi::Function::New(env, EventRecordDeferred, "eventRecordDeferred"));
  exports.Set("eventElapsedNs", Napi::Function::New(env, EventElapsedNs, "eventElapsedNs"));
  exports.Set("eventRelease", Napi::Function::New(env, EventRelease, "eventRelease"));
  exports.Set("eventPoolStats", Napi::Function::New(env, EventPoolStats, "eventPoolStats"));
  tc::register_ops(env, exports, unwrap_buffer);
  return exports;
}

}  // namespace

NODE_API_MODULE(tessera_cuda, Init)
