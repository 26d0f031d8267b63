// The 16-lane float32 vector Plinth's CPU kernels are written in (bf16_linear.cpp, lora_add.cpp,
// decode_attention.cpp, decode_layer.cpp), and the packed weights' layout they share with qlinear.cpp.
//
// Why one type for two instruction sets: the kernels were first written for AVX512-BF16 (one zmm
// register, vdpbf16ps), and on a CPU without it (AMD before Zen 4, Intel's client cores, Skylake-era
// servers) none of them was registered: a bf16 model ran ATen's matmuls, with no fused decode layer, at a
// fraction of the speed. `F32x16` is one __m512 where the compiler targets AVX512-BF16 and a pair of
// __m256 where it targets AVX2 with FMA; each kernel is written once against the operations below. The
// bf16 pair products that vdpbf16ps does in one instruction are two FMAs per 8 lanes on AVX2, in the
// same order (the odd element's product first, then the even one's), each product exact in float32.
//
// What differs between the two: AVX2 has 16 vector registers where AVX-512 has 32, so the kernels size
// their register tiles with kRegisters; rounding to bf16 is torch's round-to-nearest-even in integer
// arithmetic (vcvtneps2bf16 on AVX-512, which flushes denormals); and `exp` is the Sleef routine ATen's
// Vectorized<float> calls at that width. A CPU with neither gets no optional operator (native.py).
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512F__)
#define PLINTH_SIMD 512
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define PLINTH_SIMD 256
#endif

#ifdef PLINTH_SIMD

#if PLINTH_SIMD == 512
extern "C" __m512 Sleef_expf16_u10(__m512);  // libtorch_cpu's, what Vectorized<float>::exp calls
#else
extern "C" __m256 Sleef_expf8_u10(__m256);  // the same at AVX2's width
#endif

namespace plinth_simd {

using bf16 = c10::BFloat16;

#if PLINTH_SIMD == 512

constexpr int kRegisters = 32;  // vector registers: how many accumulators a register tile may hold
constexpr int kAtenChunk = 32;  // bf16 elements per Vectorized<BFloat16> of ATen's kernels at this width

struct F32x16 {
  __m512 v;
};

inline F32x16 zero() { return {_mm512_setzero_ps()}; }
inline F32x16 set1(float x) { return {_mm512_set1_ps(x)}; }
inline F32x16 loadu(const float* p) { return {_mm512_loadu_ps(p)}; }
inline void storeu(float* p, F32x16 a) { _mm512_storeu_ps(p, a.v); }
inline F32x16 add(F32x16 a, F32x16 b) { return {_mm512_add_ps(a.v, b.v)}; }
inline F32x16 sub(F32x16 a, F32x16 b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline F32x16 mul(F32x16 a, F32x16 b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline F32x16 div(F32x16 a, F32x16 b) { return {_mm512_div_ps(a.v, b.v)}; }
inline F32x16 fmadd(F32x16 a, F32x16 b, F32x16 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }  // a * b + c
inline F32x16 neg(F32x16 a) { return {_mm512_xor_ps(a.v, _mm512_set1_ps(-0.f))}; }
inline F32x16 exp(F32x16 a) { return {Sleef_expf16_u10(a.v)}; }
inline float reduce_add(F32x16 a) { return _mm512_reduce_add_ps(a.v); }
// max(a, b) lane by lane (b where either is NaN); bit i of a mask is lane i.
inline F32x16 max(F32x16 a, F32x16 b) { return {_mm512_max_ps(a.v, b.v)}; }
inline unsigned mask_equal(F32x16 a, F32x16 b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ); }
inline unsigned mask_nan(F32x16 a) { return _mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q); }

// 16 bf16 values as float32 (exact: a bf16 is the top half of a float32).
inline F32x16 load_bf16(const bf16* p) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16))};
}
inline F32x16 load_half(const c10::Half* p) {
  return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
}

