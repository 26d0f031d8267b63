// plinth::decode_attention(q, k, v, k_cache, v_cache, slots, block_tables, context_lens, scale):
// one query row per entry, each with its own context: write every row's K/V into the paged cache, then
// attend each row's query heads over its context, for bf16/fp16 CPU tensors whose head size is a multiple
// of 16. A row is a request's decode token, or one token of a prefill chunk (its context ending at
// itself: plinth/engine/attention.py lays such a step out row by row).
//
// Why: a one-stream decode step of SmolLM2 attends 30 times over ~200 positions, ~0.2 M multiply-adds
// each, and the torch path (two index_copy_ for the cache, views of the blocks, SDPA's flash kernel
// with a mask) cost ~70 us a layer in dispatch and set-up, ~2 ms of a 22 ms step
// (benchmarks/decode_profile.py). Here it is one operator: per request and KV head, the scores of its
// query heads in float32, a softmax with torch's vectorized exp (Sleef, as ATen's), and the weighted sum
// of the values in float32, rounded once to the cache's dtype. At 64 streams, where the attention is
// most of a step's time after the matmuls, scores 16 positions at a time, the values' accumulators in
// registers and the context's rows asked for ahead took it from 1,069 to 724 us a layer
// (SmolLM2's heads, 150 positions, a 30-layer cache from memory). On a Zen 3 (AVX2) the loads of the
// cache's rows were still most of the time, so each row is asked for well ahead, one at a time beside
// the work: a value row while its key is scored, the next task's key rows during this task's pass over
// the values. Against 16 keys asked for in a burst and values 8 rows ahead, that took 16 and 64 streams
// from 362-367 to 309-312 us and from 1,182-1,526 to 982-1,238 us a layer (1.16-1.23x, same bits).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "simd.h"
#ifdef PLINTH_SIMD

namespace {

namespace simd = plinth_simd;
using simd::F32x16;

inline F32x16 load16(const c10::BFloat16* p) { return simd::load_bf16(p); }
inline F32x16 load16(const c10::Half* p) { return simd::load_half(p); }
template <typename T>
inline void store16(T* p, F32x16 v) {
  alignas(64) float tmp[16];
  simd::storeu(tmp, v);
  for (int i = 0; i < 16; ++i) p[i] = static_cast<T>(tmp[i]);  // round to nearest even, as torch does
}

// A cache row's lines, asked for ahead: a request's context is scattered over blocks of the cache, and
// with each row a few lines apart (the other KV heads' rows between) the hardware prefetcher alone left
// the attention at ~8 GB/s. Into L2, not L1: a task asks for its values while it scores (a context of
// 160 positions is 20 KB of them) and for the next task's keys while it sums the values (20 KB more),
// more than a 32 KB L1 holds beside the rows in use, so lines asked into L1 were evicted before they
// were read. SmolLM2's heads, 160 positions, on a 2-core Zen 4, the two builds alternately
// (benchmarks/decode_attention.py --against): 16 streams 140 -> 105 us a layer, 64 streams 574 -> 437.
inline void prefetch_row(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t at = 0; at < bytes; at += 64) _mm_prefetch(c + at, _MM_HINT_T1);
}

// Elements from one request's q (k, v) row to the next's: the decode layer passes views of its fused
// projection's output, whose rows are (heads + 2 * kv_heads) * dim apart. Made contiguous, they cost three
// clones a layer from two rows on (90 dispatches a SmolLM2 step); 30 calls with SmolLM2's heads took
// 0.42 ms as views against 0.69 ms after Python-made copies at 3 rows, 1.58 against 1.90 ms at 16.
struct Rows {
  int64_t q, k, v;
};

// Query heads a pass over a task's values holds the accumulators of: up to half the register file.
template <int V>
constexpr int kChunk = V >= simd::kRegisters / 2 ? 1 : simd::kRegisters / 2 / V;

