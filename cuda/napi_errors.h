// napi_errors.h: how the CUDA addon's N-API glue (addon.cc, ops_addon.cc) turns argument problems and
// device Status values into JS exceptions carrying the TesseraError codes of lib/errors.ts.
#pragma once

#include <napi.h>

#include <string>

#include "device.cuh"

namespace tessera_cuda {
namespace js {

constexpr double kMaxSafeInteger = 9007199254740991.0;

inline Napi::Error with_code(Napi::Error err, const char* code) {
  err.Value().Set("code", Napi::String::New(err.Env(), code));
  return err;
}

[[noreturn]] inline void throw_type(Napi::Env env, const std::string& msg) {
  throw with_code(Napi::TypeError::New(env, msg), "E_TYPE");
}

[[noreturn]] inline void throw_range(Napi::Env env, const std::string& msg) {
  throw with_code(Napi::RangeError::New(env, msg), "E_ARG");
}

inline Napi::Error js_error(Napi::Env env, const Status& s) {
  switch (s.code) {
    case Code::arg: return with_code(Napi::RangeError::New(env, s.message), "E_ARG");
    case Code::freed: return with_code(Napi::Error::New(env, s.message), "E_DISPOSED");
    case Code::oom: return with_code(Napi::Error::New(env, s.message), "E_OOM");
    case Code::unavailable: return with_code(Napi::Error::New(env, s.message), "E_BACKEND");
    default: return with_code(Napi::Error::New(env, s.message), "E_NATIVE");
  }
}

inline void check(Napi::Env env, const Status& s) {
  if (!s.ok()) throw js_error(env, s);
}

inline void expect_args(const Napi::CallbackInfo& info, size_t n, const char* fn) {
  if (info.Length() != n) {
    throw_type(info.Env(), std::string(fn) + ": expected " + std::to_string(n) + " argument(s), got " +
                               std::to_string(info.Length()));
  }
}

}  // namespace js
}  // namespace tessera_cuda
