#include "cpu/executor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "core/denormals.h"
#include "cpu/kernels.h"
#include "cpu/onednn.h"

namespace idn::cpu {

using model::LayerSpec;
using model::LayerType;

namespace {

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t param(const nlohmann::json& p, const char* key, int64_t fallback) {
  return p.contains(key) ? p.at(key).get<int64_t>() : fallback;
}
double paramf(const nlohmann::json& p, const char* key, double fallback) {
  return p.contains(key) ? p.at(key).get<double>() : fallback;
}

// What a layer does at run time once the plan has fused it.
enum class Kind {
  kInput,
  kAlias,
  kConv,
  kLinear,
  kMaxPool,
  kAvgPool,
  kScaleShift,
  kReLU,
  kLRN,
  kSoftmax,
  kAggregate
};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kInput:
      return "input";
    case Kind::kAlias:
      return "alias";
    case Kind::kConv:
      return "conv2d";
    case Kind::kLinear:
      return "linear";
    case Kind::kMaxPool:
      return "maxpool2d";
    case Kind::kAvgPool:
      return "avgpool2d";
    case Kind::kScaleShift:
      return "batchnorm";
    case Kind::kReLU:
      return "relu";
    case Kind::kLRN:
      return "lrn";
    case Kind::kSoftmax:
      return "softmax";
    case Kind::kAggregate:
      return "aggregate";
  }
  return "?";
}

}  // namespace

// One slot per model input and per layer (the numbering of nn::Graph). A slot either owns a
// buffer and an op that fills it, or aliases the buffer of another slot (dropout, flatten, a
// ReLU or batch norm fused into its producer).
struct Slot {
  Kind kind = Kind::kAlias;
  int owner = -1;              // the slot whose buffer holds this value
  std::vector<int> inputs;     // slots read
  std::vector<int64_t> shape;  // per sample
  int64_t size = 0;            // numel per sample
  bool relu = false;           // fused ReLU on the op's output
  std::string fused_into;      // for plan(): the layer this one was folded into
  // conv / linear: row-major weights, bias (batch norm folded in) and the weights packed for
  // kernels::gemm (a conv's row-major ones are dropped once its kernels are chosen; a linear
  // layer's packed ones unless it runs kBatched)
  std::vector<float> w, b, wp;
  int64_t in_c = 0, in_h = 0, in_w = 0, out_c = 0, kernel = 0, stride = 1, pad = 0;
  int group = 1;  // conv: samples side by side in one gemm (Kernel::kBatched)
  Kernel one = Kernel::kGemm, many = Kernel::kGemm;  // conv / linear: for 1, for 2.. samples
  std::unique_ptr<OneDnnConv> dnn;                   // conv: when a choice is kOneDnn
  std::vector<double> us_one, us_many;               // what the choice measured
  // lrn
  int64_t lrn_size = 0;
  double alpha = 0, beta = 0, k = 0;
  std::string agg_op;
  std::vector<float> buf;  // max_batch * size, owners only
};

struct Executor::Impl {
  model::ModelSpec spec;
  int max_batch = 1;
  int num_inputs = 0;
  std::vector<Slot> slots;
  std::vector<std::vector<int>> stage_slots, exit_slots;  // slots to run, in order
  std::vector<int> stage_out, exit_out;
  std::vector<char> valid;           // per slot, this pass
  std::vector<float> col;            // im2col scratch, `group` samples side by side
  std::vector<float> gout;           // a grouped conv's output [out_c, group * oh * ow]
  std::vector<float> xt, yt;         // a batched linear's transposed input and output
  std::vector<float> prow;           // a pooling's reduced input row, padded
  std::vector<float> mean, inv_std;  // the package's preprocessing of input 0, per channel
  int batch = 0;

  double measure_us = 0;

  float* data(int s) { return slots[slots[s].owner].buf.data(); }
  void run_slot(int s);
  // A conv or linear slot on `n` samples with kernel `k` (one it has).
  void run_weighted(Slot& s, Kernel k, int n, const float* x, float* y);
  // Fills one/many of every conv and linear slot (see ExecutorOptions).
  void choose_kernels(const ExecutorOptions& opts);
};

