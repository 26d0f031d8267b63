// AVX-512 helpers and the weight layout shared by Plinth's CPU kernels (qlinear.cpp, bf16_linear.cpp, lora_add.cpp,
// decode_attention.cpp). Included where the compiler targets AVX-512 (-march=native on such a CPU).
#pragma once

#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include <cstdint>

namespace plinth_simd {

// 16 bf16 values as float32 (exact: a bf16 is the top half of a float32).
inline __m512 load_bf16x16(const c10::BFloat16* p) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

// 16 vectors to one: lane i of the result is the sum of v[i]'s 16 lanes (a transposing tree of adds,
// ~3 operations a sum where _mm512_reduce_add_ps takes ~9).
inline __m512 reduce16(const __m512* v) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)  // 256-bit halves: lanes 0-7 partials of v[2i], 8-15 of v[2i + 1]
    a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)  // 128-bit lane k: 4 partials of v[4i + k]
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)  // lane k: 2 partials of v[8i + k], 2 of v[8i + 4 + k]
    c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
  // lane k: the sums of v[k], v[4 + k], v[8 + k], v[12 + k]
  const __m512 d = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(order, d);
}

#if defined(__AVX512BF16__)
inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

// 16 float32 values rounded to bf16 (nearest even, as torch rounds) and stored.
inline void store_bf16x16(c10::BFloat16* p, __m512 v) {
  const __m256bh out = _mm512_cvtneps_pbh(v);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), reinterpret_cast<const __m256i&>(out));
}
#endif

// The packed weights' layout (plinth.engine.quantization.interleave_blocks writes it): output rows in
// blocks of 16, each block a run of equal-size chunks of inputs, the blocks in groups of kInterleave
// whose chunks are stored side by side ([group][chunk][4 blocks]; the last blocks % 4 one after the
// other), so that a tile of 4 blocks reads one contiguous stream: with each block's bytes apart the
// hardware prefetcher never ramped up (the int4 kernel read 12 GB/s in a decode step).
constexpr int64_t kInterleave = 4;

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
