// args: boundary validation helpers (see args.h).
#include "args.h"

#include <charconv>
#include <cmath>

namespace tessera {

uint64_t size_mul(uint64_t a, uint64_t b) {
  if (a == 0 || b == 0) return 0;
  if (a >= k_too_big || b >= k_too_big || a > k_too_big / b) return k_too_big;
  const uint64_t p = a * b;
  return p > k_too_big ? k_too_big : p;
}

uint64_t size_add(uint64_t a, uint64_t b) {
  if (a >= k_too_big || b >= k_too_big) return k_too_big;
  const uint64_t s = a + b;  // both < 2^54: no wrap
  return s > k_too_big ? k_too_big : s;
}

namespace {

std::string format_number(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, x);  // shortest round-trip form
  return std::string(buf, r.ptr);
}

const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "typed array";
  }
}

// Short description of any JS value for error messages; never runs JS code.
std::string describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return v.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number: return format_number(v.As<Napi::Number>().DoubleValue());
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_bigint: return "a bigint";
    case napi_function: return "a function";
    case napi_external: return "an external";
    case napi_object:
      if (v.IsTypedArray()) return typed_array_name(v.As<Napi::TypedArray>().TypedArrayType());
      if (v.IsDataView()) return "a DataView";
      if (v.IsArrayBuffer()) return "an ArrayBuffer";
      if (v.IsArray()) return "an Array";
      return "an object";
    default: return "an unknown value";
  }
}

}  // namespace

arg_reader::arg_reader(const Napi::CallbackInfo& info, const char* function_name,
                       std::initializer_list<const char*> names)
    : info_(info), function_name_(function_name), names_(names) {
  if (info.Length() != names_.size()) {
    std::string list;
    for (size_t i = 0; i < names_.size(); ++i) list += (i ? ", " : "") + std::string(names_[i]);
    throw_type("expected " + std::to_string(names_.size()) + " argument" +
               (names_.size() == 1 ? "" : "s") + " (" + list + "), got " +
               std::to_string(info.Length()));
  }
}

std::string arg_reader::label(size_t i) const {
  return "argument " + std::to_string(i) + " (" + names_[i] + ")";
}

void arg_reader::throw_range(const std::string& message) const {
  throw Napi::RangeError::New(info_.Env(), std::string("tessera_cpu.") + function_name_ + ": " + message);
}

void arg_reader::throw_type(const std::string& message) const {
  throw Napi::TypeError::New(info_.Env(), std::string("tessera_cpu.") + function_name_ + ": " + message);
}

f32_arg arg_reader::float32_array(size_t i) const {
  const Napi::Value v = info_[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_type(label(i) + " must be a Float32Array, got " + describe(v));
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value buffer = nullptr;
  size_t byte_offset = 0;
  if (napi_get_typedarray_info(info_.Env(), v, &type, &length, &data, &buffer, &byte_offset) != napi_ok)
    throw_type(label(i) + " could not be read as a Float32Array");
  bool detached = false;
  if (napi_is_detached_arraybuffer(info_.Env(), buffer, &detached) != napi_ok) detached = true;
  if (detached) throw_type(label(i) + " is a Float32Array whose ArrayBuffer is detached");
  if (length > 0 && data == nullptr) throw_type(label(i) + " has no backing store");
  f32_arg out;
  out.data = static_cast<float*>(data);
  out.length = length;
  out.object = v.As<Napi::Object>();
  return out;
}

int64_t arg_reader::integer(size_t i, int64_t lo, int64_t hi, const char* range_text) const {
  const Napi::Value v = info_[i];
  const std::string want = label(i) + " must be an integer in " + range_text + ", got ";
  if (!v.IsNumber()) throw_type(want + describe(v));
  const double x = v.As<Napi::Number>().DoubleValue();
  // The range test comes first so the cast below is always defined.
  if (!std::isfinite(x) || std::trunc(x) != x || x < static_cast<double>(lo) ||
      x > static_cast<double>(hi))
    throw_range(want + describe(v));
  return static_cast<int64_t>(x);
}

bool arg_reader::boolean(size_t i) const {
  const Napi::Value v = info_[i];
  if (!v.IsBoolean()) throw_type(label(i) + " must be a boolean, got " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

double arg_reader::finite_number(size_t i) const {
  const Napi::Value v = info_[i];
  const std::string want = label(i) + " must be a finite number, got ";
  if (!v.IsNumber()) throw_type(want + describe(v));
  const double x = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(x)) throw_range(want + describe(v));
  return x;
}

void arg_reader::require_length(size_t i, const f32_arg& buf, uint64_t needed,
                                const char* formula) const {
  if (needed >= k_too_big)
    throw_range(label(i) + " would need more than 2^53 elements (" + formula + ")");
  if (buf.length < needed)
    throw_range(label(i) + " is too short: has " + std::to_string(buf.length) +
                " elements, needs " + std::to_string(needed) + " (" + formula + ")");
}

void arg_reader::require_disjoint(size_t i_out, const f32_arg& out, uint64_t out_len,
                                  size_t i_in, const f32_arg& in, uint64_t in_len) const {
  const uintptr_t o0 = reinterpret_cast<uintptr_t>(out.data);
  const uintptr_t o1 = o0 + out_len * sizeof(float);
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(in.data);
  const uintptr_t a1 = a0 + in_len * sizeof(float);
  if (o0 < a1 && a0 < o1)
    throw_range(label(i_out) + " overlaps " + label(i_in) +
                " in memory; the output must not share bytes with an input");
}

}  // namespace tessera
