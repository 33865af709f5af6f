#include "data/multiview.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <system_error>

namespace idn::data {
namespace {

constexpr std::string_view kFormat = "idn-multiview";
constexpr int64_t kVersion = 1;
constexpr int64_t kMaxViews = 64, kMaxChannels = 16, kMaxSide = 1024, kMaxClasses = 128;

// splitmix64: the standard library's distributions differ between implementations, so the
// generator draws its own uniforms and normals to stay reproducible.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  uint64_t below(uint64_t n) { return next() % n; }  // bias < n / 2^64: negligible here
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  uint64_t s_;
};

uint64_t sample_seed(uint64_t seed, int64_t i) {
  Rng r(seed ^ (0xd1b54a32d192ed03ull * static_cast<uint64_t>(i + 1)));
  return r.next();
}

// Bilinear sample of a 28x28-style grey image at (x, y); 0 outside.
float sample_bilinear(std::span<const float> img, int64_t h, int64_t w, double x, double y) {
  const double fx = std::floor(x), fy = std::floor(y);
  const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
  const double ax = x - fx, ay = y - fy;
  auto at = [&](int64_t yy, int64_t xx) -> double {
    return (yy < 0 || yy >= h || xx < 0 || xx >= w) ? 0.0 : img[yy * w + xx];
  };
  const double top = at(y0, x0) * (1 - ax) + at(y0, x0 + 1) * ax;
  const double bottom = at(y0 + 1, x0) * (1 - ax) + at(y0 + 1, x0 + 1) * ax;
  return static_cast<float>(top * (1 - ay) + bottom * ay);
}

uint8_t to_pixel(double v) {
  return static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
}

void render_view(std::span<const float> item, int64_t ih, int64_t iw, const CameraSpec& cam,
                 int64_t c, int64_t size, Rng& rng, std::span<uint8_t> out) {
  const double jx = cam.jitter > 0 ? rng.uniform(-cam.jitter, cam.jitter) : 0.0;
  const double jy = cam.jitter > 0 ? rng.uniform(-cam.jitter, cam.jitter) : 0.0;
  const double th = cam.rotation_deg * std::numbers::pi / 180.0;
  const double cos_t = std::cos(th), sin_t = std::sin(th);
  const double vc = (static_cast<double>(size) - 1) / 2;
  const double icx = (static_cast<double>(iw) - 1) / 2, icy = (static_cast<double>(ih) - 1) / 2;
  std::vector<double> grey(static_cast<size_t>(size * size));
  for (int64_t y = 0; y < size; ++y) {
    for (int64_t x = 0; x < size; ++x) {
      // Inverse map: view pixel -> item pixel (undo shift, rotation, scale).
      const double dx = x - vc - cam.shift_x - jx, dy = y - vc - cam.shift_y - jy;
      const double rx = (cos_t * dx + sin_t * dy) / cam.scale;
      const double ry = (-sin_t * dx + cos_t * dy) / cam.scale;
      double v = sample_bilinear(item, ih, iw, icx + rx, icy + ry);
      if (x >= cam.occluder_x && x < cam.occluder_x + cam.occluder_w && y >= cam.occluder_y &&
          y < cam.occluder_y + cam.occluder_h)
        v = cam.occluder_value;
      grey[static_cast<size_t>(y * size + x)] = v;
    }
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    const double gain = cam.gain[ch % 3];
    for (int64_t p = 0; p < size * size; ++p) {
      double v = grey[static_cast<size_t>(p)] * gain;
      if (cam.noise_std > 0) v += cam.noise_std * rng.normal();
      out[static_cast<size_t>(ch * size * size + p)] = to_pixel(v);
    }
  }
}

Status check_camera(const CameraSpec& cam, size_t v, size_t classes) {
  const std::string at = "camera " + std::to_string(v) + ": ";
  if (!(cam.scale > 0) || !std::isfinite(cam.scale))
    return Status::invalid_argument(at + "scale must be a positive number");
  if (!(cam.presence >= 0 && cam.presence <= 1))
    return Status::invalid_argument(at + "presence must be in [0, 1]");
  if (!(cam.noise_std >= 0) || !(cam.jitter >= 0))
    return Status::invalid_argument(at + "noise_std and jitter must be >= 0");
  if (!cam.class_bias.empty() && cam.class_bias.size() != classes)
    return Status::invalid_argument(at + "class_bias has " + std::to_string(cam.class_bias.size()) +
                                    " entries for " + std::to_string(classes) + " classes");
  for (float b : cam.class_bias)
    if (!(b >= 0) || !std::isfinite(b))
      return Status::invalid_argument(at + "class_bias entries must be finite and >= 0");
  return Status::ok();
}

Result<Bytes> read_all(const std::filesystem::path& p) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec))
    return Status::not_found(p.string() + ": no such file");
  std::ifstream f(p, std::ios::binary);
  if (!f) return Status::io_error(p.string() + ": cannot open");
  Bytes b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return Status::io_error(p.string() + ": read failed");
  return b;
}

