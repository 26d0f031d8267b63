// plinth::bf16_linear(x, packed): y = x @ W.T for bf16 weights and activations, on AVX512-BF16 CPUs
// (AMX tiles for many rows where there are some) and on AVX2 ones (vdpbf16ps's arithmetic in FMAs, simd.h).
//
// Why: a one-stream decode step of a small bf16 model reads every weight once per token, and oneDNN's
// prepacked matrix-vector products (prepack.py) read them at ~65% of the memory's speed on a 2-core
// AVX512-BF16 Xeon (benchmarks/bf16_linear.py). Here the AMX tile unit reads its B tiles straight from
// the packed weight, for one row of x as for many, two blocks of outputs by two 16-row tiles of x at a
// time; on a CPU without AMX, a vdpbf16ps loop multiplies 16 outputs per instruction from the same
// bytes, which a tile of one block group reads as one stream (on AVX2, four FMAs per 16 outputs: still
// far more than one stream's memory can feed).
//
// Layout (plinth/engine/prepack.py packs it): output rows in blocks of 16; per block and pair of
// inputs, 64 bytes: row r's two weights at 4r and 4r + 2, which is vdpbf16ps's operand and an AMX B
// tile row (16 pairs of a block make a B tile, 32 inputs). Blocks go in groups of kInterleave (4 on
// AVX-512, 2 on AVX2; simd.h) whose pairs are stored side by side ([group][pair][kInterleave][64
// bytes]; the blocks after the last whole group one after the other).
// Sums run in float32 in a fixed order per output element, whatever the other rows of x, except on
// AVX2 from `gemm_rows` rows on, where MKL's float32 GEMM multiplies a converted copy (panel_gemm.h).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "panel_gemm.h"
#include "simd.h"
#ifdef PLINTH_SIMD