// 16 float32 values rounded to bf16 (nearest even) and stored.
inline void store_bf16(bf16* p, F32x16 a) {
  const __m256bh out = _mm512_cvtneps_pbh(a.v);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), reinterpret_cast<const __m256i&>(out));
}

// float32 -> bf16 -> float32: the rounding an ATen bf16 operator applies to its result.
inline F32x16 round_bf16(F32x16 a) {
  const __m256bh b = _mm512_cvtneps_pbh(a.v);
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(reinterpret_cast<const __m256i&>(b)), 16))};
}

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

// acc[i] += w[2i + 1] * x[1] + w[2i] * x[0] for 16 lanes: w is 64 bytes (16 pairs of bf16), x one
// pair of bf16 activations (as a uint32) for all lanes. vdpbf16ps.
inline F32x16 dot_pairs(F32x16 acc, const void* w, uint32_t x) {
  return {_mm512_dpbf16_ps(acc.v, as_bh(_mm512_loadu_si512(w)), as_bh(_mm512_set1_epi32(static_cast<int>(x))))};
}
// The same with a pair of x per lane (x: 64 bytes, like w).
inline F32x16 dot_pairs(F32x16 acc, const void* w, const void* x) {
  return {_mm512_dpbf16_ps(acc.v, as_bh(_mm512_loadu_si512(w)), as_bh(_mm512_loadu_si512(x)))};
}

// 16 vectors to one: lane i of the result is the sum of v[i]'s 16 lanes (a transposing tree of adds,
// ~3 operations a sum where _mm512_reduce_add_ps takes ~9).
inline F32x16 reduce16(const F32x16* v) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)  // 256-bit halves: lanes 0-7 partials of v[2i], 8-15 of v[2i + 1]
    a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i].v, v[2 * i + 1].v, 0x44),
                         _mm512_shuffle_f32x4(v[2 * i].v, v[2 * i + 1].v, 0xEE));
  for (int i = 0; i < 4; ++i)  // 128-bit lane k: 4 partials of v[4i + k]
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)  // lane k: 2 partials of v[8i + k], 2 of v[8i + 4 + k]
    c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
  // lane k: the sums of v[k], v[4 + k], v[8 + k], v[12 + k]
  const __m512 d = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return {_mm512_permutexvar_ps(order, d)};
}

#else  // AVX2 + FMA: two 8-lane halves

constexpr int kRegisters = 16;
constexpr int kAtenChunk = 16;

struct F32x16 {
  __m256 lo, hi;
};

inline F32x16 zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline F32x16 set1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline F32x16 loadu(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline void storeu(float* p, F32x16 a) {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
inline F32x16 add(F32x16 a, F32x16 b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline F32x16 sub(F32x16 a, F32x16 b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline F32x16 mul(F32x16 a, F32x16 b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline F32x16 div(F32x16 a, F32x16 b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
inline F32x16 fmadd(F32x16 a, F32x16 b, F32x16 c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
inline F32x16 neg(F32x16 a) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  return {_mm256_xor_ps(a.lo, sign), _mm256_xor_ps(a.hi, sign)};
}
inline F32x16 exp(F32x16 a) { return {Sleef_expf8_u10(a.lo), Sleef_expf8_u10(a.hi)}; }
inline float reduce_add(F32x16 a) {
  const __m256 s = _mm256_add_ps(a.lo, a.hi);
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
inline F32x16 max(F32x16 a, F32x16 b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
inline unsigned mask_equal(F32x16 a, F32x16 b) {
  return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a.lo, b.lo, _CMP_EQ_OQ))) |
         static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a.hi, b.hi, _CMP_EQ_OQ))) << 8;
}
inline unsigned mask_nan(F32x16 a) {
  return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a.lo, a.lo, _CMP_UNORD_Q))) |
         static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a.hi, a.hi, _CMP_UNORD_Q))) << 8;
}

