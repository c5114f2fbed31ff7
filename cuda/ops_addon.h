// ops_addon.h: N-API exports of the tensor kernels (ops.cuh) and of the caching allocator (memory.cuh).
// addon.cc calls register_ops() from its Init and hands over how to turn a JS value into the
// DeviceBuffer of one of its type-tagged handles (nullptr for anything else), so the tag stays private
// to addon.cc.
#pragma once

#include <napi.h>

#include "memory.cuh"

namespace tessera_cuda {

using BufferUnwrap = DeviceBuffer* (*)(const Napi::Value& value);

void register_ops(Napi::Env env, Napi::Object exports, BufferUnwrap unwrap);

}  // namespace tessera_cuda
