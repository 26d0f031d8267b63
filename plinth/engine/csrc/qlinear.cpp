// plinth::qlinear(x, packed, scales, zeros, bits): y = x @ W.T for int4/int8 weights, bf16 activations,
// on AVX512-BF16 CPUs, and on AVX2 ones (the AVX2 section below).
//
// Why: a decode step of a small quantized model reads every weight once per token, and torch's CPU
// kernels for it (_weight_int4pack_mm_for_cpu, _weight_int8pack_mm) dequantize each weight to float32
// and multiply it by one broadcast activation at a time: with the weights streaming from memory they
// ran at 11-12 GB/s on a 2-core AVX512-BF16 Xeon that reads 22 GB/s (benchmarks/qlinear.py). Here the
// weights' nibbles become bf16 through one table lookup (vpermw) and every vdpbf16ps multiplies 32 of
// them by a pair of activations, so a weight costs a fraction of an instruction.
//
// Layout (plinth/engine/quantization.py packs it): the output rows in blocks of 16, and per block 32
// bytes per "chunk" of inputs, so that after zero-extending the bytes to 16-bit words, word 2r + t
// belongs to row r of the block: exactly the operand vdpbf16ps wants (lane r holds a pair of inputs).
//   int4: a chunk covers 4 inputs; byte 2r + t = q[r][4c + t] | q[r][4c + 2 + t] << 4, q in 0..15,
//         w = (q - 8) * scale + zero per group of 32 inputs; scales and zeros bf16 [blocks][groups][16]
//         (torch's int4 convention: zero = min + 8 * scale is near the group's middle, so rounding it
//         to bf16 costs less than rounding the min would).
//   int8: a chunk covers 2 inputs; byte 2r + t = q[r][2c + t] (two's complement), w = q * scale per
//         row; the byte is split into its low nibble (0..15) and its high one (-8..7, times 16), each
//         exact in bf16, so both products are exact.
// Each product of a weight and an activation is exact in float32; the sums run in float32 in a fixed
// order per output element (chunks in order, then groups in order), independent of the other rows of
// x, so a row's result does not depend on its batch (engine/invariant.py relies on that), except on
// AVX2 from `gemm_rows` rows (by default, -1, simd.h's kInt4GemmRows for int4 and kGemmRows for int8),
// where MKL's GEMM multiplies the weight dequantized to float32 (panel_gemm.h, unpack_panel).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "panel_gemm.h"
#include "simd.h"
#ifdef PLINTH_SIMD

namespace {

namespace simd = plinth_simd;
using simd::F32x16;

constexpr int kBlock = 16;        // output rows per block: one zmm of float32 accumulators
constexpr int kChunkBytes = 32;   // bytes per chunk and block
constexpr int kInterleave = plinth_simd::kInterleave;  // blocks whose chunks lie side by side (simd.h)
constexpr int kInt4Group = 32;    // inputs per int4 scale
// Up to this many rows of x, the vdpbf16ps path; beyond, AMX tiles where the CPU has them. AMX's fixed
// cost per block and group (dequantize, store, reload) made it slower below 6 rows, vdpbf16ps's
// arithmetic made it slower from 6 (benchmarks/qlinear.py: SmolLM2's linears, 13 ms either way at 4-6).
constexpr int64_t kFewRows = 5;

struct Problem {
  const uint32_t* x;        // [M][K/2] pairs of bf16 activations
  const float* xsum;        // [M][groups] sums of the activations per group (int4 only)
  const float* x_even;      // [M][K/2] x's even and odd inputs in float32 (AVX2 only: broadcast loads)
  const float* x_odd;
  const uint8_t* w;         // [blocks][chunks][32]
  const c10::BFloat16* scales;  // [blocks][groups][16]
  const c10::BFloat16* zeros;    // [blocks][groups][16] (int4) or nullptr
  c10::BFloat16* y;         // [M][N]
  int64_t M, N, K, chunks, groups, chunks_per_group;
};

// Where block b's chunk c lies (the interleaved layout of simd.h).
inline const uint8_t* chunk(const Problem& p, int64_t b, int64_t c) {
  return p.w + plinth_simd::Interleaved{p.N / kBlock, p.chunks}.at(b, c) * kChunkBytes;
}

// How far ahead of a tile's stream the few-row path asks for its bytes (16 chunks of a block group)
constexpr int kPrefetchBytes = 16 * kInterleave * kChunkBytes;

#if PLINTH_SIMD == 512
using simd::as_bh;

inline __m512 load_bf16x16(const c10::BFloat16* p) { return simd::load_bf16(p).v; }
inline void store_bf16x16(c10::BFloat16* p, __m512 v) { simd::store_bf16(p, {v}); }

inline uint16_t bf16_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return static_cast<uint16_t>(u >> 16);  // exact for the small integers of the tables
}