namespace {

// A conv whose output pixels fill under 90 % of the gemm's 16-column steps (B-AlexNet's 7 x 7
// convs: 49 of 64) runs several samples side by side in one gemm, about this many columns.
// Where the columns are already full, grouping only made the panel bigger (14 x 14 at batch 32
// was slower grouped in pairs).
constexpr int64_t kConvGroupColumns = 256;

bool group_conv(int64_t pixels) {
  return pixels < kConvGroupColumns && pixels * 10 < (pixels + 15) / 16 * 16 * 9;
}

// A 1 x 1 conv of stride 1 without padding reads its input as the gemm's b (no im2col), which
// kBatched would have to gather: it stays per sample.
bool batched_conv(const Slot& s) {
  return !(s.kernel == 1 && s.stride == 1 && s.pad == 0);
}

// From this many samples a linear layer with at least kLinearGemmOutputs outputs runs as one
// gemm over the transposed batch (each weight loaded once per call instead of once per 4
// samples: B-LeNet's fc1 at batch 32, stage 1 1690 -> 1300 µs); below either the per-sample dot
// products win, since the transposes cost more than re-reading weights that fit in L1 (the
// 10-class exit heads at batch 32: 39 -> 50 µs through the gemm).
constexpr int kLinearGemmBatch = 8;
constexpr int64_t kLinearGemmOutputs = 32;

Result<std::vector<float>> weight(const std::map<std::string, core::Tensor>& ws,
                                  const std::string& name) {
  auto it = ws.find(name);
  if (it == ws.end()) return Status::invalid_argument("missing weight '" + name + "'");
  auto v = it->second.f32();
  return std::vector<float>(v.begin(), v.end());
}

}  // namespace

Result<std::unique_ptr<Executor>> Executor::load(const std::filesystem::path& dir,
                                                 ExecutorOptions opts) {
  IDN_ASSIGN_OR_RETURN(model::Package package, model::load_package(dir));
  return load(package, opts);
}