namespace {

namespace simd = plinth_simd;
using simd::F32x16;

constexpr int kBlock = 16;       // output rows per block
constexpr int kPairBytes = 64;   // one pair of inputs for a block's 16 rows
constexpr int kInterleave = simd::kInterleave;  // blocks stored side by side (simd.h)
// AMX from one row on: reading B tiles in place, it streamed SmolLM2's weights for one row at 21 GB/s,
// the vdpbf16ps loop at 19.5 (benchmarks/bf16_linear.py); the latter serves CPUs without AMX.
constexpr int64_t kFewRows = 0;
constexpr bool kWide = simd::kRegisters >= 32;  // AVX-512: 32 vector registers, vdpbf16ps
// Rows of x per register tile: up to 6 on AVX-512 (24 accumulators for a group of 4 blocks, each weight
// vector read once for 6 rows; with the 4 weight vectors and a broadcast, 29 of the 32 registers), 1 on
// AVX2 (whose many-row tiles are split_tile's, below). Against 4-row tiles, SmolLM2's 121 linears on a
// 2-core Zen 4, the two builds alternated in one process (benchmarks/bf16_linear.py --against): 16 rows
// 1.04-1.07x as fast (three runs), 64 rows 1.06x, 1.06x and 0.98x, a 2,048-row prefill 1.05x, 1-8 rows
// even; same bits. rows() makes the tiles of a pass as even as it can: a 6-row tile and a 2-row one
// for 8 rows ran 0.88x as fast as two of 4.
constexpr int kRowTile = kWide ? 6 : 1;
// How far ahead a tile asks for its weights: 2 KB on AVX-512 (1 KB on AVX2), and 16 KB for one row on
// AVX-512 (a one-stream decode step), whose tiles also read kStreams block groups side by side, each
// its own stream of memory. SmolLM2's 121 linears for one row on a 2-core Zen 4 (AVX512-BF16, no AMX),
// the two builds in alternate processes (benchmarks/bf16_linear.py, six pairs): 8.7-10.3 ms a pass
// before, 5.8-8.2 ms so, each pair faster. Two rows 16 KB ahead were no faster (7.3-9.6 ms against
// 7.2-9.6) and 16 rows slower (18.0 against 17.1 ms), so they keep 2 KB.
constexpr int64_t kAheadNear = 8 * kInterleave * kPairBytes;
constexpr int64_t kAheadFar = 256 * kPairBytes;
constexpr int kStreams = 4;

struct Problem {
  const uint32_t* x;  // [M][K/2] pairs of bf16 activations
  const uint8_t* w;   // the packed weight
  c10::BFloat16* y;   // [M][N]
  int64_t M, N, K, pairs;
};

// Where block b's pair j lies, and how many bytes apart consecutive pairs of one block are (the
// interleaved layout of simd.h, a pair being a chunk).
inline const uint8_t* pair_at(const Problem& p, int64_t b, int64_t j) {
  return p.w + simd::Interleaved{p.N / kBlock, p.pairs}.at(b, j) * kPairBytes;
}
inline int64_t pair_stride(const Problem& p, int64_t b) {
  return simd::Interleaved{p.N / kBlock, p.pairs}.stride(b) * kPairBytes;
}

// Block groups, the blocks after the last whole group counting as one.
inline int64_t group_count(const Problem& p) { return (p.N / kBlock + kInterleave - 1) / kInterleave; }

// Blocks [b, end) of a thread's share, in order: part(block, count) for the blocks of a whole group the
// share starts or ends inside, whole(block, next, next_bytes) for each whole group, `next` being the
// share's next whole group (null for its last), and rest(block) for each block after the last whole
// group (they are small). A share may start or end inside a group (in_shares says when).
template <typename Whole, typename Part, typename Rest>
void each_block(const Problem& p, int64_t b, int64_t end, const Whole& whole, const Part& part, const Rest& rest) {
  const int64_t grouped = std::min(end, p.N / kBlock / kInterleave * kInterleave);  // blocks in whole groups
  if (b < grouped && b % kInterleave) {
    const int64_t stop = std::min(grouped, (b / kInterleave + 1) * kInterleave);
    part(b, stop - b);
    b = stop;
  }
  const int64_t last = grouped / kInterleave * kInterleave;  // where a part of a group after them starts
  for (; b < last; b += kInterleave) {
    const bool ahead = b + kInterleave < last;
    whole(b, ahead ? pair_at(p, b + kInterleave, 0) : nullptr, ahead ? p.pairs * kInterleave * kPairBytes : 0);
  }
  if (b < grouped) {
    part(b, grouped - b);
    b = grouped;
  }
  for (; b < end; ++b) rest(b);
}

// Runs walk(begin, end) over each thread's share of the blocks (each_block walks one). From
// kBlockShareRows rows, shares are cut at blocks, so that the threads get the same work: SmolLM2's
// output and down projections have 9 groups, and a 5-4 split of them left one core idle for a ninth of
// each. On a 2-core Zen 4, the source before beside this one, alternated in one process
// (benchmarks/bf16_linear.py --against, 30 rounds, twice): a pass over the model's 121 linears
// 1.017-1.028x as fast at 64 rows (21 and 26 rounds of 30), 0.99x at 16 (the one core left working has
// the memory to itself). With more cores it matters more (not measured here: shares of whole groups
// leave 7 of 16 threads idle on a 576-output projection). For fewer rows, where the product is bound by
// memory, shares stay whole groups: cut inside a group, a share leaves the rest of the group's lines to
// the other core, and 4 rows ran 0.98x as fast.
constexpr int64_t kBlockShareRows = 16;

template <typename Walk>
void in_shares(const Problem& p, const Walk& walk) {
  const int64_t blocks = p.N / kBlock;
  if (p.M >= kBlockShareRows) {
    at::parallel_for(0, blocks, 1, walk);
  } else {
    at::parallel_for(0, group_count(p), 1, [&](int64_t begin, int64_t end) {
      walk(begin * kInterleave, std::min(end * kInterleave, blocks));
    });
  }
}

// Where a row tile's share of the next group's bytes lies: `lines` cache lines from `at`, asked for
// into L2 evenly over the tile's pairs (Bresenham), so that the next group's first tile finds them there.
struct Ahead {
  const char* at = nullptr;
  int64_t lines = 0;
};

// Tile `tile` of `tiles`'s share of the `bytes` at `next` (none when one tile is the only pass).
inline Ahead share_of(const uint8_t* next, int64_t bytes, int64_t tile, int64_t tiles) {
  if (next == nullptr || tiles < 2) return {};
  const int64_t lines = (bytes + 63) / 64;
  const int64_t first = lines * tile / tiles;
  return {reinterpret_cast<const char*>(next) + first * 64, lines * (tile + 1) / tiles - first};
}

// NB blocks of 16 outputs times MT rows of x, one accumulator per output vector: each output's sum runs
// pair after pair in the same order in every tile, so a row gets the same bits beside any rows.
template <int NB, int MT>
void tile(const Problem& p, int64_t block, int64_t m0, int64_t ahead, Ahead next = {}) {
  F32x16 acc[NB][MT];
  for (int b = 0; b < NB; ++b)
    for (int m = 0; m < MT; ++m) acc[b][m] = simd::zero();
  const int64_t stride = pair_stride(p, block);
  const uint8_t* base[NB];
  for (int b = 0; b < NB; ++b) base[b] = pair_at(p, block + b, 0);
  // On AVX-512 one line per group every other pair, `ahead` bytes ahead (see kAheadFar); on AVX2 every
  // line the pair reads (one stream of SmolLM2's linears: 12.3-12.9 -> 10.9-12.0 ms a pass on a Zen 3,
  // benchmarks/bf16_linear.py)
  int64_t owed = 0;
  for (int64_t j = 0; j < p.pairs; ++j) {
    if constexpr (kWide) {
      if (j % 2 == 0)
        for (int b = 0; b < NB; b += kInterleave)
          _mm_prefetch(reinterpret_cast<const char*>(base[b] + j * stride) + ahead, _MM_HINT_T0);
    } else {
      for (int l = 0; l < NB; ++l)
        _mm_prefetch(reinterpret_cast<const char*>(base[0] + j * stride) + ahead + 64 * l, _MM_HINT_T0);
    }
    for (owed += next.lines; owed >= p.pairs; owed -= p.pairs) {
      _mm_prefetch(next.at, _MM_HINT_T1);
      next.at += 64;
    }
    uint32_t xs[MT];
    for (int m = 0; m < MT; ++m) xs[m] = p.x[(m0 + m) * p.pairs + j];
    for (int b = 0; b < NB; ++b)
      for (int m = 0; m < MT; ++m) acc[b][m] = simd::dot_pairs(acc[b][m], base[b] + j * stride, xs[m]);
  }
  for (int b = 0; b < NB; ++b)
    for (int m = 0; m < MT; ++m) simd::store_bf16(p.y + (m0 + m) * p.N + (block + b) * kBlock, acc[b][m]);
}

// tile<NB, size> for a size of 1 to kRowTile, counted up at compile time.
template <int NB, int MT = kRowTile>
void tile_of(int64_t size, const Problem& p, int64_t block, int64_t m0, int64_t ahead, Ahead next) {
  if constexpr (MT > 1) {
    if (size < MT) return tile_of<NB, MT - 1>(size, p, block, m0, ahead, next);
  }
  tile<NB, MT>(p, block, m0, ahead, next);
}

// All rows of x times NB blocks. Past one row tile the first tile streams the group from memory and the
// others read it again from L2, so each tile also asks for its share of `next` (the group this thread
// multiplies next, `next_bytes` long) to be brought into L2, as split_rows does on AVX2. SmolLM2's
// linears on a 2-core Zen 4, a stand-alone copy of the loop, alternately in one process: 16 rows 16.7 ms
// with 2-row tiles of two chains (the kernel before), 15.2 with 4-row tiles, 12.9 with 4-row tiles and
// the next group in L2; 64 rows 48.7, 45.6, 42.8 ms.
template <int NB>
void rows(const Problem& p, int64_t block, const uint8_t* next = nullptr, int64_t next_bytes = 0) {
  const int64_t ahead = kWide && p.M == 1 ? kAheadFar : kAheadNear;
  const int64_t tiles = (p.M + kRowTile - 1) / kRowTile;
  for (int64_t t = 0, m = 0; t < tiles; ++t) {  // tiles of as even a size as the rows allow
    const int64_t size = p.M / tiles + (t < p.M % tiles);
    tile_of<NB>(size, p, block, m, ahead, share_of(next, next_bytes, t, tiles));
    m += size;
  }
}

#if PLINTH_SIMD == 256
// AVX2, two rows of x or more. The one-row tile converts each weight vector to float32 (an AND and a
// shift per 8 lanes) for every row, and its accumulators fill the 16 registers, so M rows stream each
// block group M times: once from memory, then from L2 with the FMA units busy alone. Here a tile is a
// 2-block group by 2 rows (8 accumulators): each weight vector is converted once for both rows, and x
// is split into float32 once per call (simd::split_pairs), so a row's pair costs two broadcasts and no
// integer operation. The sums are the one-row tile's, FMA for FMA (the odd element's product, then the
// even one's, pair after pair), so a row gets the same bits beside any.
//
// Three rows, a decode step of three streams, get one 3-row tile (12 accumulators) instead of a 2-row
// pass and a 1-row one: the weights stream from memory once. It fits the 16 registers only if the
// broadcasts and the mask are made where they are used (`fresh`; held across the block loop they
// spilled accumulators to the stack), and that costs load and shuffle work the FMA units then wait
// on, so only where memory bounds the pass. SmolLM2's linears on a Zen 3, the two tilings
// alternately in one process (benchmarks/bf16_linear.py's shapes): 3 rows 13.0 -> 11.0 ms, while 3-row
// tiles at 16 and 64 rows took 39 and 147 ms against the 2-row tiles' 34 and 121.
template <bool kFresh, typename V>
inline V fresh(V v) {
  if constexpr (kFresh) asm volatile("" : "+x"(v));  // the optimiser no longer knows v's origin
  return v;
}

template <int NB, int MT>
void split_tile(const Problem& p, const simd::SplitPairs& xf, int64_t block, int64_t m0, Ahead ahead = {}) {
  constexpr bool kFresh = MT > 2;
  __m256 acc[NB][MT][2];
  for (int b = 0; b < NB; ++b)
    for (int m = 0; m < MT; ++m) acc[b][m][0] = acc[b][m][1] = _mm256_setzero_ps();
  const int64_t stride = pair_stride(p, block);  // a tile is one group, or one block after the groups
  const uint8_t* base[NB];
  for (int b = 0; b < NB; ++b) base[b] = pair_at(p, block + b, 0);
  const float* xo[MT];
  const float* xe[MT];
  for (int m = 0; m < MT; ++m) {
    xo[m] = xf.odd.get() + (m0 + m) * p.pairs;
    xe[m] = xf.even.get() + (m0 + m) * p.pairs;
  }
  constexpr int kAhead = 16 * kInterleave * kPairBytes;  // 2 KB ahead of a 2-block stream
  int64_t owed = 0;  // Bresenham: ahead.lines lines over p.pairs steps
  for (int64_t j = 0; j < p.pairs; ++j) {
    for (int b = 0; b < NB; ++b)
      _mm_prefetch(reinterpret_cast<const char*>(base[b] + j * stride) + kAhead, _MM_HINT_T0);
    for (owed += ahead.lines; owed >= p.pairs; owed -= p.pairs) {
      _mm_prefetch(ahead.at, _MM_HINT_T1);
      ahead.at += 64;
    }
    for (int b = 0; b < NB; ++b)
      for (int h = 0; h < 2; ++h) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base[b] + j * stride) + h);
        const __m256i high = fresh<kFresh>(_mm256_set1_epi32(static_cast<int>(0xFFFF0000u)));
        const __m256 odd = _mm256_castsi256_ps(_mm256_and_si256(w, high));
        const __m256 even = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
        for (int m = 0; m < MT; ++m) {
          acc[b][m][h] = _mm256_fmadd_ps(odd, fresh<kFresh>(_mm256_broadcast_ss(xo[m] + j)), acc[b][m][h]);
          acc[b][m][h] = _mm256_fmadd_ps(even, fresh<kFresh>(_mm256_broadcast_ss(xe[m] + j)), acc[b][m][h]);
        }
      }
  }
  for (int b = 0; b < NB; ++b)
    for (int m = 0; m < MT; ++m)
      simd::store_bf16(p.y + (m0 + m) * p.N + (block + b) * kBlock, F32x16{acc[b][m][0], acc[b][m][1]});
}