// What a nibble stands for: an int4 weight's q - 8; an int8 weight's low nibble (0..15) or its high,
// signed one times 16.
enum class Nibble { kInt4, kInt8Low, kInt8High };

// vpermw reads 5 bits of each index: the table is 32 entries, entry i standing for what i's low four
// bits mean (a shifted high nibble has nothing above them).
inline __m512i table(Nibble kind) {
  alignas(64) uint16_t t[32];
  for (int i = 0; i < 32; ++i) {
    const int nibble = i & 15;
    const int value = kind == Nibble::kInt4      ? nibble - 8
                      : kind == Nibble::kInt8Low ? nibble
                                                 : 16 * (nibble >= 8 ? nibble - 16 : nibble);
    t[i] = bf16_bits(static_cast<float>(value));
  }
  return _mm512_load_si512(t);
}

// NB blocks of 16 output rows times MT rows of x: NB * MT float32 accumulators per group and as many
// for the result, reusing each dequantized chunk MT times and giving the core NB * MT independent
// chains of vdpbf16ps.
template <int BITS, int NB, int MT>
void tile(const Problem& p, int64_t block, int64_t m0) {
  const __m512i lo_table = table(BITS == 4 ? Nibble::kInt4 : Nibble::kInt8Low);
  const __m512i hi_table = table(BITS == 4 ? Nibble::kInt4 : Nibble::kInt8High);
  __m512 acc[NB][MT];
  for (int b = 0; b < NB; ++b)
    for (int m = 0; m < MT; ++m) acc[b][m] = _mm512_setzero_ps();
  const int64_t pairs = p.K / 2;
  for (int64_t g = 0; g < p.groups; ++g) {
    __m512 part[NB][MT];
    for (int b = 0; b < NB; ++b)
      for (int m = 0; m < MT; ++m) part[b][m] = _mm512_setzero_ps();
    const int64_t c_end = (g + 1) * p.chunks_per_group;
    for (int64_t c = g * p.chunks_per_group; c < c_end; ++c) {
      // the pairs of activations this chunk's low and high nibbles multiply
      const int64_t lo_pair = BITS == 4 ? 2 * c : c;
      const int64_t hi_pair = BITS == 4 ? 2 * c + 1 : c;
      for (int b = 0; b < NB; ++b) {
        const uint8_t* src = chunk(p, block + b, c);
        if (b == 0) _mm_prefetch(reinterpret_cast<const char*>(src) + kPrefetchBytes, _MM_HINT_T0);
        const __m512i words = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)));
        const __m512bh lo = as_bh(_mm512_permutexvar_epi16(words, lo_table));
        const __m512bh hi = as_bh(_mm512_permutexvar_epi16(_mm512_srli_epi16(words, 4), hi_table));
        for (int m = 0; m < MT; ++m) {
          const uint32_t* xm = p.x + (m0 + m) * pairs;
          part[b][m] = _mm512_dpbf16_ps(part[b][m], lo, as_bh(_mm512_set1_epi32(static_cast<int>(xm[lo_pair]))));
          part[b][m] = _mm512_dpbf16_ps(part[b][m], hi, as_bh(_mm512_set1_epi32(static_cast<int>(xm[hi_pair]))));
        }
      }
    }
    for (int b = 0; b < NB; ++b) {
      const int64_t at = ((block + b) * p.groups + g) * kBlock;
      const __m512 scale = load_bf16x16(p.scales + at);
      if constexpr (BITS == 4) {
        const __m512 zero = load_bf16x16(p.zeros + at);
        for (int m = 0; m < MT; ++m) {
          acc[b][m] = _mm512_fmadd_ps(part[b][m], scale, acc[b][m]);
          acc[b][m] = _mm512_fmadd_ps(zero, _mm512_set1_ps(p.xsum[(m0 + m) * p.groups + g]), acc[b][m]);
        }
      } else {
        for (int m = 0; m < MT; ++m) acc[b][m] = _mm512_fmadd_ps(part[b][m], scale, acc[b][m]);
      }
    }
  }
  for (int b = 0; b < NB; ++b)
    for (int m = 0; m < MT; ++m) store_bf16x16(p.y + (m0 + m) * p.N + (block + b) * kBlock, acc[b][m]);
}