Result<std::unique_ptr<Executor>> Executor::load(const model::Package& package,
                                                 ExecutorOptions opts) {
  if (!kernels::cpu_supported())
    return Status::unsupported("cpu executor: this CPU lacks AVX2/FMA");
  if (opts.max_batch < 1) return Status::invalid_argument("cpu executor: max_batch must be >= 1");
  IDN_RETURN_IF_ERROR(model::check_weights(package.spec, package.weights));
  auto impl = std::make_unique<Impl>();
  impl->spec = package.spec;
  impl->max_batch = opts.max_batch;
  const auto& spec = impl->spec;
  const auto& ws = package.weights;
  const int ni = impl->num_inputs = static_cast<int>(spec.inputs.size());
  auto& slots = impl->slots;
  slots.resize(ni + spec.layers.size());
  std::map<std::string, int> slot_of;
  for (int i = 0; i < ni; ++i) {
    slot_of[spec.inputs[i].name] = i;
    slots[i].kind = Kind::kInput;
    slots[i].shape = spec.inputs[i].shape;
    slots[i].size = numel(slots[i].shape);
    slots[i].owner = i;
  }
  // Which stage or exit each layer belongs to, and who reads each slot: fusing a layer into
  // its producer is only safe when the producer's value is read by nobody else.
  std::vector<int> group(slots.size(), -1), readers(slots.size(), 0);
  std::vector<char> is_output(slots.size(), 0);
  for (size_t li = 0; li < spec.layers.size(); ++li) slot_of[spec.layers[li].name] = ni + li;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    for (const auto& n : spec.stages[s].layers) group[slot_of.at(n)] = static_cast<int>(s);
    is_output[slot_of.at(spec.stages[s].output)] = 1;
  }
  for (size_t e = 0; e < spec.exits.size(); ++e) {
    for (const auto& n : spec.exits[e].layers)
      group[slot_of.at(n)] = static_cast<int>(spec.stages.size() + e);
    is_output[slot_of.at(spec.exits[e].output)] = 1;
  }
  for (const auto& l : spec.layers)
    for (const auto& in : l.inputs) ++readers[slot_of.at(in)];
  auto fusable = [&](int producer, int consumer) {
    return producer >= ni && readers[producer] == 1 && !is_output[producer] &&
           group[producer] == group[consumer];
  };

  for (size_t li = 0; li < spec.layers.size(); ++li) {
    const LayerSpec& l = spec.layers[li];
    const int si = ni + static_cast<int>(li);
    Slot& s = slots[si];
    const auto& p = l.params;
    for (const auto& in : l.inputs) s.inputs.push_back(slot_of.at(in));
    s.shape = l.out_shape;
    s.size = numel(s.shape);
    s.owner = si;
    const int in0 = s.inputs.empty() ? -1 : s.inputs[0];
    const std::vector<int64_t> in_shape = in0 >= 0 ? slots[in0].shape : std::vector<int64_t>{};
    auto where = [&] { return "cpu executor: layer '" + l.name + "': "; };
    switch (l.type) {
      case LayerType::kConv2d: {
        if (in_shape.size() != 3) return Status::unsupported(where() + "conv2d needs [C,H,W]");
        s.kind = Kind::kConv;
        s.in_c = in_shape[0], s.in_h = in_shape[1], s.in_w = in_shape[2];
        s.out_c = param(p, "out_channels", 0);
        s.kernel = param(p, "kernel", 1);
        s.stride = param(p, "stride", 1);
        s.pad = param(p, "padding", 0);
        IDN_ASSIGN_OR_RETURN(s.w, weight(ws, l.name + ".weight"));
        if (p.value("bias", true)) {
          IDN_ASSIGN_OR_RETURN(s.b, weight(ws, l.name + ".bias"));
        } else {
          s.b.assign(s.out_c, 0.f);
        }
        break;
      }
      case LayerType::kLinear: {
        s.kind = Kind::kLinear;
        s.in_c = param(p, "in_features", 0);
        s.out_c = param(p, "out_features", 0);
        IDN_ASSIGN_OR_RETURN(s.w, weight(ws, l.name + ".weight"));
        if (p.value("bias", true)) {
          IDN_ASSIGN_OR_RETURN(s.b, weight(ws, l.name + ".bias"));
        } else {
          s.b.assign(s.out_c, 0.f);
        }
        break;
      }
      case LayerType::kBatchNorm: {
        const int64_t c = param(p, "num_features", 0);
        const double eps = paramf(p, "eps", 1e-5);
        IDN_ASSIGN_OR_RETURN(auto gamma, weight(ws, l.name + ".weight"));
        IDN_ASSIGN_OR_RETURN(auto beta, weight(ws, l.name + ".bias"));
        IDN_ASSIGN_OR_RETURN(auto mean, weight(ws, l.name + ".running_mean"));
        IDN_ASSIGN_OR_RETURN(auto var, weight(ws, l.name + ".running_var"));
        std::vector<float> scale(c), shift(c);
        for (int64_t i = 0; i < c; ++i) {
          const double sc = gamma[i] / std::sqrt(static_cast<double>(var[i]) + eps);
          scale[i] = static_cast<float>(sc);
          shift[i] = static_cast<float>(beta[i] - mean[i] * sc);
        }
        Slot& prod = slots[in0];
        if (fusable(in0, si) && (prod.kind == Kind::kConv || prod.kind == Kind::kLinear) &&
            !prod.relu) {
          // y = scale * (W x + b) + shift: fold into the producer's rows.
          const int64_t per_row = static_cast<int64_t>(prod.w.size()) / prod.out_c;
          for (int64_t r = 0; r < prod.out_c; ++r) {
            for (int64_t i = 0; i < per_row; ++i) prod.w[r * per_row + i] *= scale[r];
            prod.b[r] = prod.b[r] * scale[r] + shift[r];
          }
          s.kind = Kind::kAlias;
          s.owner = prod.owner;
          s.fused_into = spec.layers[in0 - ni].name;
        } else {
          s.kind = Kind::kScaleShift;
          s.w = std::move(scale);
          s.b = std::move(shift);
          s.out_c = c;
        }
        break;
      }
      case LayerType::kReLU: {
        // Fused into the op that wrote its input (or into the conv/linear a batch norm was
        // folded into) when that value feeds only this ReLU.
        const int o = slots[in0].owner;
        Slot& owner = slots[o];
        const bool op_owner = owner.kind == Kind::kConv || owner.kind == Kind::kLinear ||
                              owner.kind == Kind::kMaxPool || owner.kind == Kind::kAvgPool ||
                              owner.kind == Kind::kScaleShift;
        const bool direct = o == in0 || !slots[in0].fused_into.empty();
        if (fusable(in0, si) && op_owner && direct && !owner.relu) {
          owner.relu = true;
          s.kind = Kind::kAlias;
          s.owner = o;
          s.fused_into = spec.layers[o - ni].name;
        } else {
          s.kind = Kind::kReLU;
        }
        break;
      }
      case LayerType::kMaxPool2d:
      case LayerType::kAvgPool2d:
        if (in_shape.size() != 3) return Status::unsupported(where() + "pooling needs [C,H,W]");
        s.kind = l.type == LayerType::kMaxPool2d ? Kind::kMaxPool : Kind::kAvgPool;
        s.in_c = in_shape[0], s.in_h = in_shape[1], s.in_w = in_shape[2];
        s.kernel = param(p, "kernel", 2);
        s.stride = param(p, "stride", s.kernel);
        s.pad = param(p, "padding", 0);
        break;
      case LayerType::kDropout:
      case LayerType::kFlatten:
        s.kind = Kind::kAlias;
        s.owner = slots[in0].owner;
        break;
      case LayerType::kLRN:
        if (in_shape.size() != 3) return Status::unsupported(where() + "lrn needs [C,H,W]");
        s.kind = Kind::kLRN;
        s.lrn_size = param(p, "size", 5);
        s.alpha = paramf(p, "alpha", 1e-4);
        s.beta = paramf(p, "beta", 0.75);
        s.k = paramf(p, "k", 1.0);
        break;
      case LayerType::kSoftmax:
        s.kind = Kind::kSoftmax;
        break;
      case LayerType::kAggregate:
        s.kind = Kind::kAggregate;
        s.agg_op = p.value("op", "max");
        if (s.agg_op != "max" && s.agg_op != "avg" && s.agg_op != "concat")
          return Status::unsupported(where() + "unknown aggregate op '" + s.agg_op + "'");
        break;
      default:
        return Status::unsupported(where() + "layer type '" +
                                   std::string(model::layer_type_name(l.type)) +
                                   "' is not supported");
    }
  }
  // Prepack (after every fold) and allocate.
  int64_t col_size = 0, xt_size = 0, yt_size = 0, gout_size = 0, prow_size = 0;
  for (auto& s : slots) {
    if (s.owner == &s - slots.data()) s.buf.assign(static_cast<size_t>(opts.max_batch) * s.size, 0);
    if (s.kind == Kind::kConv) {
      const int64_t k = s.in_c * s.kernel * s.kernel;
      std::vector<float> packed(kernels::packed_size(s.out_c, k));
      kernels::pack_rows(s.w.data(), s.out_c, k, packed.data());
      s.wp = std::move(packed);  // s.w stays [out, in, kh, kw] until choose_kernels
      const int64_t pixels = s.shape[1] * s.shape[2];
      if (batched_conv(s) && opts.max_batch > 1)
        s.group = static_cast<int>(std::min<int64_t>(
            opts.max_batch, std::max<int64_t>(2, (kConvGroupColumns + pixels - 1) / pixels)));
      col_size = std::max(col_size, k * pixels * s.group);
      if (s.group > 1) gout_size = std::max(gout_size, s.out_c * pixels * s.group);
    }
    if (s.kind == Kind::kMaxPool || s.kind == Kind::kAvgPool)
      prow_size = std::max(prow_size, s.in_w + 2 * s.pad + s.kernel + s.stride * s.shape[2]);
    if (s.kind == Kind::kLinear && opts.max_batch > 1) {
      s.wp.resize(kernels::packed_size(s.out_c, s.in_c));
      kernels::pack_rows(s.w.data(), s.out_c, s.in_c, s.wp.data());
      xt_size = std::max(xt_size, s.in_c * opts.max_batch);
      yt_size = std::max(yt_size, s.out_c * opts.max_batch);
    }
  }
  impl->col.assign(col_size, 0);
  impl->gout.assign(gout_size, 0);
  impl->xt.assign(xt_size, 0);
  impl->yt.assign(yt_size, 0);
  impl->prow.assign(prow_size, 0);
  impl->choose_kernels(opts);
  auto collect = [&](const std::vector<std::string>& layers) {
    std::vector<int> v;
    for (const auto& n : layers) v.push_back(slot_of.at(n));
    return v;
  };
  for (const auto& st : spec.stages) {
    impl->stage_slots.push_back(collect(st.layers));
    impl->stage_out.push_back(slot_of.at(st.output));
  }
  for (const auto& ex : spec.exits) {
    impl->exit_slots.push_back(collect(ex.layers));
    impl->exit_out.push_back(slot_of.at(ex.output));
  }
  impl->valid.assign(slots.size(), 0);
  if (!spec.preprocess_mean.empty()) {
    const int64_t c = spec.inputs[0].shape.empty() ? 1 : spec.inputs[0].shape[0];
    if (static_cast<int64_t>(spec.preprocess_mean.size()) != c ||
        spec.preprocess_std.size() != spec.preprocess_mean.size())
      return Status::invalid_argument(
          "cpu executor: preprocess mean/std must have one value per channel (" +
          std::to_string(c) + ")");
    impl->mean = spec.preprocess_mean;
    for (float sd : spec.preprocess_std) impl->inv_std.push_back(1.0f / sd);
  }
  return std::unique_ptr<Executor>(new Executor(std::move(impl)));
}

