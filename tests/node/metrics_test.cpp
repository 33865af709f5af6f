#include "node/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <thread>

namespace idn::node {
namespace {

using ::testing::HasSubstr;

TEST(Metrics, CounterAndGaugeRenderWithHelpTypeAndLabels) {
  Registry r;
  r.counter("idn_handshakes_total", "Handshakes by result.", {{"result", "ok"}}).inc(3);
  r.counter("idn_handshakes_total", "Handshakes by result.", {{"result", "failed"}}).inc();
  r.gauge("idn_connections", "Open connections.").set(2);
  std::string text = r.render();
  EXPECT_THAT(text, HasSubstr("# HELP idn_connections Open connections.\n"
                              "# TYPE idn_connections gauge\nidn_connections 2\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE idn_handshakes_total counter\n"
                              "idn_handshakes_total{result=\"ok\"} 3\n"
                              "idn_handshakes_total{result=\"failed\"} 1\n"));
  // Families are sorted by name.
  EXPECT_LT(text.find("idn_connections"), text.find("idn_handshakes_total"));
}

TEST(Metrics, SameNameAndLabelsReturnTheSameMetric) {
  Registry r;
  Counter& a = r.counter("x_total", "x", {{"k", "v"}});
  Counter& b = r.counter("x_total", "x", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &r.counter("x_total", "x", {{"k", "w"}}));
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r;
  Histogram& h = r.histogram("idn_rtt_seconds", "RTT.", {0.001, 0.01, 0.1});
  for (double v : {0.0005, 0.001, 0.005, 0.05, 2.0}) h.observe(v);
  std::string text = r.render();
  EXPECT_THAT(text, HasSubstr("idn_rtt_seconds_bucket{le=\"0.001\"} 2\n"
                              "idn_rtt_seconds_bucket{le=\"0.01\"} 3\n"
                              "idn_rtt_seconds_bucket{le=\"0.1\"} 4\n"
                              "idn_rtt_seconds_bucket{le=\"+Inf\"} 5\n"
                              "idn_rtt_seconds_sum 2.0565\n"
                              "idn_rtt_seconds_count 5\n"));
}

TEST(Metrics, FunctionBackedValuesAreReadAtScrapeTime) {
  Registry r;
  double live = 1;
  r.gauge_fn("idn_streams", "Open streams.", {}, [&] { return live; });
  EXPECT_THAT(r.render(), HasSubstr("idn_streams 1\n"));
  live = 7;
  EXPECT_THAT(r.render(), HasSubstr("idn_streams 7\n"));
}

TEST(Metrics, LabelValuesAreEscaped) {
  Registry r;
  r.gauge("g", "help with \\ and\nnewline", {{"path", "a\"b\\c\nd"}}).set(1);
  std::string text = r.render();
  EXPECT_THAT(text, HasSubstr("g{path=\"a\\\"b\\\\c\\nd\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# HELP g help with \\\\ and\\nnewline\n"));
}

TEST(Metrics, SpecialValuesUsePrometheusSpelling) {
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
  EXPECT_EQ(format_metric_value(42), "42");
  EXPECT_EQ(format_metric_value(0.25), "0.25");
}

TEST(Metrics, ConcurrentIncrementsAreNotLost) {
  Registry r;
  Counter& c = r.counter("c_total", "c");
  Histogram& h = r.histogram("h", "h", {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.inc();
        h.observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000u);
  EXPECT_EQ(h.snapshot().count, 40000u);
}

TEST(MetricsDeathTest, ReusingANameWithAnotherTypeIsABug) {
  Registry r;
  r.counter("dup", "d");
  EXPECT_DEATH(r.gauge("dup", "d"), "registered as counter and as gauge");
  EXPECT_DEATH(r.counter("bad-name", "d"), "invalid metric name");
}

TEST(Metrics, RenderedTextPassesPromtool) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  Registry r;
  r.counter("idn_bytes_received_total", "Bytes received.").inc(10);
  r.counter("idn_handshakes_total", "Handshakes.", {{"result", "ok"}}).inc();
  r.gauge("idn_build_info", "Build.", {{"version", "0.1.0"}}).set(1);
  r.histogram("idn_ping_rtt_seconds", "RTT.", exponential_buckets(0.0001, 4, 8)).observe(0.002);
  std::string path = ::testing::TempDir() + "/metrics_test.prom";
  {
    std::ofstream f(path);
    f << r.render();
  }
  std::string cmd = "promtool check metrics < " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, p)) out += buf;
  int rc = pclose(p);
  EXPECT_EQ(rc, 0) << out << "\n---\n" << r.render();
  EXPECT_EQ(out, "") << out;
}

}  // namespace
}  // namespace idn::node