// The weighted sum of a task's values for C of its query heads (`scores` their softmax numerators, ctx
// apart; `totals` their sums), written to `out` (the first head's row of the output), asking for the
// next task's key rows (`ahead`, when given) on the way. C is a constant and every loop over the
// accumulators unrolled so that they stay in registers: with the heads counted at run time (a task's
// last pass holds fewer), the compiler kept them on the stack and stored each one after its
// multiply-add. A prefill wave's rows (16 prompts of 128 tokens, SmolLM2's heads; the source before
// built beside this one, alternated in one process) took 5.2-7.5 ms a layer before and 4.4-6.2 ms so
// (three runs; the AVX2 build on the same Zen 4 5.89 -> 5.52); decode steps, whose rows come from
// memory, moved within the runs' noise (16 and 64 streams at 160 and 1,024 positions). Same bits.
template <typename T, int V, int C>
void sum_values(const T* v_cache, const int64_t* at, int64_t ctx, const float* scores, const float* totals,
                const T* k_cache, const std::vector<int64_t>* ahead, T* out) {
  constexpr int64_t dim = 16 * V;
  F32x16 acc[C][V];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 16
    for (int j = 0; j < V; ++j) acc[c][j] = simd::zero();
  const int64_t asked = ahead ? std::min<int64_t>(ctx, static_cast<int64_t>(ahead->size())) : 0;
  for (int64_t p = 0; p < ctx; ++p) {
    if (p < asked) prefetch_row(k_cache + (*ahead)[p], dim * sizeof(T));
    const T* value = v_cache + at[p];
    F32x16 vf[V];
#pragma GCC unroll 16
    for (int j = 0; j < V; ++j) vf[j] = load16(value + j * 16);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const F32x16 weight = simd::set1(scores[c * ctx + p]);
#pragma GCC unroll 16
      for (int j = 0; j < V; ++j) acc[c][j] = simd::fmadd(weight, vf[j], acc[c][j]);
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    const F32x16 inv = simd::set1(1.f / totals[c]);
#pragma GCC unroll 16
    for (int j = 0; j < V; ++j) store16(out + c * dim + j * 16, simd::mul(acc[c][j], inv));
  }
}

// sum_values for `count` heads (1 to kChunk<V>), C counted up to it at compile time.
template <typename T, int V, int C = 1>
void sum_values_of(int64_t count, const T* v_cache, const int64_t* at, int64_t ctx, const float* scores,
                   const float* totals, const T* k_cache, const std::vector<int64_t>* ahead, T* out) {
  if constexpr (C < kChunk<V>) {
    if (count > C) return sum_values_of<T, V, C + 1>(count, v_cache, at, ctx, scores, totals, k_cache, ahead, out);
  }
  sum_values<T, V, C>(v_cache, at, ctx, scores, totals, k_cache, ahead, out);
}

// A prompt's rows attend as a block. Laid out row by row, each row of a 16-prompt, 128-token wave read
// its context again and scored it one query head at a time: ~50 GFLOP/s, 13 % of the wave's time. Rows
// of one request that each hold the next position over the same blocks (a "run") share their context,
// so a unit of up to kUnitRows of them copies the context out of the cache once (keys as they are,
// values two positions an element) and takes its query heads 16 at a time, one a lane: kScoreRows
// positions' scores are as many accumulators of 16 lanes, one vdpbf16ps per pair of head dimensions
// with the key's pair broadcast, so nothing is reduced across lanes; the softmax runs down the lanes,
// and its numerators, rounded to bf16 as torch's flash kernel rounds them, weigh two positions' values
// a vdpbf16ps. SmolLM2's heads over 30 layers' caches (benchmarks/decode_attention.py --against, the
// row-by-row source alternated in one process, 2-core Zen 4): a 16 x 128 wave 4,926 -> 2,312 us a
// layer, 4 x 128 1,438 -> 631, 16 x 32 615 -> 379.
// A run of two rows or more attends as a block, a row alone on its own (a decode row). The two round
// differently (the block weighs the values by bf16 numerators), and a row's bits in a block do not
// depend on the rows beside it: so every prompt position of a request gets the same bits whether its
// prompt was prefilled whole or after a prefix-cache hit (BlockManager.allocate recomputes at least
// two prompt tokens), and a greedy reply does not change when its prompt is sent again.
constexpr int64_t kMinRun = 2;
constexpr int64_t kUnitRows = 32;  // rows a unit holds at most: units of the same size spread over the threads
constexpr int kScoreRows = simd::kRegisters / 4;  // positions scored at once (accumulators in registers)

struct Unit {
  int64_t first, rows, head;  // the unit's first row, its row count and KV head
  int64_t run;                // the first row of its run
};

// Whether row `next` continues row `row`'s run: one position further over the same blocks.
inline bool continues(const int64_t* tables, const int64_t* lens, int64_t width, int64_t block_size, int64_t row,
                      int64_t next) {
  if (lens[next] != lens[row] + 1) return false;
  const int64_t blocks = (lens[next] + block_size - 1) / block_size;
  return std::equal(tables + row * width, tables + row * width + blocks, tables + next * width);
}

