// device.cu: device discovery, the backend's one stream, and CUDA error -> Status translation.
//
// device_report() must work on machines with no driver or no GPU (CI, laptops): every CUDA call in it is
// checked and a failure becomes `reason`, never an exception or an abort. device_ready() runs its checks
// once per process (std::call_once): the outcome cannot change while the process lives, and a cached
// answer keeps the per-operation cost to one atomic load.
#include "device.cuh"
#include "events.cuh"

#include <mutex>

namespace tessera_cuda {

Status status_from_cuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return status_ok();
  // Allocation failures and argument errors are not sticky; reading the last error resets it so the
  // next, unrelated call does not see this one.
  cudaGetLastError();
  if (err == cudaErrorMemoryAllocation) {
    return status_error(Code::oom, std::string("CUDA out of memory: ") + what);
  }
  return status_error(Code::cuda, std::string(what) + ": " + cudaGetErrorString(err) + " (" +
                                       cudaGetErrorName(err) + ")");
}

DeviceReport device_report() {
  DeviceReport r;
  // Both version queries succeed without a driver (the driver version then reads 0).
  cudaDriverGetVersion(&r.driver_version);
  cudaRuntimeGetVersion(&r.runtime_version);
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    r.reason = std::string(cudaGetErrorString(err)) + " (" + cudaGetErrorName(err) + ")";
    return r;
  }
  if (count == 0) {
    r.reason = "no CUDA device found";
    return r;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p;
    err = cudaGetDeviceProperties(&p, i);
    if (err != cudaSuccess) {
      cudaGetLastError();
      r.reason = "cudaGetDeviceProperties(" + std::to_string(i) + "): " + cudaGetErrorString(err);
      r.devices.clear();
      return r;
    }
    DeviceProps d;
    d.index = i;
    d.name = p.name;
    d.major = p.major;
    d.minor = p.minor;
    d.total_mem = static_cast<double>(p.totalGlobalMem);
    d.sm_count = p.multiProcessorCount;
    r.devices.push_back(std::move(d));
  }
  r.count = count;
  r.available = true;
  return r;
}

namespace {

struct Backend {
  Status status;
  cudaStream_t stream = nullptr;
  int sm_count = 0;
};

Backend& backend() {
  static Backend b;
  return b;
}

void backend_init(Backend& b) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();
    b.status = status_error(Code::unavailable,
                            std::string("CUDA unavailable: ") +
                                (err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA device found"));
    return;
  }
  b.status = status_from_cuda(cudaSetDevice(0), "cudaSetDevice(0)");
  if (!b.status.ok()) return;
  b.status = status_from_cuda(cudaDeviceGetAttribute(&b.sm_count, cudaDevAttrMultiProcessorCount, 0),
                              "cudaDeviceGetAttribute(multiProcessorCount)");
  if (!b.status.ok()) return;
  // Non-blocking: the backend never relies on the legacy default stream's implicit syncs.
  b.status = status_from_cuda(cudaStreamCreateWithFlags(&b.stream, cudaStreamNonBlocking),
                              "cudaStreamCreateWithFlags");
}

}  // namespace

Status device_ready() {
  static std::once_flag once;
  Backend& b = backend();
  std::call_once(once, [&b] { backend_init(b); });
  return b.status;
}

cudaStream_t device_stream() {
  cudaStream_t s = backend().stream;
  event_flush_deferred(s);  // a profiler start mark lands right before the first work an op queues
  return s;
}
int device_sm_count() { return backend().sm_count; }

}  // namespace tessera_cuda