Status write_all(const std::filesystem::path& p, const void* data, size_t size) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  f.close();
  if (!f) return Status::io_error(p.string() + ": write failed");
  return Status::ok();
}

Result<int64_t> get_int(const nlohmann::json& j, const char* key, int64_t lo, int64_t hi) {
  if (!j.contains(key) || !j[key].is_number_integer())
    return Status::corruption(std::string("manifest.json: \"") + key + "\" must be an integer");
  const int64_t v = j[key].get<int64_t>();
  if (v < lo || v > hi)
    return Status::corruption(std::string("manifest.json: \"") + key + "\" is " +
                              std::to_string(v) + ", must be in " + std::to_string(lo) + ".." +
                              std::to_string(hi));
  return v;
}

Result<std::filesystem::path> get_file(const nlohmann::json& j, const char* key,
                                       const std::filesystem::path& dir) {
  if (!j.contains(key) || !j[key].is_string())
    return Status::corruption(std::string("manifest.json: \"") + key + "\" must be a file name");
  const std::string name = j[key].get<std::string>();
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos)
    return Status::corruption(std::string("manifest.json: \"") + key + "\" is \"" + name +
                              "\", not a plain file name in the directory");
  return dir / name;
}

}  // namespace

float CameraSpec::see_probability(int64_t cls) const {
  const float bias = class_bias.empty() ? 1.0f : class_bias[static_cast<size_t>(cls)];
  return std::clamp(presence * bias, 0.0f, 1.0f);
}

Dataset MultiViewDataset::camera(int64_t v) const {
  Dataset d;
  d.n = n;
  d.c = c;
  d.h = h;
  d.w = w;
  d.images.reserve(static_cast<size_t>(n * view_size()));
  for (int64_t i = 0; i < n; ++i) {
    for (uint8_t p : view(i, v)) d.images.push_back(static_cast<float>(p) / 255.0f);
    d.labels.push_back(view_labels[i * views + v]);
  }
  return d;
}

std::vector<int64_t> default_multiview_classes() {
  return {2, 4, 5};
}

