// cpu_features: run-time SIMD selection (see cpu_features.h).
#include "cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace tessera {

namespace {

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
#if defined(__GNUC__)
  // __builtin_cpu_supports also checks that the OS saves YMM state (XGETBV)
  // in libgcc's cpu model initialisation.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
#else
  return false;
#endif
}

simd_level detect() {
  const char* env = std::getenv("TESSERA_SIMD");
  if (env != nullptr && std::strcmp(env, "generic") == 0) return simd_level::generic;
  return cpu_has_avx2_fma() ? simd_level::avx2_fma : simd_level::generic;
}

}  // namespace

simd_level active_simd() {
  static const simd_level level = detect();  // thread-safe static init
  return level;
}

bool cpu_has_f16c() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  static const bool has = active_simd() == simd_level::avx2_fma && __builtin_cpu_supports("f16c");
  return has;
#else
  return false;
#endif
}

const char* simd_name(simd_level level) {
  return level == simd_level::avx2_fma ? "avx2+fma" : "generic";
}

}  // namespace tessera