// All rows of x times one group (NB blocks). Past two rows the first tile streams the group from
// memory and the others read it again from L2, so the memory and the FMA units took turns: at 16 rows
// SmolLM2's linears cost about a memory pass plus the arithmetic. So each tile also asks for its share
// of `next` (the group this thread multiplies next, `next_bytes` long) to be brought into L2
// (prefetcht1; t0 gained less), and the next group's first tile finds it there. SmolLM2's linears on a
// Zen 3, with and without it alternately in one process: 8 rows 23.3 -> 19.3 ms, 16 rows 38.2 -> 33.1,
// 64 rows 124.9 -> 120.6 (benchmarks/README.md, "The next group in L2"). Prefetches change no bits.
template <int NB>
void split_rows(const Problem& p, const simd::SplitPairs& xf, int64_t block, const uint8_t* next = nullptr,
                int64_t next_bytes = 0) {
  if (p.M == 3) return split_tile<NB, 3>(p, xf, block, 0);
  const int64_t tiles = p.M / 2 + p.M % 2;
  int64_t m = 0;
  for (; m + 2 <= p.M; m += 2) split_tile<NB, 2>(p, xf, block, m, share_of(next, next_bytes, m / 2, tiles));
  if (m < p.M) split_tile<NB, 1>(p, xf, block, m, share_of(next, next_bytes, m / 2, tiles));
}

