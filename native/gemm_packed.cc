// gemm_packed: the large-M driver of gemm_f32 (entry point, other paths and the
// packing routines in gemm.cc; micro-kernels in gemm_avx2.cc).
//
// One parallel_for per call, run by `members` (one per pool thread). A round covers A
// rows [i_lo, i_hi) and B columns [j_lo, j_hi), packed for all of K into one shared
// buffer (A as [kc block][6-row sliver][kc][mr], B as [kc block][16-col sliver][kc][nr]),
// and computes the C tiles of that row x column range. Members take tiles from
// per-member ranges (stealing from the others' tails when their own runs dry). Packing
// is on demand, with no barrier: before a tile's KC block q, its member packs the A
// rows (q, tile row block) and B columns (q, tile column block) unless some member
// already has, so packing is spread through the call, and the member that packs a unit
// uses it at once, from its own L2. Against packing everything first behind a barrier:
// 256^3 ~10% faster (2 threads, back to back), 512^3 to 2048^3 the same within this
// VM's noise (packing is ~6% of the call either way).
// A member only ever waits for a unit another member has claimed and is packing right
// now, or, at the end of a round, for tiles being computed, so the call completes
// whatever number of pool threads turn up (a late or absent helper just leaves more
// work to the caller), and it waits by spinning: on the VM it was tuned on, a thread
// that has slept a while (halted vCPU) sometimes takes a millisecond or more to wake,
// longer than a whole call's imbalance. One parallel_for means at most one such wake-up
// per call (the helper's), and the caller starts without waiting for it.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "gemm.h"
#include "thread_pool.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace tessera {

namespace {

using detail::gemm_kernel_info;
using detail::gemm_view;
using detail::gemm_pack_a;
using detail::gemm_pack_b;
using detail::gemm_pack_b_rows;

// K block of this path: 384, not gemm_stream_b's 256 (k_gemm_kc). A B sliver is then
// 24 KB, most of L1, and the L2->L1 stream of the 9 KB A slivers evicts a few of its
// lines, but each C tile is loaded and stored a third fewer times and the per-call
// overhead is spread over 1.5x the FMAs: 1024^3 went ~4-5% faster per core (1 and 2
// threads; 512-wide K blocks measured no better than 256).
constexpr int64_t k_kc = 384;
constexpr int64_t k_mc = 120;  // rows per tile, before evening out: A block 120 x 384 in L2

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline void cpu_relax() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  __builtin_ia32_pause();
#endif
}

// Spins briefly, then yields between polls: if the member we wait for was preempted
// (another process on the core), it may be queued behind us. Never sleeps.
template <class Pred>
void spin_until(Pred done) {
  for (int i = 0; !done(); ++i) {
    if (i < 1024) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

// Large scratch buffers, shared by every caller: concurrent calls each take one. Kept
// (not freed) between calls because a fresh 16-32 MB buffer costs thousands of page
// faults on first touch.
class buffer_cache {
 public:
  struct lease {
    float* p;
    size_t cap;
  };
  lease acquire(size_t n) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i].cap >= n && (best == free_.size() || free_[i].cap < free_[best].cap)) best = i;
      if (best < free_.size()) {
        const lease l = free_[best];
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
        return l;
      }
    }
    // 2 MB aligned and advised for huge pages: the packed panels are streamed
    // sliver by sliver, and 4 KB pages would put every 16 KB sliver on its own TLB
    // entries (2048^2 packs 32 MB).
    constexpr size_t huge = size_t{2} << 20;
    const size_t align = n * sizeof(float) >= huge ? huge : 4096;
    const size_t bytes = (n * sizeof(float) + align - 1) / align * align;
    float* p = static_cast<float*>(std::aligned_alloc(align, bytes));
    if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == huge) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return {p, bytes / sizeof(float)};
  }
  void release(lease l) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(l);
    if (free_.size() > k_keep) {  // drop the smallest
      auto it = std::min_element(free_.begin(), free_.end(),
                                 [](const lease& x, const lease& y) { return x.cap < y.cap; });
      std::free(it->p);
      free_.erase(it);
    }
  }

 private:
  static constexpr size_t k_keep = 4;
  std::mutex mu_;
  std::vector<lease> free_;
};

buffer_cache& the_buffer_cache() {
  static buffer_cache* c = new buffer_cache();  // leaked: pool workers may outlive statics
  return *c;
}