Executor::Executor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Executor::~Executor() = default;

const model::ModelSpec& Executor::spec() const {
  return impl_->spec;
}
int Executor::max_batch() const {
  return impl_->max_batch;
}

Status Executor::set_input(std::span<const float> values, int batch, int index) {
  auto& m = *impl_;
  if (index < 0 || index >= m.num_inputs)
    return Status::invalid_argument("cpu executor: no model input " + std::to_string(index));
  if (batch < 1 || batch > m.max_batch)
    return Status::invalid_argument("cpu executor: batch " + std::to_string(batch) +
                                    " outside [1, " + std::to_string(m.max_batch) + "]");
  const Slot& s = m.slots[index];
  if (static_cast<int64_t>(values.size()) != batch * s.size)
    return Status::invalid_argument("cpu executor: input has " + std::to_string(values.size()) +
                                    " values, expected " + std::to_string(batch * s.size));
  if (m.batch != batch) std::fill(m.valid.begin(), m.valid.end(), 0);
  std::fill(m.valid.begin() + m.num_inputs, m.valid.end(), 0);
  m.batch = batch;
  float* x = m.data(index);
  if (index == 0 && !m.mean.empty()) {
    // As engine::Engine: (x - mean) * (1 / std), per channel (dim 0 of a sample).
    const int64_t channels = static_cast<int64_t>(m.mean.size()), per_channel = s.size / channels;
    const float* v = values.data();
    for (int64_t bc = 0; bc < batch * channels; ++bc) {
      const float mean = m.mean[bc % channels], inv_std = m.inv_std[bc % channels];
      const int64_t o = bc * per_channel;
      for (int64_t i = 0; i < per_channel; ++i) x[o + i] = (v[o + i] - mean) * inv_std;
    }
  } else {
    std::copy(values.begin(), values.end(), x);
  }
  m.valid[index] = 1;
  return Status::ok();
}