void split_run(const Problem& p) {
  const simd::SplitPairs xf = simd::split_pairs(p.x, p.M, p.pairs);
  in_shares(p, [&](int64_t begin, int64_t end) {
    each_block(
        p, begin, end,
        [&](int64_t block, const uint8_t* next, int64_t bytes) { split_rows<kInterleave>(p, xf, block, next, bytes); },
        [&](int64_t block, int64_t count) {
          for (int64_t b = block; b < block + count; ++b) split_rows<1>(p, xf, b);
        },
        [&](int64_t b) { split_rows<1>(p, xf, b); });
  });
}

// AVX2, a prefill's many rows: MKL's float32 GEMM over the weight converted a panel at a time
// (panel_gemm.h). The operator's `gemm_rows` (simd.h's kGemmRows by default: the fewest rows that go
// this way) lets a benchmark or a test keep the register tiles for any count.
// Blocks [b0, b0 + nb) of the packed weight as float32, W.T's columns: out[k][n] for n in the blocks.
void unpack_panel(const Problem& p, int64_t b0, int64_t nb, float* out) {
  const int64_t ld = nb * kBlock;
  at::parallel_for(0, p.pairs, 16, [&](int64_t j0, int64_t j1) {
    const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
    for (int64_t j = j0; j < j1; ++j) {
      float* even = out + 2 * j * ld;  // input 2j: the low half of each row's pair
      float* odd = even + ld;          // input 2j + 1: the high half
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* pair = pair_at(p, b0 + b, j);
        for (int h = 0; h < 2; ++h) {  // rows 8h .. 8h + 7 of the block
          const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pair) + h);
          _mm256_storeu_ps(even + b * kBlock + 8 * h, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
          _mm256_storeu_ps(odd + b * kBlock + 8 * h, _mm256_castsi256_ps(_mm256_and_si256(w, high)));
        }
      }
    }
  });
}

