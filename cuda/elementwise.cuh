// elementwise.cuh: element-by-element kernels over whole device buffers (destination first).
#pragma once

#include <cstddef>

#include "device.cuh"
#include "memory.cuh"

namespace tessera_cuda {

// out[i] = a[i] + b[i] for i < n, float32. out may be a or b. Each buffer must hold n floats.
Status add_f32(DeviceBuffer* out, const DeviceBuffer& a, const DeviceBuffer& b, size_t n);
// out[i] = value for i < n, float32.
Status fill_f32(DeviceBuffer* out, float value, size_t n);

}  // namespace tessera_cuda