std::vector<CameraSpec> default_cameras(int64_t classes) {
  // Six viewpoints from poor to good, as MVMC's devices (Fig. 4.8: individual accuracy from
  // under 40 % to over 70 %). Camera 1 is far, tilted and half blocked; camera 5 is near
  // frontal. Biases repeat every three classes when there are more.
  struct Row {
    float sx, sy, scale, rot, jitter;
    int ox, oy, ow, oh;
    float noise, presence;
    float bias[3];
    float gain[3];
  };
  static const Row kRows[6] = {
      {-4, 2, 0.9f, 25, 1.5f, 0, 0, 8, 32, 0.10f, 0.70f, {1.0f, 0.6f, 0.9f}, {1.0f, 0.9f, 0.8f}},
      {6, -5, 0.6f, -35, 2, 16, 0, 16, 32, 0.25f, 0.50f, {0.5f, 1.0f, 0.4f}, {0.7f, 0.8f, 1.0f}},
      {0, 6, 0.8f, 90, 1.5f, 0, 0, 0, 0, 0.15f, 0.60f, {0.8f, 0.8f, 1.0f}, {0.9f, 1.0f, 0.9f}},
      {-6,
       -6,
       0.7f,
       180,
       1.5f,
       20,
       20,
       12,
       12,
       0.12f,
       0.65f,
       {1.0f, 0.5f, 0.7f},
       {1.0f, 1.0f, 1.0f}},
      {3, 3, 1.0f, -10, 1, 0, 26, 32, 6, 0.08f, 0.75f, {0.6f, 1.0f, 0.8f}, {0.8f, 0.8f, 0.8f}},
      {0, 0, 1.1f, 0, 1, 0, 0, 0, 0, 0.05f, 0.85f, {1.0f, 1.0f, 1.0f}, {1.0f, 0.95f, 0.9f}},
  };
  std::vector<CameraSpec> cams;
  for (const Row& r : kRows) {
    CameraSpec c;
    c.shift_x = r.sx;
    c.shift_y = r.sy;
    c.scale = r.scale;
    c.rotation_deg = r.rot;
    c.jitter = r.jitter;
    c.occluder_x = r.ox;
    c.occluder_y = r.oy;
    c.occluder_w = r.ow;
    c.occluder_h = r.oh;
    c.noise_std = r.noise;
    c.presence = r.presence;
    for (int64_t k = 0; k < classes; ++k) c.class_bias.push_back(r.bias[k % 3]);
    std::copy(std::begin(r.gain), std::end(r.gain), c.gain);
    cams.push_back(std::move(c));
  }
  return cams;
}

Result<MultiViewDataset> generate_multiview(const Dataset& source,
                                            const MultiViewOptions& options) {
  const auto& classes = options.source_classes;
  const std::vector<CameraSpec> cams = options.cameras.empty()
                                           ? default_cameras(static_cast<int64_t>(classes.size()))
                                           : options.cameras;
  if (classes.empty() || classes.size() > static_cast<size_t>(kMaxClasses))
    return Status::invalid_argument("multiview: need 1.." + std::to_string(kMaxClasses) +
                                    " source classes");
  if (cams.empty() || cams.size() > static_cast<size_t>(kMaxViews))
    return Status::invalid_argument("multiview: need 1.." + std::to_string(kMaxViews) + " cameras");
  if (options.samples < 0 || options.size < 1 || options.size > kMaxSide)
    return Status::invalid_argument("multiview: samples must be >= 0 and size in 1..1024");
  if (options.channels != 1 && options.channels != 3)
    return Status::invalid_argument("multiview: channels must be 1 or 3");
  if (source.c != 1)
    return Status::invalid_argument("multiview: the source must be single-channel (FashionMNIST)");
  for (size_t v = 0; v < cams.size(); ++v)
    IDN_RETURN_IF_ERROR(check_camera(cams[v], v, classes.size()));

  std::vector<std::vector<int64_t>> by_class(classes.size());
  for (int64_t i = 0; i < source.n; ++i)
    for (size_t k = 0; k < classes.size(); ++k)
      if (source.labels[i] == classes[k]) by_class[k].push_back(i);
  for (size_t k = 0; k < classes.size(); ++k) {
    if (by_class[k].empty())
      return Status::invalid_argument("multiview: the source has no image of class " +
                                      std::to_string(classes[k]));
    double none = 1;
    for (const auto& cam : cams) none *= 1.0 - cam.see_probability(static_cast<int64_t>(k));
    if (none >= 1.0)
      return Status::invalid_argument("multiview: no camera can see class " +
                                      std::to_string(classes[k]));
  }

  MultiViewDataset d;
  d.n = options.samples;
  d.views = static_cast<int64_t>(cams.size());
  d.c = options.channels;
  d.h = d.w = options.size;
  const auto& names = fashion_mnist_class_names();
  for (int64_t k : classes)
    d.class_names.push_back(k >= 0 && k < static_cast<int64_t>(names.size())
                                ? std::string(names[static_cast<size_t>(k)])
                                : "class " + std::to_string(k));
  d.pixels.assign(static_cast<size_t>(d.n * d.views * d.view_size()), 0);
  d.labels.resize(static_cast<size_t>(d.n));
  d.view_labels.assign(static_cast<size_t>(d.n * d.views), -1);
  std::vector<bool> seen(cams.size());
  for (int64_t i = 0; i < d.n; ++i) {
    Rng rng(sample_seed(options.seed, i));
    const int64_t k = static_cast<int64_t>(rng.below(classes.size()));
    const auto& pool = by_class[static_cast<size_t>(k)];
    const int64_t src = pool[rng.below(pool.size())];
    bool any = false;
    while (!any) {
      for (size_t v = 0; v < cams.size(); ++v) {
        seen[v] = rng.uniform() < cams[v].see_probability(k);
        any = any || seen[v];
      }
    }
    d.labels[static_cast<size_t>(i)] = k;
    for (int64_t v = 0; v < d.views; ++v) {
      if (!seen[static_cast<size_t>(v)]) continue;  // absent: a blank (all-zero) view
      d.view_labels[static_cast<size_t>(i * d.views + v)] = k;
      std::span<uint8_t> out(d.pixels.data() + (i * d.views + v) * d.view_size(),
                             static_cast<size_t>(d.view_size()));
      render_view(source.image(src), source.h, source.w, cams[static_cast<size_t>(v)], d.c, d.h,
                  rng, out);
    }
  }
  return d;
}