void gemm_run(const Problem& p, const at::Tensor& x, at::Tensor& y) {
  plinth_panel::gemm(x, y, p.N / kBlock, [&](int64_t b0, int64_t nb, float* out) { unpack_panel(p, b0, nb, out); });
}
#endif

// A part of a group: `count` (1 to kInterleave - 1) of its blocks.
void part_rows(const Problem& p, int64_t block, int64_t count) {
  switch (count) {
    case 1: return rows<1>(p, block);
    case 2: return rows<2>(p, block);
    case 3: return rows<3>(p, block);
    default: TORCH_CHECK(false, "plinth::bf16_linear: a part of ", count, " blocks");
  }
}

void vector_run(const Problem& p) {
#if PLINTH_SIMD == 256
  if (p.M >= 2) {
    split_run(p);
    return;
  }
#endif
  in_shares(p, [&](int64_t b, int64_t end) {
#if PLINTH_SIMD == 512
    if (p.M == 1) {  // whole groups, kStreams of them a tile (a share of one row starts at a group)
      const int64_t grouped = p.N / kBlock / kInterleave * kInterleave;
      for (; b + kInterleave * kStreams <= std::min(end, grouped); b += kInterleave * kStreams)
        tile<kInterleave * kStreams, 1>(p, b, 0, kAheadFar);
    }
#endif
    each_block(
        p, b, end, [&](int64_t block, const uint8_t* next, int64_t bytes) { rows<kInterleave>(p, block, next, bytes); },
        [&](int64_t block, int64_t count) { part_rows(p, block, count); }, [&](int64_t r) { rows<1>(p, r); });
  });
}

}  // namespace

