// out_pool: recycled memory for large kernel outputs handed to JS.
//
// Why: a fresh multi-megabyte output is fresh pages, and on the VMs this was measured on, faulting
// them in and zeroing them cost ~1.5 ms of a ~15 ms 1024^3 GEMM (a 4 MB output: the call took 16.2 ms
// with a new buffer each time vs 14.6 ms reusing one, medians of 12 bursts). numpy pays nothing
// similar: its result is freed at once by reference counting and malloc hands the warm block back.
// JS frees by garbage collection, late, so the blocks here are recycled when V8 finalizes the
// ArrayBuffer that owned them: memory-safe by construction (a block is reused only once nothing can
// reach it), and V8 is told about the bytes so it collects in time.
// A block handed to JS is a lease: returned by the ArrayBuffer's finalizer, or earlier by an explicit
// release (tensor dispose, releaseF32 in addon.cc) once the caller has detached that ArrayBuffer, so no
// JS view can read or write the block after it is reused; the finalizer then only frees the lease.
// Blocks are rounded up to 64 KB and kept per size, up to k_pool_max_cached bytes in all; beyond that
// they are freed. Thread-safe (finalizers may run on any thread that owns an env).
#pragma once

#include <cstddef>

namespace tessera {

constexpr size_t k_pool_min_bytes = size_t(1) << 18;   // smaller outputs: ordinary allocation
constexpr size_t k_pool_max_cached = size_t(1) << 27;  // 128 MB of idle blocks at most

size_t pool_round(size_t bytes);
// A block of pool_round(bytes) bytes, 64-byte aligned, or nullptr when out of memory.
void* pool_take(size_t bytes);
// Returns a block taken with the same size.
void pool_give(void* p, size_t bytes);
// Leases: a block owned by one JS ArrayBuffer. take: a block and its lease (nullptr when out of memory).
struct pool_lease;
pool_lease* pool_lease_take(size_t bytes);
void* pool_lease_data(const pool_lease* l);
// The ArrayBuffer's finalizer: returns the block unless returned early, frees the lease.
void pool_lease_finalize(pool_lease* l);
// The live lease of the block at p with exactly `bytes` bytes, or nullptr (not ours, or returned).
pool_lease* pool_lease_find(const void* p, size_t bytes);
// Returns the block now (its ArrayBuffer must already be detached); the lease stays for the finalizer.
void pool_lease_return(pool_lease* l);
// Idle bytes held (for tests).
size_t pool_cached_bytes();

}  // namespace tessera
