// gemm() for CPUs with AVX-512F: twice the columns per instruction of the AVX2 loop and a
// whole 8-row block per pass, same packed layout. Compiled with -mavx512f (src/CMakeLists.txt);
// kernels.cpp calls it only when the CPU has it.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace idn::cpu::kernels {

namespace {

// MR packed rows (the block's row count) times 16 * V columns of b, the last 16 masked to
// `valid`: MR * V accumulators, each load of b used MR times. Every loop over the accumulators
// is unrolled, so they stay in registers (a loop to a run-time bound put them on the stack).
template <int MR, int V>
inline void gemm_block512(const float* pw, const float* bias_r, int64_t nrows, const float* b,
                          float* out, int64_t k, int64_t n, int64_t valid, bool relu,
                          bool accumulate) {
  const int64_t last = std::min<int64_t>(16, valid - 16 * (V - 1));
  const __mmask16 mask = static_cast<__mmask16>((1u << last) - 1u);
  __m512 acc[MR][V];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      // A later slice of k adds to what the earlier ones stored (rows past nrows stay unused).
      if (accumulate && r < nrows)
        acc[r][v] = v < V - 1 ? _mm512_loadu_ps(out + r * n + 16 * v)
                              : _mm512_maskz_loadu_ps(mask, out + r * n + 16 * v);
      else
        acc[r][v] = _mm512_set1_ps(bias_r[r]);
    }
  for (int64_t i = 0; i < k; ++i) {
    __m512 bv[V];
    const float* brow = b + i * n;
#pragma GCC unroll 4
    for (int v = 0; v < V - 1; ++v) bv[v] = _mm512_loadu_ps(brow + 16 * v);
    bv[V - 1] = _mm512_maskz_loadu_ps(mask, brow + 16 * (V - 1));
    const float* w = pw + MR * i;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 wr = _mm512_set1_ps(w[r]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(wr, bv[v], acc[r][v]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    if (r >= nrows) break;
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __m512 a = relu ? _mm512_max_ps(acc[r][v], zero) : acc[r][v];
      if (v < V - 1)
        _mm512_storeu_ps(out + r * n + 16 * v, a);
      else
        _mm512_mask_storeu_ps(out + r * n + 16 * v, mask, a);
    }
  }
}

template <int MR>
void gemm_rows(const float* pw, const float* bias_r, int64_t nr, const float* b, float* o,
               int64_t k, int64_t n, bool relu, bool acc) {
  int64_t p = 0;
  for (; p + 32 <= n; p += 32)
    gemm_block512<MR, 2>(pw, bias_r, nr, b + p, o + p, k, n, 32, relu, acc);
  for (; p < n; p += 16)
    gemm_block512<MR, 1>(pw, bias_r, nr, b + p, o + p, k, n, std::min<int64_t>(16, n - p), relu,
                         acc);
}

// Rows of b per slice of k: a slice of b (kc x n floats) stays in L1 (48 KiB here) while every
// block of rows passes over it, instead of each block streaming all of b from L2.
int64_t k_slice(int64_t k, int64_t n) {
  const int64_t kc = std::max<int64_t>(32, 8192 / std::max<int64_t>(1, n));
  return kc >= k ? k : kc;
}

}  // namespace

void gemm_avx512(const float* packed_w, const float* bias, const float* b, float* out, int64_t rows,
                 int64_t k, int64_t n, bool relu) {
  const int64_t kc = k_slice(k, n);
  for (int64_t k0 = 0; k0 < k; k0 += kc) {
    const int64_t kn = std::min(kc, k - k0);
    const bool first = k0 == 0, last = k0 + kn == k;
    for (int64_t r0 = 0; r0 < rows; r0 += 8) {
      const int64_t mr = rows - r0 > 4 ? 8 : 4;  // kernels.cpp's block_rows
      const int64_t nr = std::min<int64_t>(mr, rows - r0);
      float bias_r[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (bias)
        for (int64_t r = 0; r < nr; ++r) bias_r[r] = bias[r0 + r];
      // The block is [k][mr]: its slice starts k0 rows of mr in.
      const float* pw = packed_w + r0 * k + k0 * mr;
      if (mr == 8)
        gemm_rows<8>(pw, bias_r, nr, b + k0 * n, out + r0 * n, kn, n, relu && last, !first);
      else
        gemm_rows<4>(pw, bias_r, nr, b + k0 * n, out + r0 * n, kn, n, relu && last, !first);
    }
  }
}

}  // namespace idn::cpu::kernels