// The step's runs of kMinRun rows or more, as units of up to kUnitRows rows once per KV head, one
// after the other (a thread that takes the next adds only its new positions to the context it holds);
// `alone`, the other rows, when there is a run (without one, every row is alone and it stays empty:
// a decode step allocates nothing here).
inline std::vector<Unit> runs_of(const int64_t* tables, const int64_t* lens, int64_t batch, int64_t kv_heads,
                                 int64_t width, int64_t block_size, std::vector<int64_t>& alone) {
  std::vector<Unit> units;
  for (int64_t b = 0; b < batch;) {
    int64_t n = 1;
    while (b + n < batch && continues(tables, lens, width, block_size, b + n - 1, b + n)) ++n;
    if (n >= kMinRun) {
      if (units.empty())
        for (int64_t i = 0; i < b; ++i) alone.push_back(i);
      for (int64_t h = 0; h < kv_heads; ++h)
        for (int64_t i = 0; i < n; i += kUnitRows) units.push_back({b + i, std::min(kUnitRows, n - i), h, b});
    } else if (!units.empty()) {
      for (int64_t i = 0; i < n; ++i) alone.push_back(b + i);
    }
    b += n;
  }
  return units;
}

// A unit's context and a 16-lane block of query heads, reused from unit to unit by a thread.
struct UnitScratch {
  // bf16 pairs: keys [ctx + kScoreRows][dim / 2], values [ctx / 2][dim] (two positions an element),
  // queries [dim / 2][16 lanes], weights [ctx / 2][16 lanes]
  std::vector<uint32_t> keys, values, queries, weights;
  std::vector<float> probs;               // [ctx + kScoreRows][16 lanes]
  int64_t run = -1, head = -1, held = 0;  // whose context it holds, and how many of its positions
};