#if PLINTH_SIMD == 512 && defined(__AMX_TILE__) && defined(__AMX_BF16__)
#define PLINTH_AMX 1
#include "amx.h"

namespace {

// Tiles C[i][j] = A[i] x B[j] for NM 16-row tiles of x and NB blocks of 16 outputs: C in tmm0-3
// (i * 2 + j), A in tmm4-5, B in tmm6-7, all 16 rows of 64 bytes; each loaded tile serves 2 products
// when both are 2, as oneDNN's AMX kernels block theirs. x is padded to whole 16-row tiles.
void configure_tiles() {
  plinth_amx::TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.shape(t, 16, 64);
  cfg.load();
}

template <int NM, int NB>
void tiles(const Problem& p, const uint32_t* x, int64_t rows_x, int64_t block, int64_t m0, float* c) {
  const int64_t kblocks = p.K / 32;
  const int64_t xstride = p.K * 2;
  const uint8_t* b0 = pair_at(p, block, 0);
  const int64_t s0 = pair_stride(p, block);
  const uint8_t* b1 = NB > 1 ? pair_at(p, block + 1, 0) : b0;
  const int64_t s1 = NB > 1 ? pair_stride(p, block + 1) : s0;
  _tile_zero(0);
  if constexpr (NB > 1) _tile_zero(1);
  if constexpr (NM > 1) _tile_zero(2);
  if constexpr (NM > 1 && NB > 1) _tile_zero(3);
  for (int64_t kb = 0; kb < kblocks; ++kb) {
    const uint32_t* a = x + m0 * p.pairs + kb * 16;
    _tile_loadd(4, a, xstride);
    _tile_loadd(6, b0 + kb * 16 * s0, s0);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NB > 1) {
      _tile_loadd(7, b1 + kb * 16 * s1, s1);
      _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (NM > 1) {
      _tile_loadd(5, a + 16 * p.pairs, xstride);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (NB > 1) _tile_dpbf16ps(3, 5, 7);
    }
  }
  auto out = [&](int64_t mt, int64_t b) {  // C of x tile mt, block b, now in c: its real rows to y
    const int64_t rows = std::min<int64_t>(16, rows_x - mt);
    for (int64_t r = 0; r < rows; ++r)
      simd::store_bf16(p.y + (mt + r) * p.N + b * kBlock, {_mm512_load_ps(c + r * 16)});
  };
  _tile_stored(0, c, 64);
  out(m0, block);
  if constexpr (NB > 1) {
    _tile_stored(1, c, 64);
    out(m0, block + 1);
  }
  if constexpr (NM > 1) {
    _tile_stored(2, c, 64);
    out(m0 + 16, block);
    if constexpr (NB > 1) {
      _tile_stored(3, c, 64);
      out(m0 + 16, block + 1);
    }
  }
}

template <int NB>
void over_rows(const Problem& p, const uint32_t* x, int64_t tiles_x, int64_t block, float* c) {
  int64_t t = 0;
  for (; t + 2 <= tiles_x; t += 2) tiles<2, NB>(p, x, p.M, block, t * 16, c);
  if (t < tiles_x) tiles<1, NB>(p, x, p.M, block, t * 16, c);
}

void amx_run(const Problem& p) {
  const int64_t blocks = p.N / kBlock;
  const int64_t tiles_x = (p.M + 15) / 16;
  const uint32_t* x = p.x;
  // whole tiles: the rows past M are zeros, computed and dropped (a plain buffer, not a tensor: at one
  // row, an allocation through the dispatcher per product was 121 more operators a step)
  std::vector<uint32_t> padded;
  if (p.M % 16) {
    padded.assign(tiles_x * 16 * p.pairs, 0u);
    std::memcpy(padded.data(), p.x, p.M * p.pairs * sizeof(uint32_t));
    x = padded.data();
  }
  // blocks in pairs, each pair over all of x (x stays in the core's cache; each block's B tiles are
  // read from memory once); x outermost instead was 0.66-0.97x as fast at 64-1024 rows
  at::parallel_for(0, (blocks + 1) / 2, 1, [&](int64_t begin, int64_t end) {
    configure_tiles();
    alignas(64) float c[16 * 16];
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t block = pair * 2;
      block + 1 < blocks ? over_rows<2>(p, x, tiles_x, block, c) : over_rows<1>(p, x, tiles_x, block, c);
    }
    _tile_release();
  });
}

}  // namespace
#endif