#else  // AVX2: no bf16 dot product and no 16-bit table lookup

// Lane r of each 8-lane half of a chunk: bytes 2r and 2r + 1 of that half (its row r's two inputs), as
// byte 2r | byte 2r + 1 << 8. Their nibbles (int4) or bytes (int8) become float32 in registers, exact
// (small integers), and are multiplied by the activations (split into float32 once per call, so each
// is one broadcast load) with FMAs in vdpbf16ps's order (a pair's odd input first): each product is
// exact and the sums run in a fixed order per output element.

// Pairs of inputs per chunk: int4's low nibbles are pair 2c (inputs 4c, 4c + 1), its high ones pair
// 2c + 1; int8's two bytes are pair c.
template <int BITS>
constexpr int kChunkPairs = BITS == 4 ? 2 : 1;

// One half of a chunk (16 bytes: 8 rows) as float32: v[2k] the odd and v[2k + 1] the even inputs of the
// chunk's pair k, one lane per row.
template <int BITS>
inline void dequantize_half(const uint8_t* src, __m256* v) {
  const __m256i q = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
  if constexpr (BITS == 4) {  // q - 8 of the nibble `shift` bits up in each lane
    auto int4 = [&](int shift) {
      const __m256i nibble = _mm256_and_si256(_mm256_srli_epi32(q, shift), _mm256_set1_epi32(0xF));
      return _mm256_sub_ps(_mm256_cvtepi32_ps(nibble), _mm256_set1_ps(8.f));
    };
    v[0] = int4(8), v[1] = int4(0), v[2] = int4(12), v[3] = int4(4);
  } else {  // the signed byte 1 (odd) and 0 (even) of each lane
    v[0] = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(q, 16), 24));
    v[1] = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(q, 24), 24));
  }
}

