// peak: arithmetic ceilings of this machine from register-only calibration loops (peak.cc).
#pragma once

namespace tessera {

enum class peak_kind { fp32, int8 };

// Operations per second (FLOP for fp32, int8 ops = 2 x MACs for int8) over about `seconds`
// (clamped to [1 ms, 10 s]), on every pool thread when `parallel`, else on the calling thread;
// the best of 3 runs. 0 where there is no AVX2+FMA path (no calibration loop for it).
double peak_rate(peak_kind kind, double seconds, bool parallel);

}  // namespace tessera