inline __m256 widen_bf16x8(__m128i raw) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}
inline F32x16 load_bf16(const bf16* p) {
  return {widen_bf16x8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          widen_bf16x8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
}
inline F32x16 load_half(const c10::Half* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
}

// 8 float32 values rounded to bf16 as torch rounds (nearest even; a NaN becomes 0x7FC0), in the low
// 16 bits of each 32-bit lane.
inline __m256i bf16_bits(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), odd)), 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(rounded, _mm256_set1_epi32(0x7FC0), nan);
}
inline void store_bf16(bf16* p, F32x16 a) {
  // packus interleaves 128-bit lanes ([lo 0-3, hi 0-3, lo 4-7, hi 4-7]); the permute puts them in order
  const __m256i packed = _mm256_packus_epi32(bf16_bits(a.lo), bf16_bits(a.hi));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_permute4x64_epi64(packed, 0xD8));
}
inline F32x16 round_bf16(F32x16 a) {
  return {_mm256_castsi256_ps(_mm256_slli_epi32(bf16_bits(a.lo), 16)),
          _mm256_castsi256_ps(_mm256_slli_epi32(bf16_bits(a.hi), 16))};
}

// vdpbf16ps's arithmetic on 8 lanes: the odd elements' product added first, then the even ones'
// (each product of two bf16 is exact in float32, so an FMA rounds only the sum, as vdpbf16ps does).
inline __m256 dot_pairs8(__m256 acc, __m256i w, __m256i x) {
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(w, high)), _mm256_castsi256_ps(_mm256_and_si256(x, high)), acc);
  return _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(w, 16)), _mm256_castsi256_ps(_mm256_slli_epi32(x, 16)), acc);
}
inline F32x16 dot_pairs(F32x16 acc, const void* w, uint32_t x) {
  const __m256i* wp = static_cast<const __m256i*>(w);
  const __m256i xv = _mm256_set1_epi32(static_cast<int>(x));
  return {dot_pairs8(acc.lo, _mm256_loadu_si256(wp), xv), dot_pairs8(acc.hi, _mm256_loadu_si256(wp + 1), xv)};
}
inline F32x16 dot_pairs(F32x16 acc, const void* w, const void* x) {
  const __m256i* wp = static_cast<const __m256i*>(w);
  const __m256i* xp = static_cast<const __m256i*>(x);
  return {dot_pairs8(acc.lo, _mm256_loadu_si256(wp), _mm256_loadu_si256(xp)),
          dot_pairs8(acc.hi, _mm256_loadu_si256(wp + 1), _mm256_loadu_si256(xp + 1))};
}