// NB blocks of 16 output rows times MT rows of x, as the AVX-512 tile above, with 2 * NB * MT
// accumulators of two ymm registers each.
template <int BITS, int NB, int MT>
void tile(const Problem& p, int64_t block, int64_t m0) {
  F32x16 acc[NB][MT];
  for (int b = 0; b < NB; ++b)
    for (int m = 0; m < MT; ++m) acc[b][m] = simd::zero();
  const int64_t pairs = p.K / 2;
  for (int64_t g = 0; g < p.groups; ++g) {
    F32x16 part[NB][MT];
    for (int b = 0; b < NB; ++b)
      for (int m = 0; m < MT; ++m) part[b][m] = simd::zero();
    const int64_t c_end = (g + 1) * p.chunks_per_group;
    for (int64_t c = g * p.chunks_per_group; c < c_end; ++c) {
      for (int b = 0; b < NB; ++b) {
        const uint8_t* src = chunk(p, block + b, c);
        if (b == 0) _mm_prefetch(reinterpret_cast<const char*>(src) + kPrefetchBytes, _MM_HINT_T0);
        for (int half = 0; half < 2; ++half) {
          __m256 v[2 * kChunkPairs<BITS>];
          dequantize_half<BITS>(src + 16 * half, v);
          for (int m = 0; m < MT; ++m) {
            const int64_t at = (m0 + m) * pairs + c * kChunkPairs<BITS>;
            __m256& a = half == 0 ? part[b][m].lo : part[b][m].hi;
            for (int k = 0; k < kChunkPairs<BITS>; ++k) {
              a = _mm256_fmadd_ps(v[2 * k], _mm256_broadcast_ss(p.x_odd + at + k), a);
              a = _mm256_fmadd_ps(v[2 * k + 1], _mm256_broadcast_ss(p.x_even + at + k), a);
            }
          }
        }
      }
    }
    for (int b = 0; b < NB; ++b) {
      const int64_t at = ((block + b) * p.groups + g) * kBlock;
      const F32x16 scale = simd::load_bf16(p.scales + at);
      if constexpr (BITS == 4) {
        const F32x16 zero = simd::load_bf16(p.zeros + at);
        for (int m = 0; m < MT; ++m) {
          acc[b][m] = simd::fmadd(part[b][m], scale, acc[b][m]);
          acc[b][m] = simd::fmadd(zero, simd::set1(p.xsum[(m0 + m) * p.groups + g]), acc[b][m]);
        }
      } else {
        for (int m = 0; m < MT; ++m) acc[b][m] = simd::fmadd(part[b][m], scale, acc[b][m]);
      }
    }
  }
  for (int b = 0; b < NB; ++b)
    for (int m = 0; m < MT; ++m) simd::store_bf16(p.y + (m0 + m) * p.N + (block + b) * kBlock, acc[b][m]);
}

// More than kTileRows rows on AVX2: each block's group is dequantized once into float32 (its pairs'
// odd and even inputs for the 16 rows, as the tile above computes them), then every row of x is
// multiplied by it, 4 rows at a time (8 chains of FMAs). Per output element the products are added in
// the tile's order (pairs in order, a pair's odd input first), so a row's result does not depend on
// how many rows there are; the tile alone re-dequantized each chunk for every 2 rows, and at 16 rows
// was slower than torch's kernel.
constexpr int64_t kTileRows = 4;

template <int BITS, int MT>
void group_rows(const Problem& p, const float* w, int64_t pairs_in_group, int64_t first_pair, int64_t m0,
                F32x16 scale, F32x16 zero, int64_t g, float* acc) {
  const int64_t pairs = p.K / 2;
  __m256 part[MT][2];
  for (int m = 0; m < MT; ++m) part[m][0] = part[m][1] = _mm256_setzero_ps();
  for (int64_t j = 0; j < pairs_in_group; ++j) {
    const float* wj = w + j * 32;  // [odd: 16 rows][even: 16 rows]
    const __m256 odd0 = _mm256_loadu_ps(wj), odd1 = _mm256_loadu_ps(wj + 8);
    const __m256 even0 = _mm256_loadu_ps(wj + 16), even1 = _mm256_loadu_ps(wj + 24);
    for (int m = 0; m < MT; ++m) {
      const int64_t at = (m0 + m) * pairs + first_pair + j;
      const __m256 xo = _mm256_broadcast_ss(p.x_odd + at), xe = _mm256_broadcast_ss(p.x_even + at);
      part[m][0] = _mm256_fmadd_ps(even0, xe, _mm256_fmadd_ps(odd0, xo, part[m][0]));
      part[m][1] = _mm256_fmadd_ps(even1, xe, _mm256_fmadd_ps(odd1, xo, part[m][1]));
    }
  }
  for (int m = 0; m < MT; ++m) {
    float* a = acc + (m0 + m) * kBlock;
    F32x16 sum = simd::fmadd(F32x16{part[m][0], part[m][1]}, scale, simd::loadu(a));
    if constexpr (BITS == 4) sum = simd::fmadd(zero, simd::set1(p.xsum[(m0 + m) * p.groups + g]), sum);
    simd::storeu(a, sum);
  }
}