Status Executor::set_stage_output(int st, std::span<const float> values, int batch) {
  auto& m = *impl_;
  if (st < 0 || st >= static_cast<int>(m.stage_out.size()))
    return Status::invalid_argument("cpu executor: no stage " + std::to_string(st));
  if (batch < 1 || batch > m.max_batch)
    return Status::invalid_argument("cpu executor: batch " + std::to_string(batch) +
                                    " outside [1, " + std::to_string(m.max_batch) + "]");
  const int o = m.stage_out[st];
  if (static_cast<int64_t>(values.size()) != batch * m.slots[o].size)
    return Status::invalid_argument("cpu executor: stage output has " +
                                    std::to_string(values.size()) + " values, expected " +
                                    std::to_string(batch * m.slots[o].size));
  std::fill(m.valid.begin(), m.valid.end(), 0);
  m.batch = batch;
  std::copy(values.begin(), values.end(), m.data(o));
  m.valid[o] = 1;
  return Status::ok();
}

namespace {

Result<std::span<const float>> run_group(Executor::Impl& m, const std::vector<int>& order, int out,
                                         const char* kind, int index) {
  // Messages are built only on error: a call allocates nothing.
  auto what = [&] { return std::string(kind) + " " + std::to_string(index); };
  if (m.batch == 0)
    return Status::invalid_argument("cpu executor: " + what() + " before set_input");
  // As LibTorch's stages run (nn::Graph): denormals count as zero, so the backends agree on
  // such weights, and a denormal operand does not cost ~100 cycles.
  core::DenormalsAreZero daz;
  for (int s : order) {
    for (int in : m.slots[s].inputs)
      if (!m.valid[in])
        return Status::invalid_argument("cpu executor: " + what() +
                                        " reads a value not computed in this pass (run the "
                                        "stages before it first)");
    m.run_slot(s);
    m.valid[s] = 1;
  }
  return std::span<const float>(m.data(out), m.batch * m.slots[out].size);
}

}  // namespace

Result<std::span<const float>> Executor::run_stage(int st) {
  auto& m = *impl_;
  if (st < 0 || st >= static_cast<int>(m.stage_out.size()))
    return Status::invalid_argument("cpu executor: no stage " + std::to_string(st));
  return run_group(m, m.stage_slots[st], m.stage_out[st], "stage", st);
}

Result<std::span<const float>> Executor::run_exit(int e) {
  auto& m = *impl_;
  if (e < 0 || e >= static_cast<int>(m.exit_out.size()))
    return Status::invalid_argument("cpu executor: no exit " + std::to_string(e));
  if (!m.valid[m.stage_out[m.spec.exits[e].stage]])
    return Status::invalid_argument("cpu executor: exit " + std::to_string(e) +
                                    " before its stage ran");
  return run_group(m, m.exit_slots[e], m.exit_out[e], "exit", e);
}

std::string Executor::plan() const {
  std::string out;
  for (size_t li = 0; li < impl_->spec.layers.size(); ++li) {
    const Slot& s = impl_->slots[impl_->num_inputs + li];
    out += impl_->spec.layers[li].name + ": ";
    if (!s.fused_into.empty())
      out += "fused into " + s.fused_into;
    else if (s.kind == Kind::kAlias)
      out += "view";
    else
      out += std::string(kind_name(s.kind)) + (s.relu ? "+relu" : "");
    if (s.kind == Kind::kConv || s.kind == Kind::kLinear) {
      out += std::string(" [") + kernel_name(s.one);
      if (s.many != s.one) out += std::string(" | ") + kernel_name(s.many);
      out += "]";
    }
    out += "\n";
  }
  return out;
}

std::vector<LayerKernel> Executor::kernels() const {
  std::vector<LayerKernel> v;
  for (size_t li = 0; li < impl_->spec.layers.size(); ++li) {
    const Slot& s = impl_->slots[impl_->num_inputs + li];
    if (s.kind == Kind::kConv || s.kind == Kind::kLinear)
      v.push_back({impl_->spec.layers[li].name, s.one, s.many, s.us_one, s.us_many});
  }
  return v;
}

double Executor::measure_us() const {
  return impl_->measure_us;
}

const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::kAuto:
      return "auto";
    case Kernel::kGemm:
      return "gemm";
    case Kernel::kBatched:
      return "batched";
    case Kernel::kOneDnn:
      return "onednn";
  }
  return "?";
}

