// AVX-512 helpers and the weight layout shared by Plinth's CPU kernels (qlinear.cpp, bf16_linear.cpp,
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