namespace {

at::Tensor bf16_linear(const at::Tensor& x, const at::Tensor& packed, [[maybe_unused]] int64_t gemm_rows) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kBFloat16 && x.dim() == 2,
              "plinth::bf16_linear: x must be a 2-D bfloat16 CPU tensor");
  TORCH_CHECK(packed.scalar_type() == at::kBFloat16 && packed.dim() == 3 && packed.size(2) == 32 &&
                  packed.is_contiguous(),
              "plinth::bf16_linear: packed must be bfloat16 [blocks, in/2, 32], contiguous");
  const int64_t M = x.size(0), K = x.size(1), N = packed.size(0) * kBlock;
  TORCH_CHECK(packed.size(1) * 2 == K, "plinth::bf16_linear: x has ", K, " features, the weight ",
              packed.size(1) * 2);
  const at::Tensor xc = x.contiguous();
  at::Tensor y = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return y;
  const Problem p{reinterpret_cast<const uint32_t*>(xc.const_data_ptr<c10::BFloat16>()),
                  reinterpret_cast<const uint8_t*>(packed.const_data_ptr<c10::BFloat16>()),
                  y.mutable_data_ptr<c10::BFloat16>(), M, N, K, K / 2};
#ifdef PLINTH_AMX
  if (M > kFewRows && K % 32 == 0 && plinth_amx::granted()) {
    amx_run(p);
    return y;
  }
#endif
#if PLINTH_SIMD == 256
  if (M >= gemm_rows) {
    gemm_run(p, xc, y);
    return y;
  }
#endif
  vector_run(p);
  return y;
}

// How many blocks the packed layouts interleave on this build (simd.h): the Python packers ask.
int64_t interleave() { return plinth_simd::kInterleave; }

}  // namespace

TORCH_LIBRARY_FRAGMENT(plinth, m) {
  const std::string schema = "bf16_linear(Tensor x, Tensor packed, int gemm_rows=" +
                           std::to_string(plinth_simd::kGemmRows) + ") -> Tensor";
  m.def(schema.c_str());
  m.def("interleave() -> int", &interleave);
}
TORCH_LIBRARY_IMPL(plinth, CPU, m) { m.impl("bf16_linear", &bf16_linear); }

#endif  // PLINTH_SIMD: without AVX512-BF16 or AVX2 the operator is not registered and bf16 models keep
        // oneDNN's or ATen's matmuls
