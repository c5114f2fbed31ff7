// cpu_features: which SIMD path the kernels take, decided once per process.
//
// The addon is compiled for baseline x86-64 (SSE2). AVX2+FMA kernels are
// compiled per function (target attribute) and chosen at run time when the CPU
// and OS support them. TESSERA_SIMD=generic forces the portable path so tests
// can run both paths on one machine.
#pragma once

namespace tessera {

enum class simd_level { generic, avx2_fma };

// Selected level: CPU support AND not overridden by TESSERA_SIMD=generic.
simd_level active_simd();

// F16C (float16 <-> float32 conversions) next to the selected AVX2 level; false on the generic path.
bool cpu_has_f16c();

// "avx2+fma" or "generic".
const char* simd_name(simd_level level);

}  // namespace tessera