struct scoped_buffer {
  explicit scoped_buffer(size_t n) : l(the_buffer_cache().acquire(n)) {}
  ~scoped_buffer() { the_buffer_cache().release(l); }
  scoped_buffer(const scoped_buffer&) = delete;
  scoped_buffer& operator=(const scoped_buffer&) = delete;
  buffer_cache::lease l;
};

// Cap on one round's packed A, and on its packed B (floats): 20 MB each, so 2048^2
// (padded to 2052 x 2304) is one round.
constexpr int64_t k_round_floats = int64_t{5} << 20;

// Tile ranges of one member, [lo, hi) packed into one word so claim and steal are CAS.
struct alignas(64) tile_range {
  std::atomic<uint64_t> v{0};
  static uint64_t make(uint32_t lo, uint32_t hi) { return (uint64_t{hi} << 32) | lo; }
  bool take_front(int64_t& t) {
    uint64_t x = v.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t lo = static_cast<uint32_t>(x), hi = static_cast<uint32_t>(x >> 32);
      if (lo >= hi) return false;
      if (v.compare_exchange_weak(x, make(lo + 1, hi), std::memory_order_relaxed)) {
        t = lo;
        return true;
      }
    }
  }
  bool take_back(int64_t& t) {
    uint64_t x = v.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t lo = static_cast<uint32_t>(x), hi = static_cast<uint32_t>(x >> 32);
      if (lo >= hi) return false;
      if (v.compare_exchange_weak(x, make(lo, hi - 1), std::memory_order_relaxed)) {
        t = hi - 1;
        return true;
      }
    }
  }
};

struct alignas(64) round_state {
  std::atomic<int64_t> tiles_done{0};
};

struct packed_plan {
  float* c;
  gemm_view a, b;
  int64_t m, n, k;
  gemm_kernel_info kern;
  int members;
  // blocking
  int64_t n_q;          // number of KC blocks
  int64_t mc;           // rows per tile (multiple of mr)
  int64_t tile_cols;    // columns per tile (multiple of nr)
  int64_t round_rows;   // rows per round (multiple of mc)
  int64_t round_cols;   // cols per round (multiple of tile_cols)
  int64_t rounds_i, rounds_j;
  int64_t row_blocks;   // tiles down one round (max over rounds)
  int64_t col_tiles;    // tiles across one round (max over rounds)
  // packed buffers (one round)
  float* ap;
  float* bp;
};

// One round's geometry, as a member sees it.
struct round_view {
  int64_t i_lo, m_pad, i_end;  // rows [i_lo, i_end), padded to m_pad
  int64_t j_lo, n_pad, j_end;  // cols [j_lo, j_end), padded to n_pad
  int64_t col_tiles;
  std::atomic<int>* a_state;   // [q][row block]: 0 free, 1 being packed, 2 packed
  std::atomic<int>* b_state;   // [q][column tile]
};

// Packs a unit unless some member has claimed it; then waits for that member, which
// is packing it right now (claim and pack are one step), so the wait is short and
// never circular.
template <class F>
void ensure_packed(std::atomic<int>& st, F pack) {
  int v = st.load(std::memory_order_acquire);
  if (v == 2) return;
  if (v == 0 && st.compare_exchange_strong(v, 1, std::memory_order_acquire)) {
    pack();
    st.store(2, std::memory_order_release);
    return;
  }
  spin_until([&] { return st.load(std::memory_order_acquire) == 2; });
}

// A slivers [r0, r1) of KC block q.
void pack_a_slivers(const packed_plan& p, const round_view& rv, int64_t q, int64_t r0,
                    int64_t r1) {
  const int mr = p.kern.mr;
  const int64_t pc = q * k_kc;
  const int64_t kc = std::min(k_kc, p.k - pc);
  float* dst = p.ap + q * k_kc * rv.m_pad;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i = rv.i_lo + r * mr;
    const int rows = static_cast<int>(std::min<int64_t>(mr, rv.i_end - i));
    gemm_pack_a(dst + r * kc * mr, p.a, i, rows, pc, kc, mr);
  }
}

