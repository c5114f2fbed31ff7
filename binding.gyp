# tessera_cpu: the CPU kernels addon (C++17, N-API 8, C++ exceptions on).
# Portable x86-64 baseline: no -march flags. AVX2+FMA kernels are compiled per
# function with __attribute__((target("avx2,fma"))) and picked at run time
# (native/cpu_features.cc); other architectures build the portable path only.
# Needs GCC or Clang (target attributes, __builtin_cpu_supports).
{
  "targets": [
    {
      "target_name": "tessera_cpu",
      "sources": [
        "native/addon.cc",
        "native/args.cc",
        "native/cpu_features.cc",
        "native/thread_pool.cc",
        "native/out_pool.cc",
        "native/peak.cc",
        "native/gemm.cc",
        "native/gemm_avx2.cc",
        "native/gemm_packed.cc",
        "native/attention.cc",
        "native/attention_avx2.cc",
        "native/spmm.cc",
        "native/spmm_avx2.cc",
        "native/qgemm.cc",
        "native/qgemm_avx2.cc",
        "native/qgemm_int8.cc",
        "native/qgemm_int8_avx2.cc",
        "native/qgemm_w4a8_avx2.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["-pthread"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-pthread"],
      "ldflags": ["-pthread"],
      "libraries": ["-lpthread"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "MACOSX_DEPLOYMENT_TARGET": "10.15",
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fexceptions"]
      }
    }
  ]
}
