// One convolution layer of cpu::Executor run by oneDNN (Debian's libdnnl, when the build found
// it): one sample per call, input and output in the executor's dense [C, H, W], oneDNN's own
// blocked layout inside (reorders in and out), weights reordered at load, ReLU as a post-op.
// Without oneDNN in the build, available() is false and create() says so.
//
// Thread-safety: a OneDnnConv is run by one thread at a time (it owns its scratch); any number
// of them run in parallel. Each call runs on the calling thread alone (OpenMP held to 1 thread).
#pragma once

#include <cstdint>
#include <memory>

#include "core/status.h"

namespace idn::cpu {

struct ConvShape {
  int64_t in_c = 0, in_h = 0, in_w = 0, out_c = 0, out_h = 0, out_w = 0;
  int64_t kernel = 1, stride = 1, pad = 0;
};

class OneDnnConv {
 public:
  // True when this build links oneDNN.
  static bool available();
  // `w` is [out_c, in_c, kernel, kernel] row-major, `bias` [out_c]; both copied. Errors: no
  // oneDNN in this build, or a shape oneDNN refuses.
  static Result<std::unique_ptr<OneDnnConv>> create(const ConvShape& shape, const float* w,
                                                    const float* bias, bool relu);
  ~OneDnnConv();
  OneDnnConv(const OneDnnConv&) = delete;
  OneDnnConv& operator=(const OneDnnConv&) = delete;

  // y = relu?(conv(x) + bias) for one sample; x [in_c, in_h, in_w], y [out_c, out_h, out_w].
  void run(const float* x, float* y);
  // oneDNN's name for the implementation it picked ("brgconv:avx512_core").
  const char* impl() const;

  struct Impl;

 private:
  explicit OneDnnConv(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace idn::cpu
