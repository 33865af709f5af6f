// A small metrics registry (counters, gauges, histograms, and gauges/counters read from a
// function at scrape time) rendered in the Prometheus text exposition format 0.0.4, which the
// node serves at /metrics. Thread-safe: metrics update with atomics, registration and
// rendering take a mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idn::node {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void add(double d);
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0.0};
};

// Cumulative buckets with the given upper bounds (strictly increasing; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last = above every bound
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Bucket bounds: start, start*factor, ... (count bounds). For latencies in seconds.
std::vector<double> exponential_buckets(double start, double factor, int count);

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the metric with this name and label set, creating it on first use. A name must
  // keep one type and help text; names and label names must match Prometheus' grammar. Both
  // are fixed by our own code, so a violation is a bug and aborts with a message.
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view name, std::string_view help,
                       std::vector<double> upper_bounds, const Labels& labels = {});
  // Values owned elsewhere (a connection count, a byte counter in p2p) read when scraped.
  // The function runs on the rendering thread while the registry's mutex is held.
  void gauge_fn(std::string_view name, std::string_view help, const Labels& labels,
                std::function<double()> read);
  void counter_fn(std::string_view name, std::string_view help, const Labels& labels,
                  std::function<double()> read);

  // Every metric, families sorted by name, in the text exposition format.
  std::string render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> read;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<std::unique_ptr<Series>> series;
  };
  Series& series(std::string_view name, std::string_view help, Type type, const Labels& labels);

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

// Prometheus' spelling of a sample value: shortest round-trip decimal, "+Inf", "-Inf", "NaN".
std::string format_metric_value(double v);
// Label value escaping: backslash, double quote and newline.
std::string escape_label_value(std::string_view v);

}  // namespace idn::node