template <int BITS>
void dequantized_run(const Problem& p) {
  const int64_t pairs_in_group = p.chunks_per_group * kChunkPairs<BITS>;
  at::parallel_for(0, p.N / kBlock, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> w(pairs_in_group * 32), acc(p.M * kBlock);
    for (int64_t block = begin; block < end; ++block) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t g = 0; g < p.groups; ++g) {
        for (int64_t c = 0; c < p.chunks_per_group; ++c) {
          const uint8_t* src = chunk(p, block, g * p.chunks_per_group + c);
          for (int half = 0; half < 2; ++half) {
            __m256 v[2 * kChunkPairs<BITS>];
            dequantize_half<BITS>(src + 16 * half, v);
            for (int k = 0; k < kChunkPairs<BITS>; ++k) {  // pair j: [odd: 16 rows][even: 16 rows]
              float* pair = w.data() + (c * kChunkPairs<BITS> + k) * 32;
              _mm256_storeu_ps(pair + 8 * half, v[2 * k]);
              _mm256_storeu_ps(pair + 16 + 8 * half, v[2 * k + 1]);
            }
          }
        }
        const int64_t at = (block * p.groups + g) * kBlock;
        const F32x16 scale = simd::load_bf16(p.scales + at);
        const F32x16 zero = BITS == 4 ? simd::load_bf16(p.zeros + at) : simd::zero();
        const int64_t first_pair = g * pairs_in_group;
        int64_t m = 0;
        for (; m + 4 <= p.M; m += 4)
          group_rows<BITS, 4>(p, w.data(), pairs_in_group, first_pair, m, scale, zero, g, acc.data());
        for (; m < p.M; ++m)
          group_rows<BITS, 1>(p, w.data(), pairs_in_group, first_pair, m, scale, zero, g, acc.data());
      }
      for (int64_t m = 0; m < p.M; ++m)
        simd::store_bf16(p.y + m * p.N + block * kBlock, simd::loadu(acc.data() + m * kBlock));
    }
  });
}

// From `gemm_rows` rows (a prefill): blocks [b0, b0 + nb) dequantized to float32 W.T columns for MKL's
// GEMM (panel_gemm.h), each weight as its group's (q - 8) * scale + zero (int4; one FMA, one rounding)
// or q * scale (int8, exact). With bf16 going that way, the tiles above took 2.9x bf16's time at 2,048
// rows of SmolLM2's layer shapes (benchmarks/README.md, "Many rows through MKL").
template <int BITS>
void unpack_panel(const Problem& p, int64_t b0, int64_t nb, float* out) {
  const int64_t ld = nb * kBlock;
  at::parallel_for(0, nb, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      for (int64_t g = 0; g < p.groups; ++g) {
        const int64_t at = ((b0 + b) * p.groups + g) * kBlock;
        const F32x16 scale = simd::load_bf16(p.scales + at);
        const F32x16 zero = BITS == 4 ? simd::load_bf16(p.zeros + at) : simd::zero();
        for (int64_t c = g * p.chunks_per_group; c < (g + 1) * p.chunks_per_group; ++c)
          for (int half = 0; half < 2; ++half) {  // rows 8 * half .. 8 * half + 7 of the block
            __m256 v[2 * kChunkPairs<BITS>];
            dequantize_half<BITS>(chunk(p, b0 + b, c) + 16 * half, v);
            const __m256 s = half == 0 ? scale.lo : scale.hi, z = half == 0 ? zero.lo : zero.hi;
            for (int k = 0; k < kChunkPairs<BITS>; ++k) {  // pair c * pairs + k: inputs 2 * pair, 2 * pair + 1
              float* even = out + 2 * (c * kChunkPairs<BITS> + k) * ld + b * kBlock + 8 * half;
              for (int odd = 0; odd < 2; ++odd) {
                const __m256 q = v[2 * k + 1 - odd];
                _mm256_storeu_ps(even + odd * ld, BITS == 4 ? _mm256_fmadd_ps(q, s, z) : _mm256_mul_ps(q, s));
              }
            }
          }
      }
  });
}
#endif