Status write_multiview(const MultiViewDataset& d, const std::filesystem::path& dir) {
  if (d.pixels.size() != static_cast<size_t>(d.n * d.views * d.view_size()) ||
      d.labels.size() != static_cast<size_t>(d.n) ||
      d.view_labels.size() != static_cast<size_t>(d.n * d.views))
    return Status::invalid_argument("write_multiview: buffers do not match the dimensions");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::io_error(dir.string() + ": " + ec.message());
  std::vector<int8_t> labels(d.labels.begin(), d.labels.end());
  std::vector<int8_t> view_labels(d.view_labels.begin(), d.view_labels.end());
  IDN_RETURN_IF_ERROR(write_all(dir / "pixels.u8", d.pixels.data(), d.pixels.size()));
  IDN_RETURN_IF_ERROR(write_all(dir / "sample_labels.i8", labels.data(), labels.size()));
  IDN_RETURN_IF_ERROR(write_all(dir / "view_labels.i8", view_labels.data(), view_labels.size()));
  nlohmann::json m = {{"format", kFormat},
                      {"version", kVersion},
                      {"samples", d.n},
                      {"views", d.views},
                      {"channels", d.c},
                      {"height", d.h},
                      {"width", d.w},
                      {"classes", d.class_names},
                      {"pixels", "pixels.u8"},
                      {"sample_labels", "sample_labels.i8"},
                      {"view_labels", "view_labels.i8"}};
  const std::string text = m.dump(2) + "\n";
  IDN_RETURN_IF_ERROR(write_all(dir / "manifest.json.tmp", text.data(), text.size()));
  std::filesystem::rename(dir / "manifest.json.tmp", dir / "manifest.json", ec);
  if (ec) return Status::io_error((dir / "manifest.json").string() + ": " + ec.message());
  return Status::ok();
}

