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

// Rows of a [rows, k] matrix packed for gemm(): blocks of 4 rows, k-major inside a block
// ([ceil(rows/4)][k][4], zero rows past the end). `packed` holds packed_size(rows, k) floats.
int64_t packed_size(int64_t rows, int64_t k);
void pack_rows4(const float* w, int64_t rows, int64_t k, float* packed);

// out[r, p] = bias[r] + sum_k W[r, k] * b[k, p] (then max(0, .) when relu), for a W packed by
// pack_rows4; b is [k, n] row-major, out [rows, n]. The convolution after im2col.
void gemm(const float* packed_w, const float* bias, const float* b, float* out, int64_t rows,
          int64_t k, int64_t n, bool relu);

// y[s, o] = bias[o] + sum_i W[o, i] * x[s, i] (then relu) for samples s < batch: a linear layer.
// W is [out, in] row-major (the stored layout); bias may be null.
void linear(const float* w, const float* bias, const float* x, float* y, int64_t batch, int64_t out,
            int64_t in, bool relu);

// col[(c, kh, kw), (oh, ow)] for one sample of x [c, h, w] (zeros outside the padding).
void im2col(const float* x, int64_t c, int64_t h, int64_t w, int64_t kernel, int64_t stride,
            int64_t pad, int64_t oh, int64_t ow, float* col);

}  // namespace idn::cpu::kernels
