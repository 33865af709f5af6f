#include "cpu/onednn.h"

#ifdef IDN_WITH_ONEDNN
#include <dlfcn.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <string>
#include <unordered_map>
#endif

namespace idn::cpu {

#ifdef IDN_WITH_ONEDNN

namespace {

// Debian's oneDNN runs on OpenMP and sizes each call's thread team by the calling thread's
// omp_get_max_threads(). The executor's contract is one thread per call, so a call holds that
// to 1 and restores it after (the caller's LibTorch may share the setting). libgomp is loaded
// as oneDNN's dependency; looked up at run time so the build needs no OpenMP flags.
struct OmpThreads {
  using Get = int (*)();
  using Set = void (*)(int);
  Get get = reinterpret_cast<Get>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
  Set set = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
};

const OmpThreads& omp() {
  static const OmpThreads o;
  return o;
}

class OneThread {
 public:
  OneThread() {
    const auto& o = omp();
    if (o.get && o.set && (saved_ = o.get()) != 1) o.set(1);
  }
  ~OneThread() {
    if (saved_ > 1) omp().set(saved_);
  }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int saved_ = 1;
};

}  // namespace

struct OneDnnConv::Impl {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::convolution_forward conv;
  dnnl::reorder to_blocked, from_blocked;  // empty where the layouts already agree
  dnnl::memory src, dst;                   // the executor's dense buffers (handles set per call)
  dnnl::memory bsrc, bdst, weights, bias, scratch;
  std::unordered_map<int, dnnl::memory> conv_args;
  std::string impl;
};

bool OneDnnConv::available() {
  return true;
}

Result<std::unique_ptr<OneDnnConv>> OneDnnConv::create(const ConvShape& s, const float* w,
                                                       const float* b, bool relu) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  OneThread one;
  try {
    auto m = std::make_unique<Impl>();
    const dnnl::memory::dims src{1, s.in_c, s.in_h, s.in_w}, dst{1, s.out_c, s.out_h, s.out_w},
        wei{s.out_c, s.in_c, s.kernel, s.kernel}, bia{s.out_c};
    const dnnl::memory::desc any_src(src, dt::f32, tag::any), any_dst(dst, dt::f32, tag::any),
        any_w(wei, dt::f32, tag::any), bmd(bia, dt::f32, tag::x);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (relu) {
      dnnl::post_ops po;
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      attr.set_post_ops(po);
    }
    const dnnl::convolution_forward::desc d(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, any_src, any_w,
        bmd, any_dst, {s.stride, s.stride}, {s.pad, s.pad}, {s.pad, s.pad});
    const dnnl::convolution_forward::primitive_desc pd(d, attr, m->eng);
    m->conv = dnnl::convolution_forward(pd);
    m->impl = pd.impl_info_str();
    m->src = dnnl::memory({src, dt::f32, tag::nchw}, m->eng, nullptr);
    m->dst = dnnl::memory({dst, dt::f32, tag::nchw}, m->eng, nullptr);
    m->bsrc = pd.src_desc() == m->src.get_desc() ? m->src : dnnl::memory(pd.src_desc(), m->eng);
    m->bdst = pd.dst_desc() == m->dst.get_desc() ? m->dst : dnnl::memory(pd.dst_desc(), m->eng);
    if (pd.src_desc() != m->src.get_desc()) m->to_blocked = dnnl::reorder(m->src, m->bsrc);
    if (pd.dst_desc() != m->dst.get_desc()) m->from_blocked = dnnl::reorder(m->bdst, m->dst);
    dnnl::memory user_w({wei, dt::f32, tag::oihw}, m->eng, const_cast<float*>(w));
    m->weights = dnnl::memory(pd.weights_desc(), m->eng);
    dnnl::reorder(user_w, m->weights).execute(m->strm, user_w, m->weights);
    m->bias = dnnl::memory(bmd, m->eng);
    std::copy(b, b + s.out_c, static_cast<float*>(m->bias.get_data_handle()));
    m->scratch = dnnl::memory(pd.scratchpad_desc(), m->eng);
    m->conv_args = {{DNNL_ARG_SRC, m->bsrc},
                    {DNNL_ARG_WEIGHTS, m->weights},
                    {DNNL_ARG_BIAS, m->bias},
                    {DNNL_ARG_DST, m->bdst},
                    {DNNL_ARG_SCRATCHPAD, m->scratch}};
    m->strm.wait();
    return std::unique_ptr<OneDnnConv>(new OneDnnConv(std::move(m)));
  } catch (const dnnl::error& e) {
    return Status::unsupported(std::string("oneDNN convolution: ") + e.what());
  }
}

void OneDnnConv::run(const float* x, float* y) {
  OneThread one;
  Impl& m = *impl_;
  m.src.set_data_handle(const_cast<float*>(x));
  m.dst.set_data_handle(y);
  if (m.to_blocked) m.to_blocked.execute(m.strm, m.src, m.bsrc);
  m.conv.execute(m.strm, m.conv_args);
  if (m.from_blocked) m.from_blocked.execute(m.strm, m.bdst, m.dst);
  m.strm.wait();
}

const char* OneDnnConv::impl() const {
  return impl_->impl.c_str();
}

#else  // no oneDNN in this build

struct OneDnnConv::Impl {};

bool OneDnnConv::available() {
  return false;
}

Result<std::unique_ptr<OneDnnConv>> OneDnnConv::create(const ConvShape&, const float*, const float*,
                                                       bool) {
  return Status::unsupported("oneDNN convolution: this build has no oneDNN (libdnnl-dev)");
}

void OneDnnConv::run(const float*, float*) {}

const char* OneDnnConv::impl() const {
  return "";
}

#endif

OneDnnConv::OneDnnConv(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OneDnnConv::~OneDnnConv() = default;

}  // namespace idn::cpu