Result<MultiViewDataset> read_multiview(const std::filesystem::path& dir) {
  auto in_dir = [&](Status st) { return st.with_context(dir.string()); };
  auto text = read_all(dir / "manifest.json");
  if (!text.ok()) return text.status();
  const auto m = nlohmann::json::parse(text->begin(), text->end(), nullptr, false);
  if (m.is_discarded() || !m.is_object())
    return in_dir(Status::corruption("manifest.json is not a JSON object"));
  if (!m.contains("format") || m["format"] != kFormat)
    return in_dir(Status::corruption("manifest.json: \"format\" must be \"idn-multiview\""));
  auto version = get_int(m, "version", 0, INT32_MAX);
  if (!version.ok()) return in_dir(version.status());
  if (*version != kVersion)
    return in_dir(Status::unsupported("manifest.json: version " + std::to_string(*version) +
                                      " (this build reads version 1)"));
  MultiViewDataset d;
  struct Dim {
    const char* key;
    int64_t* out;
    int64_t lo, hi;
  };
  const Dim dims[] = {{"samples", &d.n, 0, INT32_MAX},
                      {"views", &d.views, 1, kMaxViews},
                      {"channels", &d.c, 1, kMaxChannels},
                      {"height", &d.h, 1, kMaxSide},
                      {"width", &d.w, 1, kMaxSide}};
  for (const Dim& dim : dims) {
    auto v = get_int(m, dim.key, dim.lo, dim.hi);
    if (!v.ok()) return in_dir(v.status());
    *dim.out = *v;
  }
  if (!m.contains("classes") || !m["classes"].is_array() || m["classes"].empty() ||
      m["classes"].size() > static_cast<size_t>(kMaxClasses))
    return in_dir(Status::corruption("manifest.json: \"classes\" must be a list of 1..128 names"));
  for (const auto& name : m["classes"]) {
    if (!name.is_string())
      return in_dir(Status::corruption("manifest.json: \"classes\" must hold strings"));
    d.class_names.push_back(name.get<std::string>());
  }
  auto pixels_path = get_file(m, "pixels", dir);
  auto labels_path = get_file(m, "sample_labels", dir);
  auto view_labels_path = get_file(m, "view_labels", dir);
  for (const auto* p : {&pixels_path, &labels_path, &view_labels_path})
    if (!p->ok()) return in_dir(p->status());

  auto read_exact = [&](const std::filesystem::path& p, uint64_t want) -> Result<Bytes> {
    std::error_code ec;
    const auto size = std::filesystem::file_size(p, ec);
    if (ec) return Status::not_found(p.string() + ": " + ec.message());
    if (size != want)
      return Status::corruption(p.string() + ": " + std::to_string(size) +
                                " bytes, the manifest's " + "dimensions need " +
                                std::to_string(want));
    return read_all(p);
  };
  const uint64_t n = static_cast<uint64_t>(d.n), views = static_cast<uint64_t>(d.views);
  // Each factor is bounded above, so the product fits in 64 bits.
  auto pixels = read_exact(*pixels_path, n * views * static_cast<uint64_t>(d.view_size()));
  if (!pixels.ok()) return pixels.status();
  auto labels = read_exact(*labels_path, n);
  if (!labels.ok()) return labels.status();
  auto view_labels = read_exact(*view_labels_path, n * views);
  if (!view_labels.ok()) return view_labels.status();

  d.pixels = std::move(*pixels);
  d.labels.resize(n);
  d.view_labels.resize(n * views);
  for (uint64_t i = 0; i < n; ++i) {
    const int64_t label = static_cast<int8_t>((*labels)[i]);
    if (label < 0 || label >= d.classes())
      return Status::corruption(labels_path->string() + ": sample " + std::to_string(i) +
                                " has label " + std::to_string(label) + ", outside 0.." +
                                std::to_string(d.classes() - 1));
    d.labels[i] = label;
    for (uint64_t v = 0; v < views; ++v) {
      const int64_t vl = static_cast<int8_t>((*view_labels)[i * views + v]);
      if (vl != -1 && vl != label)
        return Status::corruption(view_labels_path->string() + ": sample " + std::to_string(i) +
                                  " view " + std::to_string(v) + " has label " +
                                  std::to_string(vl) + ", must be -1 (absent) or the sample's " +
                                  std::to_string(label));
      d.view_labels[i * views + v] = vl;
    }
  }
  return d;
}

}  // namespace idn::data
