// AMX tiles for Plinth's matmul kernels (qlinear.cpp, bf16_linear.cpp): the permission to use them and
// their configuration. Included only where the compiler targets AMX-BF16 (-march=native on such a CPU).
#pragma once

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace plinth_amx {

// Linux lends a process the AMX tile registers only once it asks (oneDNN asks too; asking twice is
// fine). Without them (an old kernel, a VM that does not pass them on) callers take their AVX-512 path.
inline bool granted() {
  static const bool ok = [] {
    constexpr long kReqXcompPerm = 0x1023, kXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtiledata) == 0;
  }();
  return ok;
}

// Palette 1: eight tiles of up to 16 rows of 64 bytes; rows[t] and colsb[t] shape tile t.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};

  void shape(int tile, int rows_, int bytes) {
    rows[tile] = static_cast<uint8_t>(rows_);
    colsb[tile] = static_cast<uint16_t>(bytes);
  }
  void load() const { _tile_loadconfig(this); }
};

}  // namespace plinth_amx