// The scores of positions p0.. p0 + kScoreRows - 1 for the 16 query heads in `queries`, scaled, into
// probs' rows p0...: position by lane, so nothing is reduced across lanes. Each step multiplies a pair
// of the key's elements, broadcast, with the same pair of the 16 heads (vdpbf16ps: the products exact,
// summed in float32 as a multiply-add over one dimension at a time would).
template <int V>
inline void score_rows(const uint32_t* keys, const uint32_t* queries, int64_t p0, float scale, float* probs) {
  constexpr int64_t pairs = 8 * V;
  F32x16 acc[kScoreRows];
#pragma GCC unroll 16
  for (int i = 0; i < kScoreRows; ++i) acc[i] = simd::zero();
  const uint32_t* key = keys + p0 * pairs;
  for (int64_t m = 0; m < pairs; ++m) {
#pragma GCC unroll 16
    for (int i = 0; i < kScoreRows; ++i) acc[i] = simd::dot_pairs(acc[i], queries + m * 16, key[i * pairs + m]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < kScoreRows; ++i) simd::storeu(probs + (p0 + i) * 16, simd::mul(acc[i], simd::set1(scale)));
}

// The weighted sum of the values for C lanes from `lane`, into their rows of the output: `weights` holds
// their softmax numerators in bf16, two positions a lane ([pair][16 lanes]), and `totals` their float32
// sums; `values` holds the context's values two positions an element ([pair][dim]), so one vdpbf16ps adds
// two positions. Each lane runs to the longest context of the C: a position past a lane's own context
// has weight 0 there, and adds exactly nothing (the values are finite).
template <int V, int C>
void sum_lanes(const uint32_t* values, const uint32_t* weights, const int64_t* lens, const float* totals, int lane,
               c10::BFloat16* const* outs) {
  constexpr int64_t dim = 16 * V;
  F32x16 acc[C][V];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 16
    for (int j = 0; j < V; ++j) acc[c][j] = simd::zero();
  int64_t longest = lens[lane];
  for (int c = 1; c < C; ++c) longest = std::max(longest, lens[lane + c]);
  for (int64_t pair = 0; pair < (longest + 1) / 2; ++pair) {
    const uint32_t* value = values + pair * dim;
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const uint32_t weight = weights[pair * 16 + lane + c];
#pragma GCC unroll 16
      for (int j = 0; j < V; ++j) acc[c][j] = simd::dot_pairs(acc[c][j], value + j * 16, weight);
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    if (!outs[lane + c]) continue;  // a lane that repeats the block's last head
    const F32x16 inv = simd::set1(1.f / totals[lane + c]);
#pragma GCC unroll 16
    for (int j = 0; j < V; ++j) store16(outs[lane + c] + j * 16, simd::mul(acc[c][j], inv));
  }
}

template <int V, int C = 1>
void sum_lanes_of(int count, const uint32_t* values, const uint32_t* weights, const int64_t* lens, const float* totals,
                  int lane, c10::BFloat16* const* outs) {
  if constexpr (C < kChunk<V>) {
    if (count > C) return sum_lanes_of<V, C + 1>(count, values, weights, lens, totals, lane, outs);
  }
  sum_lanes<V, C>(values, weights, lens, totals, lane, outs);
}

// Each lane's softmax numerators down the first n rows of 16 lanes, in place. Apart from the sums
// (sum_rows): the exp is a call, across which no vector register survives, and a running total
// beside it went to the stack and back every row, as did the running maximum while both shared a function.
__attribute__((noinline)) void softmax_lanes(float* rows, int64_t n) {
  F32x16 top = simd::set1(-std::numeric_limits<float>::infinity());
  for (int64_t p = 0; p < n; ++p) top = simd::max(top, simd::loadu(rows + p * 16));
  alignas(64) float tops[16];
  simd::storeu(tops, top);
  for (int64_t p = 0; p < n; ++p)
    simd::storeu(rows + p * 16, simd::exp(simd::sub(simd::loadu(rows + p * 16), simd::loadu(tops))));
}

inline F32x16 sum_rows(const float* rows, int64_t n) {
  F32x16 total = simd::zero();
  for (int64_t p = 0; p < n; ++p) total = simd::add(total, simd::loadu(rows + p * 16));
  return total;
}

// Two bf16 rows as one row of pairs: element d of `even` in the low half, of `odd` in the high half.
inline void pair_rows(const c10::BFloat16* even, const c10::BFloat16* odd, int64_t dim, uint32_t* out) {
  uint16_t lo[256], hi[256];  // dim <= 256
  std::memcpy(lo, even, dim * sizeof(uint16_t));
  std::memcpy(hi, odd, dim * sizeof(uint16_t));
  for (int64_t d = 0; d < dim; ++d) out[d] = lo[d] | static_cast<uint32_t>(hi[d]) << 16;
}

// One unit of a run: its rows' query heads of KV head `h` over the context of its last row (`at`: where
// each position's row starts in the caches). bf16 only: fp16 rows go one by one.
template <int V>
__attribute__((noinline)) void attend_unit(const c10::BFloat16* q, Rows rows, const c10::BFloat16* k_cache,
                                           const c10::BFloat16* v_cache, const std::vector<int64_t>& at,
                                           const int64_t* lens, c10::BFloat16* out, const Unit& unit, int64_t heads,
                                           int64_t group, float scale, UnitScratch& s) {
  constexpr int64_t dim = 16 * V, pairs = 8 * V;
  const int64_t ctx = static_cast<int64_t>(at.size());
  if (s.run != unit.run || s.head != unit.head) {
    s.run = unit.run;
    s.head = unit.head;
    s.held = 0;
  }
  s.held -= s.held % 2;  // an odd last position was paired with zeros: pair it again with the next
  s.keys.resize((ctx + kScoreRows) * pairs);
  s.values.resize((ctx + 1) / 2 * dim);
  constexpr int64_t kAhead = 8;  // positions whose rows are asked for ahead: scattered, and read once
  for (int64_t p = s.held; p < std::min(ctx, s.held + kAhead); ++p) {
    prefetch_row(k_cache + at[p], dim * sizeof(c10::BFloat16));
    prefetch_row(v_cache + at[p], dim * sizeof(c10::BFloat16));
  }
  for (int64_t p = s.held; p < ctx; ++p) {
    if (p + kAhead < ctx) {
      prefetch_row(k_cache + at[p + kAhead], dim * sizeof(c10::BFloat16));
      prefetch_row(v_cache + at[p + kAhead], dim * sizeof(c10::BFloat16));
    }
    std::memcpy(&s.keys[p * pairs], k_cache + at[p], dim * sizeof(c10::BFloat16));
    if (p % 2 == 1) pair_rows(v_cache + at[p - 1], v_cache + at[p], dim, &s.values[p / 2 * dim]);
  }
  if (ctx % 2 == 1) {
    static const c10::BFloat16 zeros[256] = {};
    pair_rows(v_cache + at[ctx - 1], zeros, dim, &s.values[ctx / 2 * dim]);
  }
  std::fill(s.keys.begin() + ctx * pairs, s.keys.end(), 0);  // past the context: the last block scores them
  s.held = ctx;
  s.queries.resize(pairs * 16);
  s.probs.resize((ctx + kScoreRows) * 16);
  s.weights.resize((ctx + 1) / 2 * 16);
  const int64_t count = unit.rows * group;  // the unit's query heads, row by row
  auto query_of = [&](int64_t i) {
    return q + (unit.first + i / group) * rows.q + (unit.head * group + i % group) * dim;
  };
  // a block's query heads are asked for while the block before it is attended: the step's q rows
  // (2,048 x 960 for a 16-prompt wave) are not in cache, and loading them cost a fifth of the unit
  for (int64_t i = 0; i < std::min<int64_t>(16, count); ++i) prefetch_row(query_of(i), dim * sizeof(c10::BFloat16));
  for (int64_t first = 0; first < count; first += 16) {
    for (int64_t i = first + 16; i < std::min(first + 32, count); ++i)
      prefetch_row(query_of(i), dim * sizeof(c10::BFloat16));
    alignas(64) int64_t lane_lens[16];
    c10::BFloat16* outs[16];
    int64_t b = unit.first + first / group, g = first % group;  // the first lane's row and head of the group
    for (int lane = 0; lane < 16; ++lane) {  // lanes past the last head repeat it and are not written
      const int64_t head = unit.head * group + g;
      lane_lens[lane] = lens[b];
      outs[lane] = first + lane < count ? out + (b * heads + head) * dim : nullptr;
      uint32_t query[pairs];
      std::memcpy(query, q + b * rows.q + head * dim, sizeof query);
      for (int64_t m = 0; m < pairs; ++m) s.queries[m * 16 + lane] = query[m];
      if (first + lane + 1 < count && ++g == group) {
        g = 0;
        ++b;
      }
    }
    const int64_t shortest = lane_lens[0], longest = lane_lens[15];  // rows in order: contexts ascend
    for (int64_t p0 = 0; p0 < longest; p0 += kScoreRows)
      score_rows<V>(s.keys.data(), s.queries.data(), p0, scale, s.probs.data());
    const float minus_inf = -std::numeric_limits<float>::infinity();
    for (int64_t p = shortest; p < longest; ++p)
      for (int lane = 0; lane < 16; ++lane)
        if (p >= lane_lens[lane]) s.probs[p * 16 + lane] = minus_inf;
    softmax_lanes(s.probs.data(), longest);
    alignas(64) float totals[16];
    simd::storeu(totals, sum_rows(s.probs.data(), longest));
    for (int64_t pair = 0; pair < (longest + 1) / 2; ++pair) {  // the numerators in bf16, as torch's flash kernel
      alignas(64) c10::BFloat16 even[16], odd[16];
      simd::store_bf16(even, simd::loadu(&s.probs[2 * pair * 16]));
      simd::store_bf16(odd, 2 * pair + 1 < longest ? simd::loadu(&s.probs[(2 * pair + 1) * 16]) : simd::zero());
      pair_rows(even, odd, 16, &s.weights[pair * 16]);
    }
    const int lanes = static_cast<int>(std::min<int64_t>(16, count - first));
    for (int lane = 0; lane < lanes; lane += kChunk<V>)
      sum_lanes_of<V>(std::min(kChunk<V>, lanes - lane), s.values.data(), s.weights.data(), lane_lens, totals, lane,
                      outs);
  }
}

// Where each position's row of KV head h starts in the caches, block by block (`table`: the request's
// blocks): the prefetches reach rows a task ahead, and a division per position (block_size is not a
// constant here) is saved.
inline void context_offsets(const int64_t* table, int64_t ctx, int64_t block_size, int64_t kv_heads, int64_t h,
                            int64_t dim, std::vector<int64_t>& at) {
  at.resize(ctx);
  for (int64_t p = 0, i = 0; p < ctx; ++i)
    for (int64_t slot = table[i] * block_size, o = 0; o < block_size && p < ctx; ++o, ++p)
      at[p] = ((slot + o) * kv_heads + h) * dim;
}

// A step's runs, each unit by attend_unit, taken as the threads come free: a run's units grow with their
// context, so one long prompt's three KV heads split in halves between two threads left one of them the
// larger share (a 2,048-token prompt's attention took 1.09x as long). Apart from attend, which keeps
// the rows on their own (a decode step's) as they were.
template <int V>
__attribute__((noinline)) void attend_runs(const std::vector<Unit>& blocks, const c10::BFloat16* q, Rows rows,
                                           const c10::BFloat16* k_cache, const c10::BFloat16* v_cache,
                                           const int64_t* tables, const int64_t* lens, c10::BFloat16* out,
                                           int64_t heads, int64_t kv_heads, int64_t table_width, int64_t block_size,
                                           float scale) {
  const int64_t count = static_cast<int64_t>(blocks.size()), group = heads / kv_heads;
  const int64_t threads = at::get_num_threads();
  // what a thread takes at once: a run's KV head whole while there are enough of them to go round (its
  // context gathered once), else a few units
  std::vector<int64_t> takes;
  for (int64_t u = 0; u < count; ++u)
    if (u == 0 || blocks[u].run != blocks[u - 1].run || blocks[u].head != blocks[u - 1].head) takes.push_back(u);
  if (static_cast<int64_t>(takes.size()) < 2 * threads) {
    takes.clear();
    for (int64_t u = 0; u < count; u += std::max<int64_t>(1, count / (8 * threads))) takes.push_back(u);
  }
  takes.push_back(count);
  std::atomic<int64_t> taken{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    UnitScratch scratch;
    std::vector<int64_t> at;
    for (int64_t t; (t = taken.fetch_add(1)) + 1 < static_cast<int64_t>(takes.size());)
      for (int64_t u = takes[t]; u < takes[t + 1]; ++u) {
        const Unit& unit = blocks[u];
        const int64_t last = unit.first + unit.rows - 1;
        context_offsets(tables + last * table_width, lens[last], block_size, kv_heads, unit.head, 16 * V, at);
        attend_unit<V>(q, rows, k_cache, v_cache, at, lens, out, unit, heads, group, scale, scratch);
      }
  });
}