// Lane i of the result: the sum of s[i]'s 8 lanes, for 8 vectors (horizontal adds, then the two
// 128-bit halves).
inline __m256 reduce8(const __m256* s) {
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(s[0], s[1]), _mm256_hadd_ps(s[2], s[3]));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(s[4], s[5]), _mm256_hadd_ps(s[6], s[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}
inline F32x16 reduce16(const F32x16* v) {
  __m256 s[16];
  for (int i = 0; i < 16; ++i) s[i] = _mm256_add_ps(v[i].lo, v[i].hi);
  return {reduce8(s), reduce8(s + 8)};
}

#endif

// The first n (< 16) lanes, the rest zero / only the first n stored: the tails of rows that are not
// a multiple of 16 long, float32 or bf16.
inline F32x16 load(const float* p) { return loadu(p); }
inline F32x16 load(const bf16* p) { return load_bf16(p); }
inline void store(float* p, F32x16 a) { storeu(p, a); }
inline void store(bf16* p, F32x16 a) { store_bf16(p, a); }
template <typename T>
inline F32x16 load_first(const T* p, int64_t n) {
  alignas(64) T tmp[16] = {};
  std::memcpy(tmp, p, n * sizeof(T));
  return load(tmp);
}
template <typename T>
inline void store_first(T* p, F32x16 a, int64_t n) {
  alignas(64) T tmp[16];
  store(tmp, a);
  std::memcpy(p, tmp, n * sizeof(T));
}

// The packed weights' layout (plinth.engine.quantization.interleave_blocks writes it): output rows in
// blocks of 16, each block a run of equal-size chunks of inputs, the blocks in groups of kInterleave
// whose chunks are stored side by side ([group][chunk][kInterleave blocks]; the blocks after the last
// whole group one after the other), so that a tile of kInterleave blocks reads one contiguous stream:
// with each block's bytes apart the hardware prefetcher never ramped up (the int4 kernel read 12 GB/s
// in a decode step).
// Four on AVX-512, whose 32 registers hold a 4-block tile's accumulators for two rows; two on AVX2,
// whose 16 hold 2 blocks by 2 rows: a 2-row tile over half of a 4-block group read the group in two
// strided passes and was no faster than one row at a time, while over whole 2-block groups it made
// SmolLM2's bf16 linears 1.15-1.35x as fast at 1-64 rows, and int4's 1.1x at 1-2 (a Zen 3,
// benchmarks/bf16_linear.py and qlinear.py). Python reads it through torch.ops.plinth.interleave.
#if PLINTH_SIMD == 512
constexpr int64_t kInterleave = 4;
#else
constexpr int64_t kInterleave = 2;
#endif

// x's bf16 pairs as float32, the even and the odd input of each pair apart ([rows][pairs] each; exact:
// a bf16 is the top half of a float32): what AVX2's tiles broadcast, one load per input, where
// vdpbf16ps would read the pair as it is. Rows in parallel and nothing zero-filled first: for a
// 2,048-token prefill the one-thread split of a std::vector cost ~6 ms a linear.
struct SplitPairs {
  std::unique_ptr<float[]> even, odd;
};
inline SplitPairs split_pairs(const uint32_t* x, int64_t rows, int64_t pairs) {
  // new float[n]: default-initialized, so not zero-filled (make_unique would zero it)
  SplitPairs s{std::unique_ptr<float[]>(new float[rows * pairs]), std::unique_ptr<float[]>(new float[rows * pairs])};
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(pairs, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * pairs; i < end * pairs; ++i) {
      const uint32_t even = x[i] << 16, odd = x[i] & 0xFFFF0000u;
      std::memcpy(&s.even[i], &even, sizeof even);
      std::memcpy(&s.odd[i], &odd, sizeof odd);
    }
  });
  return s;
}

// plinth::bf16_linear's and plinth::qlinear's default `gemm_rows`: from this many rows an AVX2 build
// multiplies through MKL's float32 GEMM (panel_gemm.h); decode_layer.cpp passes it too. int4 weights
// take that path sooner: their own tiles unpack two nibbles per weight for every row tile, and over
// SmolLM2's 30 layers (Zen 3) the GEMM path ran 0.93x their speed at 32 rows, 1.01x at 48, 1.26x at
// 64, 1.39x at 96 and 1.65x at 128; int8's tiles held out to 128 rows (0.97x) and lost at 192 (1.20x).
constexpr int64_t kGemmRows = 256;
constexpr int64_t kInt4GemmRows = 64;

struct Interleaved {
  int64_t blocks, chunks;

  // Where block b's chunk c is, counted in chunks from the start.
  int64_t at(int64_t b, int64_t c) const {
    const int64_t grouped = blocks / kInterleave * kInterleave;
    return b < grouped ? ((b / kInterleave) * chunks + c) * kInterleave + b % kInterleave
                       : grouped * chunks + (b - grouped) * chunks + c;
  }
  // How many chunks apart block b's consecutive chunks are.
  int64_t stride(int64_t b) const { return b < blocks / kInterleave * kInterleave ? kInterleave : 1; }
};

}  // namespace plinth_simd

#endif  // PLINTH_SIMD
