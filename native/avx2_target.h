// avx2_target.h: function attributes of the AVX2+FMA kernel files that share them (qgemm_avx2.cc,
// qgemm_int8_avx2.cc). The addon is built without -mavx2: each kernel opts in, and runs only after
// cpu_features reports avx2+fma.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TESSERA_AVX2 __attribute__((target("avx2,fma")))
#define TESSERA_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline
#endif