// B slivers [s0, s1) of KC block q.
void pack_b_slivers(const packed_plan& p, const round_view& rv, int64_t q, int64_t s0,
                    int64_t s1) {
  const int nr = p.kern.nr;
  const int64_t pc = q * k_kc;
  const int64_t kc = std::min(k_kc, p.k - pc);
  float* dst = p.bp + q * k_kc * rv.n_pad;
  int64_t s = s0;
  if (p.b.cs == 1 && p.b.src == gemm_src::f32) {  // row-major B: whole slivers row by row
    const int64_t full = std::min(s1, (rv.j_end - rv.j_lo) / nr);
    if (full > s) {
      const float* src = p.b.p + pc * p.b.rs + rv.j_lo + s * nr;
      gemm_pack_b_rows(dst + s * kc * nr, src, p.b.rs, kc, full - s, nr);
      s = full;
    }
  }
  for (; s < s1; ++s) {
    const int64_t j = rv.j_lo + s * nr;
    const int cols = static_cast<int>(std::min<int64_t>(nr, rv.j_end - j));
    gemm_pack_b(dst + s * kc * nr, p.b, j, cols, pc, kc, nr);
  }
}

// C tile t of the round, KC block by KC block; each block's A and B slivers are packed
// first if no member has yet (the member that packs them uses them while they are hot).
void run_tile(const packed_plan& p, const round_view& rv, int64_t t) {
  const int mr = p.kern.mr;
  const int nr = p.kern.nr;
  const int64_t ti = t / rv.col_tiles;
  const int64_t tj = t % rv.col_tiles;
  const int64_t r0 = ti * p.mc / mr;
  const int64_t r1 = std::min(rv.m_pad / mr, r0 + p.mc / mr);
  const int64_t s0 = tj * p.tile_cols / nr;
  const int64_t s1 = std::min(rv.n_pad / nr, s0 + p.tile_cols / nr);
  const int64_t ldc = p.n;
  for (int64_t q = 0; q < p.n_q; ++q) {
    ensure_packed(rv.a_state[q * p.row_blocks + ti], [&] { pack_a_slivers(p, rv, q, r0, r1); });
    ensure_packed(rv.b_state[q * p.col_tiles + tj], [&] { pack_b_slivers(p, rv, q, s0, s1); });
    const int64_t pc = q * k_kc;
    const int64_t kc = std::min(k_kc, p.k - pc);
    const float* aq = p.ap + q * k_kc * rv.m_pad;
    const float* bq = p.bp + q * k_kc * rv.n_pad;
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t j = rv.j_lo + s * nr;
      const int cols = static_cast<int>(std::min<int64_t>(nr, rv.j_end - j));
      const float* bs = bq + s * kc * nr;
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t i = rv.i_lo + r * mr;
        const int rows = static_cast<int>(std::min<int64_t>(mr, rv.i_end - i));
        p.kern.kernel(kc, aq + r * kc * mr, bs, p.c + i * ldc + j, ldc, rows, cols, q > 0);
      }
    }
  }
}

// c[m][n] = A @ B; `parallel`: pool threads join, else the calling thread does it all.
// Summation order per C element: KC blocks in order, each one micro-kernel call, so
// results do not depend on which member computed which tile.
}  // namespace

