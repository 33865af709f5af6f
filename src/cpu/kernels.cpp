// Compiled with -mavx2 -mfma (src/CMakeLists.txt): only call after cpu_supported().
#include "cpu/kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

namespace idn::cpu::kernels {

void gemm_avx512(const float* packed_w, const float* bias, const float* b, float* out, int64_t rows,
                 int64_t k, int64_t n, bool relu);  // kernels_avx512.cpp

namespace {

std::atomic<bool> avx512_allowed{true};
const bool kHasAvx512 = __builtin_cpu_supports("avx512f");

// Lanes [0, n) of a masked load/store, n in [0, 8].
inline __m256i tail_mask(int64_t n) {
  alignas(32) static const int32_t kOnes[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kOnes + 8 - n));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// 4 packed rows (row stride `ps` in the packed block: 4 or 8) times `cols` (8 or 16, masked to
// `valid`) columns of b. Loops over the accumulators are unrolled so they stay in registers.
template <int V>
inline void gemm_block(const float* pw, int64_t ps, const float* bias4, int64_t nrows,
                       const float* b, float* out, int64_t k, int64_t n, int64_t valid, bool relu) {
  __m256 acc[4][V];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = _mm256_set1_ps(bias4[r]);
  const __m256i mask = tail_mask(std::min<int64_t>(8, valid - 8 * (V - 1)));
  for (int64_t i = 0; i < k; ++i) {
    __m256 bv[V];
    const float* brow = b + i * n;
#pragma GCC unroll 4
    for (int v = 0; v < V - 1; ++v) bv[v] = _mm256_loadu_ps(brow + 8 * v);
    bv[V - 1] = _mm256_maskload_ps(brow + 8 * (V - 1), mask);
    const float* w = pw + ps * i;
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m256 wr = _mm256_broadcast_ss(w + r);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(wr, bv[v], acc[r][v]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    if (r >= nrows) break;
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      __m256 a = relu ? _mm256_max_ps(acc[r][v], zero) : acc[r][v];
      if (v < V - 1)
        _mm256_storeu_ps(out + r * n + 8 * v, a);
      else
        _mm256_maskstore_ps(out + r * n + 8 * v, mask, a);
    }
  }
}

// R rows of W times S samples of x (row stride `in`, outputs at stride `out`): R*S independent
// accumulators hide the FMA latency, and each W load serves S samples.
template <int R, int S>
inline void dot_block(const float* w, const float* bias, const float* x, float* y, int64_t in,
                      int64_t out, bool relu) {
  __m256 acc[R][S];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < S; ++t) acc[r][t] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= in; i += 8) {
    __m256 xv[S];
#pragma GCC unroll 4
    for (int t = 0; t < S; ++t) xv[t] = _mm256_loadu_ps(x + t * in + i);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_loadu_ps(w + r * in + i);
#pragma GCC unroll 4
      for (int t = 0; t < S; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  if (i < in) {
    const __m256i mask = tail_mask(in - i);
    __m256 xv[S];
#pragma GCC unroll 4
    for (int t = 0; t < S; ++t) xv[t] = _mm256_maskload_ps(x + t * in + i, mask);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_maskload_ps(w + r * in + i, mask);
#pragma GCC unroll 4
      for (int t = 0; t < S; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < S; ++t) {
      const float v = hsum(acc[r][t]) + (bias ? bias[r] : 0.f);
      y[t * out + r] = relu ? std::max(v, 0.f) : v;
    }
}

template <int S>
inline void linear_samples(const float* w, const float* bias, const float* x, float* y, int64_t out,
                           int64_t in, bool relu) {
  int64_t o = 0;
  constexpr int R = S == 1 ? 4 : 2;
  for (; o + R <= out; o += R)
    dot_block<R, S>(w + o * in, bias ? bias + o : nullptr, x, y + o, in, out, relu);
  for (; o < out; ++o)
    dot_block<1, S>(w + o * in, bias ? bias + o : nullptr, x, y + o, in, out, relu);
}

}  // namespace

bool has_avx512() {
  return kHasAvx512;
}
void allow_avx512(bool on) {
  avx512_allowed.store(on, std::memory_order_relaxed);
}

bool cpu_supported() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int64_t block_rows(int64_t rows, int64_t r0) {
  return rows - r0 > 4 ? 8 : 4;
}

int64_t packed_size(int64_t rows, int64_t k) {
  const int64_t full = rows / 8 * 8;
  return (full + (rows == full ? 0 : block_rows(rows, full))) * k;
}

void pack_rows(const float* w, int64_t rows, int64_t k, float* packed) {
  std::memset(packed, 0, sizeof(float) * packed_size(rows, k));
  for (int64_t r0 = 0; r0 < rows; r0 += 8) {
    const int64_t mr = block_rows(rows, r0);
    for (int64_t r = r0; r < std::min(rows, r0 + mr); ++r)
      for (int64_t i = 0; i < k; ++i) packed[r0 * k + i * mr + (r - r0)] = w[r * k + i];
  }
}

void gemm(const float* packed_w, const float* bias, const float* b, float* out, int64_t rows,
          int64_t k, int64_t n, bool relu) {
  if (kHasAvx512 && avx512_allowed.load(std::memory_order_relaxed))
    return gemm_avx512(packed_w, bias, b, out, rows, k, n, relu);
  for (int64_t r0 = 0; r0 < rows; r0 += 8) {
    const int64_t mr = block_rows(rows, r0);
    // An 8-row block as two halves of 4 (AVX2 has 16 registers: 4 x 16 columns fill them).
    for (int64_t h = 0; h < mr && r0 + h < rows; h += 4) {
      const int64_t nr = std::min<int64_t>(4, rows - r0 - h);
      float bias4[4] = {0, 0, 0, 0};
      if (bias)
        for (int64_t r = 0; r < nr; ++r) bias4[r] = bias[r0 + h + r];
      const float* pw = packed_w + r0 * k + h;
      float* o = out + (r0 + h) * n;
      int64_t p = 0;
      for (; p + 16 <= n; p += 16) gemm_block<2>(pw, mr, bias4, nr, b + p, o + p, k, n, 16, relu);
      for (; p < n; p += 8)
        gemm_block<1>(pw, mr, bias4, nr, b + p, o + p, k, n, std::min<int64_t>(8, n - p), relu);
    }
  }
}

void lrn_apply(const float* x, float* y, int64_t n, float k, float scale, float beta) {
  int64_t i = 0;
  if (beta == 0.75f) {
    const __m256 kv = _mm256_set1_ps(k), sv = _mm256_set1_ps(scale);
    for (; i + 8 <= n; i += 8) {
      const __m256 d = _mm256_fmadd_ps(sv, _mm256_loadu_ps(y + i), kv);
      const __m256 den = _mm256_sqrt_ps(_mm256_mul_ps(d, _mm256_sqrt_ps(d)));
      _mm256_storeu_ps(y + i, _mm256_div_ps(_mm256_loadu_ps(x + i), den));
    }
    for (; i < n; ++i) {
      const float d = k + scale * y[i];
      y[i] = x[i] / std::sqrt(d * std::sqrt(d));
    }
    return;
  }
  for (; i < n; ++i) y[i] = x[i] * std::pow(k + scale * y[i], -beta);
}

void transpose(const float* src, int64_t rows, int64_t cols, float* dst) {
  // 8 x 8 tiles keep both sides' cache lines in use.
  for (int64_t r0 = 0; r0 < rows; r0 += 8)
    for (int64_t c0 = 0; c0 < cols; c0 += 8)
      for (int64_t r = r0; r < std::min(rows, r0 + 8); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + 8); ++c) dst[c * rows + r] = src[r * cols + c];
}

void linear(const float* w, const float* bias, const float* x, float* y, int64_t batch, int64_t out,
            int64_t in, bool relu) {
  int64_t s = 0;
  for (; s + 4 <= batch; s += 4) linear_samples<4>(w, bias, x + s * in, y + s * out, out, in, relu);
  for (; s < batch; ++s) linear_samples<1>(w, bias, x + s * in, y + s * out, out, in, relu);
}

namespace {

// dst[i] = src[i] for i < n, 8 lanes at a time with a masked tail: rows of an image are 7-28
// floats, where a scalar loop's per-row overhead exceeds the copy.
inline void copy_row(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(dst + i, m, _mm256_maskload_ps(src + i, m));
  }
}

}  // namespace