template <int BITS, int NB>
void rows(const Problem& p, int64_t block) {
  // 2 * NB * MT accumulators within the vector registers (AVX-512: 32 of one register, AVX2: 16 of two)
  constexpr int kRowTile = simd::kRegisters < 32 ? 2 : NB >= 4 ? 2 : 4;
  int64_t m = 0;
  for (; m + kRowTile <= p.M; m += kRowTile) tile<BITS, NB, kRowTile>(p, block, m);
  if constexpr (kRowTile > 2) {
    if (p.M - m == 3) tile<BITS, NB, 3>(p, block, m);
    if (p.M - m == 2) tile<BITS, NB, 2>(p, block, m);
  }
  if (p.M - m == 1) tile<BITS, NB, 1>(p, block, m);
}

template <int BITS>
void run(const Problem& p) {
  const int64_t blocks = p.N / kBlock;
  // NB = 4 blocks per tile for a few rows (four independent chains), 2 for more (reuse of each chunk);
  // one on AVX2, whose accumulators take two registers each
  constexpr bool kOneBlock = simd::kRegisters < 32;
  const bool few = p.M <= 2;
  const int64_t nb = kOneBlock ? 1 : few ? 4 : 2;
  const int64_t tiles = (blocks + nb - 1) / nb;
  at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t block = t * nb;
      const int64_t left = blocks - block;
      if constexpr (kOneBlock) {
        rows<BITS, 1>(p, block);
      } else if (left >= nb) {
        few ? rows<BITS, 4>(p, block) : rows<BITS, 2>(p, block);
      } else {
        for (int64_t b = block; b < blocks; ++b) rows<BITS, 1>(p, b);
      }
    }
  });
}


#if PLINTH_SIMD == 512 && defined(__AMX_TILE__) && defined(__AMX_BF16__)
#define PLINTH_AMX 1
#include "amx.h"

// tmm0/tmm1: C and A of a full 16-row tile of x; tmm3/tmm4: the same for the last, shorter tile;
// tmm2: B, 32 inputs (16 pairs) by 16 output rows, as the dequantized chunks already lay them out.
void configure_tiles(int tail_rows) {
  plinth_amx::TileConfig cfg;
  const int tail = tail_rows > 0 ? tail_rows : 16;
  for (int t = 0; t < 3; ++t) cfg.shape(t, 16, 64);
  cfg.shape(3, tail, 64);
  cfg.shape(4, tail, 64);
  cfg.load();
}

