#include "node/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace idn::node {
namespace {

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || n.starts_with("__") || n == "le") return false;
  return valid_metric_name(n) && n.find(':') == std::string_view::npos;
}

[[noreturn]] void bug(const std::string& what) {
  std::fprintf(stderr, "idn: internal error in metrics registry: %s\n", what.c_str());
  std::abort();
}

std::string escape_help(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void append_labels(std::string& out, const Labels& labels, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += fmt::format("{}=\"{}\"", k, escape_label_value(v));
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += fmt::format("{}=\"{}\"", extra_name, extra_value);
  }
  out += '}';
}

std::string_view type_name(int t) {
  static constexpr std::string_view kNames[] = {"counter", "gauge", "histogram"};
  return kNames[t];
}

}  // namespace

void Gauge::add(double d) {
  double cur = v_.load(std::memory_order_relaxed);
  while (!v_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && !(bounds_[i] > bounds_[i - 1]))) {
      bug("histogram bounds must be finite and strictly increasing");
    }
  }
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  std::lock_guard lock(mu_);
  counts_[i]++;
  sum_ += v;
  count_++;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  std::lock_guard lock(mu_);
  uint64_t acc = 0;
  for (uint64_t c : counts_) {
    acc += c;
    s.cumulative.push_back(acc);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  std::vector<double> b;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) b.push_back(v);
  return b;
}

Registry::Series& Registry::series(std::string_view name, std::string_view help, Type type,
                                   const Labels& labels) {
  if (!valid_metric_name(name)) bug(fmt::format("invalid metric name '{}'", name));
  for (const auto& [k, v] : labels) {
    if (!valid_label_name(k)) bug(fmt::format("metric {}: invalid label name '{}'", name, k));
  }
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{type, std::string(help), {}}).first;
  } else if (it->second.type != type) {
    bug(fmt::format("metric {} registered as {} and as {}", name,
                    type_name(static_cast<int>(it->second.type)),
                    type_name(static_cast<int>(type))));
  }
  for (auto& s : it->second.series) {
    if (s->labels == labels) return *s;
  }
  it->second.series.push_back(std::make_unique<Series>());
  it->second.series.back()->labels = labels;
  return *it->second.series.back();
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mu_);
  Series& s = series(name, help, Type::kCounter, labels);
  if (s.read) bug(fmt::format("metric {} is function-backed", name));
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return *s.counter;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mu_);
  Series& s = series(name, help, Type::kGauge, labels);
  if (s.read) bug(fmt::format("metric {} is function-backed", name));
  if (!s.gauge) s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               std::vector<double> upper_bounds, const Labels& labels) {
  std::lock_guard lock(mu_);
  Series& s = series(name, help, Type::kHistogram, labels);
  if (!s.histogram) s.histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return *s.histogram;
}

void Registry::gauge_fn(std::string_view name, std::string_view help, const Labels& labels,
                        std::function<double()> read) {
  std::lock_guard lock(mu_);
  Series& s = series(name, help, Type::kGauge, labels);
  if (s.gauge) bug(fmt::format("metric {} already has a stored value", name));
  s.read = std::move(read);
}

void Registry::counter_fn(std::string_view name, std::string_view help, const Labels& labels,
                          std::function<double()> read) {
  std::lock_guard lock(mu_);
  Series& s = series(name, help, Type::kCounter, labels);
  if (s.counter) bug(fmt::format("metric {} already has a stored value", name));
  s.read = std::move(read);
}

std::string Registry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, fam] : families_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(fam.help), name,
                       type_name(static_cast<int>(fam.type)));
    for (const auto& s : fam.series) {
      if (fam.type == Type::kHistogram) {
        Histogram::Snapshot snap = s->histogram->snapshot();
        for (size_t i = 0; i <= snap.upper_bounds.size(); ++i) {
          out += name;
          out += "_bucket";
          std::string le = i < snap.upper_bounds.size() ? format_metric_value(snap.upper_bounds[i])
                                                        : std::string("+Inf");
          append_labels(out, s->labels, "le", le);
          out += fmt::format(" {}\n", snap.cumulative[i]);
        }
        out += name;
        out += "_sum";
        append_labels(out, s->labels);
        out += fmt::format(" {}\n", format_metric_value(snap.sum));
        out += name;
        out += "_count";
        append_labels(out, s->labels);
        out += fmt::format(" {}\n", snap.count);
        continue;
      }
      double v = s->read      ? s->read()
                 : s->counter ? static_cast<double>(s->counter->value())
                 : s->gauge   ? s->gauge->value()
                              : 0.0;
      out += name;
      append_labels(out, s->labels);
      out += fmt::format(" {}\n", format_metric_value(v));
    }
  }
  return out;
}

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

}  // namespace idn::node