void im2col(const float* x, int64_t c, int64_t h, int64_t w, int64_t kernel, int64_t stride,
            int64_t pad, int64_t oh, int64_t ow, float* col, int64_t ld) {
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t kh = 0; kh < kernel; ++kh)
      for (int64_t kw = 0; kw < kernel; ++kw) {
        float* row = col + ((ci * kernel + kh) * kernel + kw) * ld;
        if (stride == 1 && pad == 0) {  // rows are contiguous slices of the input
          // A plain loop the compiler vectorises: 5x faster than the general path below on
          // LeNet's conv2 (8-float rows), where the bounds arithmetic per row dominates.
          for (int64_t y = 0; y < oh; ++y) {
            const float* src = x + (ci * h + y + kh) * w + kw;
            float* dst = row + y * ow;
            for (int64_t i = 0; i < ow; ++i) dst[i] = src[i];
          }
          continue;
        }
        // Output columns whose input column lies inside the image: [lo, hi). Outside it the
        // padding's zeros, so the copy needs no bounds check.
        const int64_t lo = std::min(ow, std::max<int64_t>(0, (pad - kw + stride - 1) / stride));
        const int64_t last = w - 1 + pad - kw;  // largest xo * stride inside
        const int64_t hi = last < 0 ? lo : std::max(lo, std::min(ow, last / stride + 1));
        const int64_t off = kw - pad;
        for (int64_t y = 0; y < oh; ++y) {
          const int64_t iy = y * stride - pad + kh;
          float* dst = row + y * ow;
          if (iy < 0 || iy >= h) {
            std::fill(dst, dst + ow, 0.f);
            continue;
          }
          const float* src = x + (ci * h + iy) * w;
          for (int64_t xo = 0; xo < lo; ++xo) dst[xo] = 0.f;
          if (stride == 1 && hi > lo)
            copy_row(src + lo + off, dst + lo, hi - lo);
          else
            for (int64_t xo = lo; xo < hi; ++xo) dst[xo] = src[xo * stride + off];
          for (int64_t xo = hi; xo < ow; ++xo) dst[xo] = 0.f;
        }
      }
}

}  // namespace idn::cpu::kernels