// Many rows (a prefill, or a decode step of many streams): vdpbf16ps is the bound there, so the
// dequantized weights go through the AMX tile unit instead: per block of 16 outputs and group of 32
// inputs, the group's chunks are dequantized once into a B tile, and every 16-row tile of x is
// multiplied by it; the group's partial sums are scaled (and the zero's share added) in float32, as on
// the few-row path, into a per-block accumulator of M x 16.
template <int BITS>
void amx_run(const Problem& p) {
  const int64_t blocks = p.N / kBlock;
  const int64_t pairs = p.K / 2;
  const int64_t kblocks = p.K / 32;
  const int64_t full = p.M / 16;
  const int tail = static_cast<int>(p.M % 16);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    configure_tiles(tail);
    alignas(64) uint16_t btile[16 * 32];
    alignas(64) float ctile[16 * 16];
    std::vector<float> acc(p.M * kBlock);
    const __m512i table4 = table(Nibble::kInt4);
    for (int64_t block = begin; block < end; ++block) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t kb = 0; kb < kblocks; ++kb) {
        if constexpr (BITS == 4) {  // 8 chunks of 4 inputs: rows 2j (low nibbles) and 2j + 1 (high)
          for (int j = 0; j < 8; ++j) {
            const uint8_t* src = chunk(p, block, kb * 8 + j);
            const __m512i words = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)));
            _mm512_store_si512(btile + (2 * j) * 32, _mm512_permutexvar_epi16(words, table4));
            _mm512_store_si512(btile + (2 * j + 1) * 32,
                               _mm512_permutexvar_epi16(_mm512_srli_epi16(words, 4), table4));
          }
        } else {  // 16 chunks of 2 inputs: each byte, an int8, is exact in bf16
          for (int j = 0; j < 16; ++j) {
            const uint8_t* src = chunk(p, block, kb * 16 + j);
            const __m512 a = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src))));
            const __m512 b = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16))));
            const __m512bh both = _mm512_cvtne2ps_pbh(b, a);
            _mm512_store_si512(btile + j * 32, reinterpret_cast<const __m512i&>(both));
          }
        }
        _tile_loadd(2, btile, 64);
        const __m512 scale = BITS == 4 ? load_bf16x16(p.scales + (block * p.groups + kb) * kBlock) : _mm512_set1_ps(1.f);
        const __m512 zero = BITS == 4 ? load_bf16x16(p.zeros + (block * p.groups + kb) * kBlock) : _mm512_setzero_ps();
        for (int64_t t = 0; t <= full; ++t) {
          const int rows = t < full ? 16 : tail;
          if (rows == 0) break;
          const void* a = p.x + (t * 16) * pairs + kb * 16;
          if (t < full) {
            _tile_zero(0);
            _tile_loadd(1, a, p.K * 2);
            _tile_dpbf16ps(0, 1, 2);
            _tile_stored(0, ctile, 64);
          } else {
            _tile_zero(3);
            _tile_loadd(4, a, p.K * 2);
            _tile_dpbf16ps(3, 4, 2);
            _tile_stored(3, ctile, 64);
          }
          for (int r = 0; r < rows; ++r) {
            const int64_t m = t * 16 + r;
            float* out = acc.data() + m * kBlock;
            __m512 v = _mm512_fmadd_ps(_mm512_load_ps(ctile + r * 16), scale, _mm512_loadu_ps(out));
            if constexpr (BITS == 4) v = _mm512_fmadd_ps(zero, _mm512_set1_ps(p.xsum[m * p.groups + kb]), v);
            _mm512_storeu_ps(out, v);
          }
        }
      }
      const __m512 row_scale = BITS == 8 ? load_bf16x16(p.scales + block * kBlock) : _mm512_set1_ps(1.f);
      for (int64_t m = 0; m < p.M; ++m)
        store_bf16x16(p.y + m * p.N + block * kBlock, _mm512_mul_ps(_mm512_loadu_ps(acc.data() + m * kBlock), row_scale));
    }
    _tile_release();
  });
}
#endif

