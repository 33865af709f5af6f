// gemm() for CPUs with AVX-512F: twice the columns per instruction of the AVX2 loop, same
// packed layout. Compiled with -mavx512f (src/CMakeLists.txt); kernels.cpp calls it only when
// the CPU has it.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace idn::cpu::kernels {

namespace {

template <int V>
inline void gemm_block512(const float* pw, const float* bias4, int64_t nrows, const float* b,
                          float* out, int64_t k, int64_t n, int64_t valid, bool relu) {
  __m512 acc[4][V];
  for (int r = 0; r < 4; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_set1_ps(bias4[r]);
  const int64_t last = std::min<int64_t>(16, valid - 16 * (V - 1));
  const __mmask16 mask = static_cast<__mmask16>((1u << last) - 1u);
  for (int64_t i = 0; i < k; ++i) {
    __m512 bv[V];
    const float* brow = b + i * n;
    for (int v = 0; v < V - 1; ++v) bv[v] = _mm512_loadu_ps(brow + 16 * v);
    bv[V - 1] = _mm512_maskz_loadu_ps(mask, brow + 16 * (V - 1));
    const float* w = pw + 4 * i;
    for (int r = 0; r < 4; ++r) {
      const __m512 wr = _mm512_set1_ps(w[r]);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(wr, bv[v], acc[r][v]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < nrows; ++r)
    for (int v = 0; v < V; ++v) {
      const __m512 a = relu ? _mm512_mask_max_ps(acc[r][v], 0xFFFF, acc[r][v], zero) : acc[r][v];
      if (v < V - 1)
        _mm512_storeu_ps(out + r * n + 16 * v, a);
      else
        _mm512_mask_storeu_ps(out + r * n + 16 * v, mask, a);
    }
}

}  // namespace

void gemm_avx512(const float* packed_w, const float* bias, const float* b, float* out, int64_t rows,
                 int64_t k, int64_t n, bool relu) {
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    const int64_t nr = std::min<int64_t>(4, rows - r0);
    float bias4[4] = {0, 0, 0, 0};
    if (bias)
      for (int64_t r = 0; r < nr; ++r) bias4[r] = bias[r0 + r];
    const float* pw = packed_w + r0 * k;
    float* o = out + r0 * n;
    int64_t p = 0;
    for (; p + 32 <= n; p += 32) gemm_block512<2>(pw, bias4, nr, b + p, o + p, k, n, 32, relu);
    for (; p < n; p += 16)
      gemm_block512<1>(pw, bias4, nr, b + p, o + p, k, n, std::min<int64_t>(16, n - p), relu);
  }
}

}  // namespace idn::cpu::kernels