// One request and KV head at a time; V = head size / 16. Scores 16 positions at a time (one reduce16
// per query head), the softmax in place, then the values with the accumulators in registers, up to
// half the register file of them (the query heads in chunks of that / V).
template <typename T, int V>
void attend(const T* q, const T* k, const T* v, Rows rows, T* k_cache, T* v_cache, const int64_t* slots,
            const int64_t* tables, const int64_t* lens, T* out, int64_t batch, int64_t heads,
            int64_t kv_heads, int64_t table_width, int64_t block_size, float scale) {
  constexpr int64_t dim = 16 * V;
  const int64_t group = heads / kv_heads;     // query heads per KV head
  auto offsets = [&](int64_t b, int64_t h, std::vector<int64_t>& at) {
    context_offsets(tables + b * table_width, lens[b], block_size, kv_heads, h, dim, at);
  };
  // every row's K/V into the cache before any row attends: the rows of a short prefill chunk each read
  // the rows of the same chunk before them (a few hundred bytes a row, so one thread writes them all)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < kv_heads; ++h) {
      const int64_t new_row = (slots[b] * kv_heads + h) * dim;
      std::copy_n(k + b * rows.k + h * dim, dim, k_cache + new_row);
      std::copy_n(v + b * rows.v + h * dim, dim, v_cache + new_row);
    }
  std::vector<int64_t> alone;  // the rows attended on their own, where there are runs
  const std::vector<Unit> blocks = std::is_same_v<T, c10::BFloat16>
                                       ? runs_of(tables, lens, batch, kv_heads, table_width, block_size, alone)
                                       : std::vector<Unit>{};
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    if (!blocks.empty())
      attend_runs<V>(blocks, q, rows, k_cache, v_cache, tables, lens, out, heads, kv_heads, table_width, block_size,
                     scale);
  }
  const int64_t tasks = (blocks.empty() ? batch : static_cast<int64_t>(alone.size())) * kv_heads;
  auto row_of = [&](int64_t task) { return blocks.empty() ? task / kv_heads : alone[task / kv_heads]; };
  if (tasks == 0) return;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> queries, scores, totals;
    std::vector<F32x16> parts;
    std::vector<int64_t> at, next;
    offsets(row_of(begin), begin % kv_heads, next);
    for (int64_t i = 0; i < std::min<int64_t>(16, static_cast<int64_t>(next.size())); ++i)
      prefetch_row(k_cache + next[i], dim * sizeof(T));
    int64_t prefetched = 16;  // the current task's key rows asked for already
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = row_of(task), h = task % kv_heads;
      const int64_t ctx = lens[b];
      std::swap(at, next);
      if (task + 1 < end) {
        offsets(row_of(task + 1), (task + 1) % kv_heads, next);
      } else {
        next.clear();
      }
      queries.resize(group * dim);
      for (int64_t g = 0; g < group; ++g)
        for (int j = 0; j < V; ++j)
          simd::storeu(&queries[g * dim + j * 16], load16(q + b * rows.q + (h * group + g) * dim + j * 16));
      scores.resize(group * ctx);
      parts.resize(group * 16);
      for (int64_t p0 = 0; p0 < ctx; p0 += 16) {
        const int64_t n = std::min<int64_t>(16, ctx - p0);
        for (int64_t i = 0; i < 16; ++i) {
          if (i >= n) {
            for (int64_t g = 0; g < group; ++g) parts[g * 16 + i] = simd::zero();
            continue;
          }
          if (p0 + i + 16 < ctx && p0 + i + 16 >= prefetched)
            prefetch_row(k_cache + at[p0 + i + 16], dim * sizeof(T));
          prefetch_row(v_cache + at[p0 + i], dim * sizeof(T));
          const T* key = k_cache + at[p0 + i];
          F32x16 kf[V];
          for (int j = 0; j < V; ++j) kf[j] = load16(key + j * 16);
          for (int64_t g = 0; g < group; ++g) {
            F32x16 sum = simd::mul(simd::loadu(&queries[g * dim]), kf[0]);
            for (int j = 1; j < V; ++j) sum = simd::fmadd(simd::loadu(&queries[g * dim + j * 16]), kf[j], sum);
            parts[g * 16 + i] = sum;
          }
        }
        for (int64_t g = 0; g < group; ++g) {
          const F32x16 scaled = simd::mul(simd::reduce16(&parts[g * 16]), simd::set1(scale));
          if (n == 16) {
            simd::storeu(&scores[g * ctx + p0], scaled);
          } else {
            simd::store_first(&scores[g * ctx + p0], scaled, n);
          }
        }
      }
      totals.resize(group);
      for (int64_t g = 0; g < group; ++g) {  // softmax numerators in place, and their sum
        float* s = &scores[g * ctx];
        const float top = *std::max_element(s, s + ctx);
        F32x16 total = simd::zero();
        for (int64_t p = 0; p < ctx; p += 16) {
          const int64_t n = std::min<int64_t>(16, ctx - p);
          if (n == 16) {
            const F32x16 e = simd::exp(simd::sub(simd::loadu(s + p), simd::set1(top)));
            simd::storeu(s + p, e);
            total = simd::add(total, e);
          } else {  // the lanes past the context are -inf: exp gives them 0, as a masked lane would be
            alignas(64) float tail[16];
            std::fill_n(tail, 16, -std::numeric_limits<float>::infinity());
            std::copy_n(s + p, n, tail);
            const F32x16 e = simd::exp(simd::sub(simd::loadu(tail), simd::set1(top)));
            simd::store_first(s + p, e, n);
            total = simd::add(total, e);
          }
        }
        totals[g] = simd::reduce_add(total);
      }
      for (int64_t g0 = 0; g0 < group; g0 += kChunk<V>) {  // the first pass asks for the next task's keys
        sum_values_of<T, V>(std::min<int64_t>(kChunk<V>, group - g0), v_cache, at.data(), ctx, &scores[g0 * ctx],
                            &totals[g0], k_cache, g0 == 0 ? &next : nullptr, out + (b * heads + h * group + g0) * dim);
      }
      prefetched = ctx;  // the values pass asked for the next task's first ctx key rows
    }
  });
}