void Executor::Impl::run_weighted(Slot& s, Kernel kernel, int n, const float* x, float* y) {
  const Slot& in = slots[s.inputs[0]];
  if (s.kind == Kind::kLinear) {
    if (kernel == Kernel::kBatched) {
      kernels::transpose(x, n, s.in_c, xt.data());
      kernels::gemm(s.wp.data(), s.b.data(), xt.data(), yt.data(), s.out_c, s.in_c, n, s.relu);
      kernels::transpose(yt.data(), s.out_c, n, y);
      return;
    }
    kernels::linear(s.w.data(), s.b.data(), x, y, n, s.out_c, s.in_c, s.relu);
    return;
  }
  const int64_t oh = s.shape[1], ow = s.shape[2], k = s.in_c * s.kernel * s.kernel;
  const int64_t pixels = oh * ow;
  if (kernel == Kernel::kOneDnn) {
    for (int b = 0; b < n; ++b) s.dnn->run(x + b * in.size, y + b * s.size);
    return;
  }
  if (kernel == Kernel::kBatched && s.group > 1 && n > 1) {
    for (int b0 = 0; b0 < n; b0 += s.group) {
      const int g = std::min(s.group, n - b0);
      for (int j = 0; j < g; ++j)
        kernels::im2col(x + (b0 + j) * in.size, s.in_c, s.in_h, s.in_w, s.kernel, s.stride, s.pad,
                        oh, ow, col.data() + j * pixels, g * pixels);
      kernels::gemm(s.wp.data(), s.b.data(), col.data(), gout.data(), s.out_c, k, g * pixels,
                    s.relu);
      for (int j = 0; j < g; ++j)
        for (int64_t r = 0; r < s.out_c; ++r) {
          const float* src = gout.data() + r * g * pixels + j * pixels;
          std::copy(src, src + pixels, y + (b0 + j) * s.size + r * pixels);
        }
    }
    return;
  }
  const bool direct = !batched_conv(s);
  for (int b = 0; b < n; ++b) {
    const float* xb = x + b * in.size;
    if (!direct)
      kernels::im2col(xb, s.in_c, s.in_h, s.in_w, s.kernel, s.stride, s.pad, oh, ow, col.data(),
                      pixels);
    kernels::gemm(s.wp.data(), s.b.data(), direct ? xb : col.data(), y + b * s.size, s.out_c, k,
                  pixels, s.relu);
  }
}

void Executor::Impl::choose_kernels(const ExecutorOptions& opts) {
  using Clock = std::chrono::steady_clock;
  const auto t_start = Clock::now();
  core::DenormalsAreZero daz;
  uint32_t seed = 21;
  auto uniform = [&seed] {  // in [-1, 1); a fixed sequence, so a load is repeatable
    seed = seed * 1664525u + 1013904223u;
    return static_cast<float>(seed >> 8) * (2.0f / 16777216.0f) - 1.0f;
  };
  std::vector<float> ref;
  for (size_t si = 0; si < slots.size(); ++si) {
    Slot& s = slots[si];
    if (s.kind != Kind::kConv && s.kind != Kind::kLinear) continue;
    const bool conv = s.kind == Kind::kConv;
    // Candidates, in Kernel order after kAuto: kGemm always; kBatched for 2.. samples where the
    // layer has it; kOneDnn for convs where oneDNN takes the shape.
    const bool has_batched = opts.max_batch > 1 && (conv ? s.group > 1 : true);
    const bool want_dnn =
        conv && OneDnnConv::available() &&
        (opts.kernel == Kernel::kOneDnn || (opts.kernel == Kernel::kAuto && opts.measure));
    if (want_dnn) {
      auto d = OneDnnConv::create(
          {s.in_c, s.in_h, s.in_w, s.out_c, s.shape[1], s.shape[2], s.kernel, s.stride, s.pad},
          s.w.data(), s.b.data(), s.relu);
      if (d.ok()) s.dnn = std::move(*d);
    }
    auto has = [&](Kernel k) {
      return k == Kernel::kGemm || (k == Kernel::kBatched && has_batched) ||
             (k == Kernel::kOneDnn && s.dnn != nullptr);
    };
    // The fixed rule: today's measured defaults (group_conv, kLinearGemmBatch/Outputs).
    s.one = Kernel::kGemm;
    s.many = Kernel::kGemm;
    if (conv && has_batched && group_conv(s.shape[1] * s.shape[2])) s.many = Kernel::kBatched;
    if (!conv && has_batched && opts.max_batch >= kLinearGemmBatch && s.out_c >= kLinearGemmOutputs)
      s.many = Kernel::kBatched;
    if (opts.kernel != Kernel::kAuto) {
      if (has(opts.kernel)) s.one = s.many = opts.kernel;
    } else if (opts.measure) {
      float* x = data(s.inputs[0]);
      float* y = data(static_cast<int>(si));
      const int64_t in_size = slots[s.inputs[0]].size;
      for (int64_t i = 0; i < opts.max_batch * in_size; ++i) x[i] = uniform();
      for (const int n : {1, opts.max_batch}) {
        if (n == opts.max_batch && n == 1 && !s.us_one.empty()) break;
        auto& us = n == 1 ? s.us_one : s.us_many;
        us.assign(3, -1.0);
        Kernel best = Kernel::kGemm;
        for (const Kernel k : {Kernel::kGemm, Kernel::kBatched, Kernel::kOneDnn}) {
          if (!has(k) || (k == Kernel::kBatched && n == 1)) continue;
          run_weighted(s, k, n, x, y);  // warm-up, and the output to check
          const size_t len = static_cast<size_t>(n * s.size);
          if (k == Kernel::kGemm) {
            ref.assign(y, y + len);
          } else {
            float top = 0, diff = 0;
            for (size_t i = 0; i < len; ++i) {
              top = std::max(top, std::abs(ref[i]));
              diff = std::max(diff, std::abs(y[i] - ref[i]));
            }
            if (!(diff <= 1e-4f * std::max(1.0f, top))) continue;
          }
          // Best of up to 3 calls, fewer once 10 ms went into this candidate.
          double t_best = 1e300, spent = 0;
          for (int r = 0; r < 3 && (r == 0 || spent < 1e4); ++r) {
            const auto t0 = Clock::now();
            run_weighted(s, k, n, x, y);
            const double t = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
            t_best = std::min(t_best, t);
            spent += t;
          }
          us[static_cast<int>(k) - 1] = t_best;
          auto handicapped = [&](Kernel c) {
            const double t = us[static_cast<int>(c) - 1];
            return c == Kernel::kGemm ? t : t * kOtherKernelHandicap;
          };
          if (handicapped(k) < handicapped(best)) best = k;
        }
        (n == 1 ? s.one : s.many) = best;
      }
      if (opts.max_batch == 1) s.many = s.one;
      std::fill(x, x + opts.max_batch * in_size, 0.f);
      std::fill(y, y + opts.max_batch * s.size, 0.f);
    }
    if (s.one != Kernel::kOneDnn && s.many != Kernel::kOneDnn) s.dnn.reset();
    if (conv) {
      s.w.clear();  // the gemm reads wp, oneDNN its own copy
      s.w.shrink_to_fit();
    } else if (s.one != Kernel::kBatched && s.many != Kernel::kBatched) {
      s.wp.clear();
      s.wp.shrink_to_fit();
    }
  }
  if (opts.kernel == Kernel::kAuto && opts.measure)
    measure_us = std::chrono::duration<double, std::micro>(Clock::now() - t_start).count();
}

