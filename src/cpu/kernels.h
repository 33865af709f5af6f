// The arithmetic of cpu::Executor: AVX2/FMA loops sized for batch-1 inference of small models,
// where a library call's fixed cost would dominate. Callers check cpu_supported() first; these
// functions are compiled for AVX2+FMA and fault on a CPU without them. Pure functions: any
// number of threads may call them on distinct outputs.
#pragma once

#include <cstdint>

namespace idn::cpu::kernels {

// True when this CPU runs AVX2 and FMA (the kernels below need both).
bool cpu_supported();
// gemm() takes an AVX-512F loop where the CPU has one, unless allow_avx512(false) (tests and
// benches compare both paths; process-wide).
bool has_avx512();
void allow_avx512(bool on);

// Rows of a [rows, k] matrix packed for gemm(): blocks of 8 rows, k-major inside a block
// ([k][8]), the last block 4 rows when at most 4 remain (zero rows past the end). 8 rows per
// block let the AVX-512 loop reuse each load of b 8 times. `packed` holds packed_size(rows, k).
int64_t packed_size(int64_t rows, int64_t k);
void pack_rows(const float* w, int64_t rows, int64_t k, float* packed);

// out[r, p] = bias[r] + sum_k W[r, k] * b[k, p] (then max(0, .) when relu), for a W packed by
// pack_rows; b is [k, n] row-major, out [rows, n]; bias may be null. The convolution after
// im2col, and a linear layer over a batch (b = the samples transposed).
void gemm(const float* packed_w, const float* bias, const float* b, float* out, int64_t rows,
          int64_t k, int64_t n, bool relu);

// y[s, o] = bias[o] + sum_i W[o, i] * x[s, i] (then relu) for samples s < batch: a linear layer
// for small batches (one pass over W per 4 samples). W is [out, in] row-major (the stored
// layout); bias may be null.
void linear(const float* w, const float* bias, const float* x, float* y, int64_t batch, int64_t out,
            int64_t in, bool relu);

// Local response normalisation's last step: y[i] = x[i] * (k + scale * y[i])^-beta for i < n,
// y holding the channel window's sum of squares. beta 0.75 (AlexNet's) runs as
// x / sqrt(d * sqrt(d)) on 8 lanes; other betas call pow().
void lrn_apply(const float* x, float* y, int64_t n, float k, float scale, float beta);

// dst[c, r] = src[r, c] for a [rows, cols] src.
void transpose(const float* src, int64_t rows, int64_t cols, float* dst);

// col[(c, kh, kw), (oh, ow)] for one sample of x [c, h, w] (zeros outside the padding); rows of
// col `ld` floats apart (oh * ow for one sample alone; more when samples sit side by side).
void im2col(const float* x, int64_t c, int64_t h, int64_t w, int64_t kernel, int64_t stride,
            int64_t pad, int64_t oh, int64_t ow, float* col, int64_t ld);

}  // namespace idn::cpu::kernels
