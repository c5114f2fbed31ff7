// device.cuh: what the CUDA backend knows about the GPU and its one stream, and how every CUDA-side
// function reports failure (Status) to the N-API glue, which alone turns it into a JS exception.
//
// The backend uses device 0 and one non-blocking stream, created on first use. Every queued operation
// (copies, kernels) goes on that stream, so they run in the order JS issued them.
#pragma once

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

namespace tessera_cuda {

enum class Code {
  ok,
  arg,          // bad argument caught on the CUDA side (out of bounds, size overflow)
  freed,        // use of a buffer after free()
  oom,          // device or pinned host memory exhausted; the addon stays usable
  unavailable,  // no driver or no device: nothing was attempted
  cuda,         // any other CUDA error
};

struct Status {
  Code code = Code::ok;
  std::string message;
  bool ok() const { return code == Code::ok; }
};

inline Status status_ok() { return {}; }
inline Status status_error(Code code, std::string message) { return {code, std::move(message)}; }

// cudaSuccess -> ok; cudaErrorMemoryAllocation -> oom ("CUDA out of memory: <what>"); else cuda
// ("<what>: <error string> (<error name>)"). Clears the non-sticky last-error state.
Status status_from_cuda(cudaError_t err, const char* what);

struct DeviceProps {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;
  double total_mem = 0;  // bytes; a double so it crosses to JS as an exact Number
  int sm_count = 0;
};

struct DeviceReport {
  bool available = false;
  std::string reason;  // empty when available
  int count = 0;
  int driver_version = 0;   // e.g. 13000; 0 when no driver is installed
  int runtime_version = 0;  // the statically linked cudart's version
  std::vector<DeviceProps> devices;
};

// Never fails: a machine with no driver or no GPU gives available = false and the CUDA error as reason.
DeviceReport device_report();

// Checks (once) that a device exists and creates the backend stream; every operation calls it first.
Status device_ready();

// The backend stream and device 0's multiprocessor count; valid only after device_ready() succeeded.
// device_stream() also records pending deferred profiler marks (events.cuh): call it where work is queued.
cudaStream_t device_stream();
int device_sm_count();

}  // namespace tessera_cuda