void Executor::Impl::run_slot(int si) {
  Slot& s = slots[si];
  if (s.kind == Kind::kAlias || s.kind == Kind::kInput) return;
  const int n = batch;
  float* y = data(si);
  const float* x = data(s.inputs[0]);
  switch (s.kind) {
    case Kind::kConv:
    case Kind::kLinear:
      run_weighted(s, n == 1 ? s.one : s.many, n, x, y);
      return;
    case Kind::kMaxPool:
    case Kind::kAvgPool: {
      const bool is_max = s.kind == Kind::kMaxPool;
      const int64_t oh = s.shape[1], ow = s.shape[2];
      const float lo = s.relu ? 0.f : -std::numeric_limits<float>::infinity();
      const float inv = 1.f / static_cast<float>(s.kernel * s.kernel);
      if (is_max && s.kernel == 2 && s.stride == 2 && s.pad == 0) {
        // The common 2x2/2 max pool without bounds checks.
        for (int64_t bc = 0; bc < n * s.in_c; ++bc) {
          const float* xp = x + bc * s.in_h * s.in_w;
          float* yp = y + bc * oh * ow;
          for (int64_t oy = 0; oy < oh; ++oy) {
            const float* r0 = xp + 2 * oy * s.in_w;
            const float* r1 = r0 + s.in_w;
            for (int64_t ox = 0; ox < ow; ++ox)
              yp[oy * ow + ox] = std::max(std::max(std::max(r0[2 * ox], r0[2 * ox + 1]),
                                                   std::max(r1[2 * ox], r1[2 * ox + 1])),
                                          lo);
          }
        }
        return;
      }
      // Separable: per output row, the window's rows (those inside the image) reduced into
      // `prow` (contiguous, so vectorised), padded on both sides with what adds nothing (-inf
      // for max, 0 for the average), then each output the reduction of `kernel` values of it:
      // no bounds check per value (AlexNet's 3 x 3 / 2 pools: 5x faster than per window).
      const float pad_value = is_max ? -std::numeric_limits<float>::infinity() : 0.f;
      float* row = prow.data() + s.pad;
      std::fill(prow.begin(), prow.begin() + s.pad, pad_value);
      std::fill(row + s.in_w, row + s.in_w + s.pad, pad_value);
      for (int64_t bc = 0; bc < n * s.in_c; ++bc) {
        const float* xp = x + bc * s.in_h * s.in_w;
        float* yp = y + bc * oh * ow;
        for (int64_t oy = 0; oy < oh; ++oy) {
          const int64_t y0 = std::max<int64_t>(0, oy * s.stride - s.pad);
          const int64_t y1 = std::min(s.in_h, oy * s.stride - s.pad + s.kernel);
          if (y1 <= y0) {
            std::fill(row, row + s.in_w, pad_value);
          } else {
            std::copy(xp + y0 * s.in_w, xp + (y0 + 1) * s.in_w, row);
            for (int64_t iy = y0 + 1; iy < y1; ++iy) {
              const float* r = xp + iy * s.in_w;
              if (is_max)
                for (int64_t i = 0; i < s.in_w; ++i) row[i] = std::max(row[i], r[i]);
              else
                for (int64_t i = 0; i < s.in_w; ++i) row[i] += r[i];
            }
          }
          for (int64_t ox = 0; ox < ow; ++ox) {
            const float* win = prow.data() + ox * s.stride;
            float acc = win[0];
            for (int64_t kx = 1; kx < s.kernel; ++kx)
              acc = is_max ? std::max(acc, win[kx]) : acc + win[kx];
            if (!is_max) acc *= inv;  // padding counts (count_include_pad, LibTorch's default)
            yp[oy * ow + ox] = std::max(acc, lo);
          }
        }
      }
      return;
    }
    case Kind::kScaleShift: {
      const int64_t spatial = s.size / s.out_c;
      for (int b = 0; b < n; ++b)
        for (int64_t c = 0; c < s.out_c; ++c) {
          const float* xp = x + b * s.size + c * spatial;
          float* yp = y + b * s.size + c * spatial;
          for (int64_t i = 0; i < spatial; ++i) {
            const float v = xp[i] * s.w[c] + s.b[c];
            yp[i] = s.relu ? std::max(v, 0.f) : v;
          }
        }
      return;
    }
    case Kind::kReLU:
      for (int64_t i = 0; i < n * s.size; ++i) y[i] = std::max(x[i], 0.f);
      return;
    case Kind::kLRN: {
      // LibTorch: x / (k + alpha/size * sum of x^2 over channels c - size/2 .. c + (size-1)/2)
      // ^ beta, one channel plane at a time (the sum built in y), so the loops run over
      // contiguous pixels; kernels::lrn_apply takes beta 0.75 (AlexNet's) without pow().
      const int64_t c = s.shape[0], hw = s.size / c;
      const float scale = static_cast<float>(s.alpha / s.lrn_size), kk = static_cast<float>(s.k);
      const float beta = static_cast<float>(s.beta);
      for (int b = 0; b < n; ++b)
        for (int64_t ci = 0; ci < c; ++ci) {
          const int64_t c0 = std::max<int64_t>(0, ci - s.lrn_size / 2);
          const int64_t c1 = std::min<int64_t>(c - 1, ci + (s.lrn_size - 1) / 2);
          float* yp = y + b * s.size + ci * hw;
          const float* xp = x + b * s.size + ci * hw;
          std::fill(yp, yp + hw, 0.f);
          for (int64_t cj = c0; cj <= c1; ++cj) {
            const float* xj = x + b * s.size + cj * hw;
            for (int64_t i = 0; i < hw; ++i) yp[i] += xj[i] * xj[i];
          }
          kernels::lrn_apply(xp, yp, hw, kk, scale, beta);
        }
      return;
    }
    case Kind::kSoftmax: {
      const int64_t last = s.shape.back(), rows = n * s.size / last;
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * last;
        float* yr = y + r * last;
        const float mx = *std::max_element(xr, xr + last);
        float sum = 0;
        for (int64_t i = 0; i < last; ++i) sum += (yr[i] = std::exp(xr[i] - mx));
        for (int64_t i = 0; i < last; ++i) yr[i] /= sum;
      }
      return;
    }
    case Kind::kAggregate: {
      if (s.agg_op == "concat") {
        for (int b = 0; b < n; ++b) {
          float* yb = y + b * s.size;
          for (int in_slot : s.inputs) {
            const int64_t sz = slots[in_slot].size;
            const float* xb = data(in_slot) + b * sz;
            yb = std::copy(xb, xb + sz, yb);
          }
        }
        return;
      }
      const bool is_max = s.agg_op == "max";
      std::copy(x, x + n * s.size, y);
      for (size_t j = 1; j < s.inputs.size(); ++j) {
        const float* xj = data(s.inputs[j]);
        for (int64_t i = 0; i < n * s.size; ++i)
          y[i] = is_max ? std::max(y[i], xj[i]) : y[i] + xj[i];
      }
      if (!is_max) {
        const float inv = 1.f / static_cast<float>(s.inputs.size());
        for (int64_t i = 0; i < n * s.size; ++i) y[i] *= inv;
      }
      return;
    }
    default:
      return;
  }
}

}  // namespace idn::cpu