namespace detail {

void gemm_packed(float* c, const gemm_view& a, const gemm_view& b, int64_t m, int64_t n,
                 int64_t k, const gemm_kernel_info& kern, bool parallel) {
  const int mr = kern.mr;
  const int nr = kern.nr;
  packed_plan p;
  p.c = c;
  p.a = a;
  p.b = b;
  p.m = m;
  p.n = n;
  p.k = k;
  p.kern = kern;
  p.members = parallel ? std::max(1, num_threads()) : 1;
  p.n_q = ceil_div(k, k_kc);
  // Rows per tile: ~120 (A block of 120 x 384 floats, 180 KB, in L2), evened out over the blocks.
  const int64_t m_blocks = ceil_div(m, k_mc);
  p.mc = ceil_div(ceil_div(m, m_blocks), mr) * mr;
  // Columns per tile: up to 256 (the C tile stays in L2 over all of K), down to 64
  // while that leaves under ~32 tiles per member: a member's last tile is the most
  // the two can end apart.
  const int64_t n_sl_all = ceil_div(n, nr);
  int64_t tile_sl = 256 / nr;
  while (tile_sl > 4 && m_blocks * ceil_div(n_sl_all, tile_sl) < 32 * p.members) tile_sl /= 2;
  p.tile_cols = tile_sl * nr;
  // Rounds: bound the packed buffer for very large operands.
  // Rounds split M (N) evenly, in whole tiles, so no round is a thin leftover.
  const int64_t k_pad = p.n_q * k_kc;
  const int64_t rounds_i = ceil_div(ceil_div(m, mr) * mr * k_pad, k_round_floats);
  const int64_t rounds_j = ceil_div(ceil_div(n, nr) * nr * k_pad, k_round_floats);
  p.round_rows = ceil_div(ceil_div(m, rounds_i), p.mc) * p.mc;
  p.round_cols = ceil_div(ceil_div(n, rounds_j), p.tile_cols) * p.tile_cols;
  p.rounds_i = ceil_div(m, p.round_rows);
  p.rounds_j = ceil_div(n, p.round_cols);
  const int64_t m_pad_max = ceil_div(std::min(m, p.round_rows), mr) * mr;
  const int64_t n_pad_max = ceil_div(std::min(n, p.round_cols), nr) * nr;
  scoped_buffer buf(static_cast<size_t>((m_pad_max + n_pad_max) * k_pad));
  p.ap = buf.l.p;
  p.bp = buf.l.p + m_pad_max * k_pad;

  const int64_t n_rounds = p.rounds_i * p.rounds_j;
  p.row_blocks = ceil_div(std::min(m, p.round_rows), p.mc);
  p.col_tiles = ceil_div(std::min(n, p.round_cols), p.tile_cols);
  // Pack states: A per row round (later column rounds reuse its packed rows), B per
  // round, or once for all when there is one column round (B is packed once).
  const int64_t b_sets = p.rounds_j > 1 ? n_rounds : 1;
  const int64_t a_per = p.n_q * p.row_blocks, b_per = p.n_q * p.col_tiles;
  std::vector<std::atomic<int>> states(static_cast<size_t>(p.rounds_i * a_per + b_sets * b_per));
  for (auto& x : states) x.store(0, std::memory_order_relaxed);
  std::vector<round_state> rs(static_cast<size_t>(n_rounds));
  std::vector<tile_range> ranges(static_cast<size_t>(n_rounds * p.members));
  // Per round: ranges split the tiles evenly over the members.
  for (int64_t rd = 0; rd < n_rounds; ++rd) {
    const int64_t ii = rd / p.rounds_j, jj = rd % p.rounds_j;
    const int64_t rows = std::min(p.round_rows, m - ii * p.round_rows);
    const int64_t cols = std::min(p.round_cols, n - jj * p.round_cols);
    const int64_t tiles = ceil_div(rows, p.mc) * ceil_div(cols, p.tile_cols);
    for (int mb = 0; mb < p.members; ++mb)
      ranges[rd * p.members + mb].v.store(
          tile_range::make(static_cast<uint32_t>(tiles * mb / p.members),
                           static_cast<uint32_t>(tiles * (mb + 1) / p.members)),
          std::memory_order_relaxed);
  }

  auto member = [&](int64_t self) {
    for (int64_t rd = 0; rd < n_rounds; ++rd) {
      const int64_t ii = rd / p.rounds_j, jj = rd % p.rounds_j;
      round_view rv;
      rv.i_lo = ii * p.round_rows;
      rv.j_lo = jj * p.round_cols;
      rv.i_end = std::min(m, rv.i_lo + p.round_rows);
      rv.j_end = std::min(n, rv.j_lo + p.round_cols);
      rv.m_pad = ceil_div(rv.i_end - rv.i_lo, mr) * mr;
      rv.n_pad = ceil_div(rv.j_end - rv.j_lo, nr) * nr;
      rv.col_tiles = ceil_div(rv.j_end - rv.j_lo, p.tile_cols);
      rv.a_state = states.data() + ii * a_per;
      rv.b_state = states.data() + p.rounds_i * a_per + (p.rounds_j > 1 ? rd : 0) * b_per;
      const int64_t tiles = ceil_div(rv.m_pad, p.mc) * rv.col_tiles;
      round_state& st = rs[rd];
      // The previous round's tiles are all done (waited below), so its buffers are free.
      tile_range* rr = ranges.data() + rd * p.members;
      int64_t t;
      while (rr[self].take_front(t)) {
        run_tile(p, rv, t);
        st.tiles_done.fetch_add(1, std::memory_order_release);
      }
      for (int v = 1; v < p.members; ++v) {
        tile_range& victim = rr[(self + v) % p.members];
        while (victim.take_back(t)) {
          run_tile(p, rv, t);
          st.tiles_done.fetch_add(1, std::memory_order_release);
        }
      }
      spin_until([&] { return st.tiles_done.load(std::memory_order_acquire) == tiles; });
    }
  };
  if (p.members > 1) {
    parallel_for(p.members, member);
  } else {
    member(0);
  }
}

}  // namespace detail

}  // namespace tessera