template <typename T>
void dispatch(int64_t dim, const T* q, const T* k, const T* v, Rows rows, T* k_cache, T* v_cache, const int64_t* slots,
              const int64_t* tables, const int64_t* lens, T* out, int64_t batch, int64_t heads,
              int64_t kv_heads, int64_t table_width, int64_t block_size, float scale) {
#define PLINTH_ATTEND(V) \
  attend<T, V>(q, k, v, rows, k_cache, v_cache, slots, tables, lens, out, batch, heads, kv_heads, table_width, block_size, scale)
  switch (dim / 16) {
    case 1: PLINTH_ATTEND(1); break;
    case 2: PLINTH_ATTEND(2); break;
    case 3: PLINTH_ATTEND(3); break;
    case 4: PLINTH_ATTEND(4); break;
    case 5: PLINTH_ATTEND(5); break;
    case 6: PLINTH_ATTEND(6); break;
    case 7: PLINTH_ATTEND(7); break;
    case 8: PLINTH_ATTEND(8); break;
    case 16: PLINTH_ATTEND(16); break;
    default: TORCH_CHECK(false, "plinth::decode_attention: head size ", dim, " (16 to 128, or 256)");
  }
#undef PLINTH_ATTEND
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache,
                            at::Tensor& v_cache, const at::Tensor& slots, const at::Tensor& block_tables,
                            const at::Tensor& context_lens, int64_t block_size, double scale) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && k_cache.dim() == 3 && v_cache.dim() == 3,
              "plinth::decode_attention: q [B, heads, D], k/v [B, kv_heads, D], caches [slots, kv_heads, D]");
  const auto dtype = q.scalar_type();
  TORCH_CHECK((dtype == at::kBFloat16 || dtype == at::kHalf) && k.scalar_type() == dtype &&
                  v.scalar_type() == dtype && k_cache.scalar_type() == dtype && v_cache.scalar_type() == dtype,
              "plinth::decode_attention: bfloat16 or float16, the same for all");
  TORCH_CHECK(q.device().is_cpu() && k_cache.is_contiguous() && v_cache.is_contiguous(),
              "plinth::decode_attention: CPU tensors, contiguous caches");
  const int64_t batch = q.size(0), heads = q.size(1), dim = q.size(2), kv_heads = k_cache.size(1);
  TORCH_CHECK(dim % 16 == 0 && k_cache.size(2) == dim && heads % kv_heads == 0 && k.size(0) == batch &&
                  k.size(1) == kv_heads && k.size(2) == dim && v.sizes() == k.sizes() &&
                  v_cache.sizes() == k_cache.sizes(),
              "plinth::decode_attention: shapes disagree (the head size must be a multiple of 16)");
  TORCH_CHECK(slots.scalar_type() == at::kLong && block_tables.scalar_type() == at::kLong &&
                  context_lens.scalar_type() == at::kLong && slots.numel() == batch &&
                  block_tables.dim() == 2 && block_tables.size(0) == batch && context_lens.numel() == batch,
              "plinth::decode_attention: int64 slots [B], block_tables [B, N], context_lens [B]");
  // rows may be apart (views of a fused projection), heads within a row must be packed
  auto packed_heads = [](const at::Tensor& t) { return t.stride(2) == 1 && t.stride(1) == t.size(2) ? t : t.contiguous(); };
  const at::Tensor qc = packed_heads(q), kc = packed_heads(k), vc = packed_heads(v);
  const Rows rows{qc.stride(0), kc.stride(0), vc.stride(0)};
  const at::Tensor sc = slots.contiguous(), tc = block_tables.contiguous(), lc = context_lens.contiguous();
  const int64_t width = tc.size(1), cache_blocks = k_cache.size(0) / block_size;
  for (int64_t b = 0; b < batch; ++b) {  // what the loops index, checked once: no read outside the cache
    const int64_t ctx = lc.const_data_ptr<int64_t>()[b], slot = sc.const_data_ptr<int64_t>()[b];
    TORCH_CHECK(ctx >= 1 && ctx <= width * block_size && slot >= 0 && slot < k_cache.size(0),
                "plinth::decode_attention: request ", b, " has context ", ctx, " and slot ", slot);
    const int64_t* row = tc.const_data_ptr<int64_t>() + b * width;
    for (int64_t i = 0; i < (ctx + block_size - 1) / block_size; ++i)
      TORCH_CHECK(row[i] >= 0 && row[i] < cache_blocks, "plinth::decode_attention: block ", row[i], " out of range");
  }
  at::Tensor out = at::empty({batch, heads, dim}, q.options());
  const float s = static_cast<float>(scale);
  if (dtype == at::kBFloat16) {
    using T = c10::BFloat16;
    dispatch<T>(dim, qc.const_data_ptr<T>(), kc.const_data_ptr<T>(), vc.const_data_ptr<T>(), rows,
                k_cache.mutable_data_ptr<T>(), v_cache.mutable_data_ptr<T>(), sc.const_data_ptr<int64_t>(),
                tc.const_data_ptr<int64_t>(), lc.const_data_ptr<int64_t>(), out.mutable_data_ptr<T>(), batch,
                heads, kv_heads, width, block_size, s);
  } else {
    using T = c10::Half;
    dispatch<T>(dim, qc.const_data_ptr<T>(), kc.const_data_ptr<T>(), vc.const_data_ptr<T>(), rows,
                k_cache.mutable_data_ptr<T>(), v_cache.mutable_data_ptr<T>(), sc.const_data_ptr<int64_t>(),
                tc.const_data_ptr<int64_t>(), lc.const_data_ptr<int64_t>(), out.mutable_data_ptr<T>(), batch,
                heads, kv_heads, width, block_size, s);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(plinth, m) {
  m.def(
      "decode_attention(Tensor q, Tensor k, Tensor v, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor slots, "
      "Tensor block_tables, Tensor context_lens, int block_size, float scale) -> Tensor");
}
TORCH_LIBRARY_IMPL(plinth, CPU, m) { m.impl("decode_attention", &decode_attention); }

#endif  // PLINTH_SIMD: without AVX512-BF16 or AVX2 the operator is not registered and decode attention keeps
        // torch's path
