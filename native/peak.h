// peak: arithmetic ceilings of this machine from register-only calibration loops (peak.cc).
#pragma once

namespace tessera {

enum class peak_kind { fp32, int8 };

// Operations per second (FLOP for fp32, int8 ops = 2 x MACs for int8) over about `seconds`
// (clamped to [1 ms, 10 s]), on every pool thread when `parallel`, else on the calling thread;
// the best of 3 runs. 0 where there is no AVX2+FMA path (no calibration loop for it).
double peak_rate(peak_kind kind, double seconds, bool parallel);

// Sequential read bandwidth in bytes per second: a buffer of `bytes` (clamped to [1 MiB, 1 GiB];
// larger than the last-level cache for the DRAM roof, smaller for a cache's) is written once, then
// read pass after pass for about `seconds` (clamped to [1 ms, 10 s], at least 2 passes), split over
// every pool thread when `parallel`; the best pass. Throws std::bad_alloc if the buffer cannot be had.
double read_bandwidth(double bytes, double seconds, bool parallel);

}  // namespace tessera