at::Tensor qlinear(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scales,
                   const c10::optional<at::Tensor>& zeros, int64_t bits, [[maybe_unused]] int64_t gemm_rows) {
  TORCH_CHECK(bits == 4 || bits == 8, "plinth::qlinear: bits must be 4 or 8, got ", bits);
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kBFloat16 && x.dim() == 2,
              "plinth::qlinear: x must be a 2-D bfloat16 CPU tensor");
  TORCH_CHECK(packed.scalar_type() == at::kByte && packed.dim() == 3 && packed.size(2) == kChunkBytes &&
                  packed.is_contiguous(),
              "plinth::qlinear: packed must be uint8 [blocks, chunks, 32], contiguous");
  TORCH_CHECK(scales.scalar_type() == at::kBFloat16 && scales.dim() == 3 && scales.is_contiguous() &&
                  scales.size(0) == packed.size(0) && scales.size(2) == kBlock,
              "plinth::qlinear: scales must be bfloat16 [blocks, groups, 16], contiguous");
  const int64_t M = x.size(0), K = x.size(1), N = packed.size(0) * kBlock;
  const int64_t per_chunk = bits == 4 ? 4 : 2;
  TORCH_CHECK(packed.size(1) * per_chunk == K, "plinth::qlinear: x has ", K, " features, the weight ",
              packed.size(1) * per_chunk);
  const int64_t groups = scales.size(1);
  if (bits == 4) {
    TORCH_CHECK(groups * kInt4Group == K, "plinth::qlinear: int4 needs one scale per 32 inputs");
    TORCH_CHECK(zeros.has_value() && zeros->sizes() == scales.sizes() && zeros->is_contiguous() &&
                    zeros->scalar_type() == at::kBFloat16,
                "plinth::qlinear: int4 needs zeros shaped like the scales");
  } else {
    TORCH_CHECK(groups == 1, "plinth::qlinear: int8 takes one scale per output row");
  }
  const at::Tensor xc = x.contiguous();
  at::Tensor y = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return y;
  Problem p{nullptr,
            nullptr,
            nullptr,
            nullptr,
            packed.const_data_ptr<uint8_t>(),
            scales.const_data_ptr<c10::BFloat16>(),
            bits == 4 ? zeros->const_data_ptr<c10::BFloat16>() : nullptr,
            y.mutable_data_ptr<c10::BFloat16>(),
            M, N, K, packed.size(1), groups, packed.size(1) / groups};
#if PLINTH_SIMD == 256
  if (M >= (gemm_rows >= 0 ? gemm_rows : bits == 4 ? simd::kInt4GemmRows : simd::kGemmRows)) {
    plinth_panel::gemm(xc, y, N / kBlock, [&](int64_t b0, int64_t nb, float* out) {
      bits == 4 ? unpack_panel<4>(p, b0, nb, out) : unpack_panel<8>(p, b0, nb, out);
    });
    return y;
  }
#endif
  std::vector<float> xsum;
  if (bits == 4) {  // the zero's share of every output: min * (sum of the group's activations)
    xsum.assign(M * groups, 0.f);
    const c10::BFloat16* xp = xc.const_data_ptr<c10::BFloat16>();
    for (int64_t m = 0; m < M; ++m)
      for (int64_t g = 0; g < groups; ++g) {
        float s = 0.f;
        for (int64_t k = g * kInt4Group; k < (g + 1) * kInt4Group; ++k) s += static_cast<float>(xp[m * K + k]);
        xsum[m * groups + g] = s;
      }
  }
  const uint32_t* pairs = reinterpret_cast<const uint32_t*>(xc.const_data_ptr<c10::BFloat16>());
  // AVX2's tile reads x's inputs as float32
  const simd::SplitPairs split = simd::kRegisters < 32 ? simd::split_pairs(pairs, M, K / 2) : simd::SplitPairs{};
  p.x = pairs, p.xsum = xsum.data(), p.x_even = split.even.get(), p.x_odd = split.odd.get();
#ifdef PLINTH_AMX
  if (M > kFewRows && K % 32 == 0 && plinth_amx::granted()) {
    bits == 4 ? amx_run<4>(p) : amx_run<8>(p);
    return y;
  }
#endif
#if PLINTH_SIMD == 256
  if (M > kTileRows) {
    bits == 4 ? dequantized_run<4>(p) : dequantized_run<8>(p);
    return y;
  }
#endif
  bits == 4 ? run<4>(p) : run<8>(p);
  return y;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(plinth, m) {
  // gemm_rows -1: the threshold for the weight's bits (kInt4GemmRows or kGemmRows)
  m.def("qlinear(Tensor x, Tensor packed, Tensor scales, Tensor? zeros, int bits, int gemm_rows=-1) -> Tensor");
}
TORCH_LIBRARY_IMPL(plinth, CPU, m) { m.impl("qlinear", &qlinear); }

#endif  // PLINTH_SIMD: without AVX512-BF16 or AVX2 the operator is not registered and quantization uses
        // torch's kernels
