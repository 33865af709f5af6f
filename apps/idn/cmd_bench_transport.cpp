// idn bench transport: request/response RTT (64 B, 3 KiB) and bulk throughput (1 MiB messages)
// on loopback through IDN's libp2p stack (Noise + yamux over TCP, and over WebSocket), against
// plain TCP sockets and against js-libp2p <-> js-libp2p (interop/bench_js.mjs), all in one run.
#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli.h"
#include "p2p/host.h"

// IDN_RETURN_IF_ERROR for coroutines (co_return instead of return).
#define BENCH_CO_RETURN_IF_ERROR(expr)           \
  do {                                           \
    ::idn::Status bench_st_ = (expr);            \
    if (!bench_st_.is_ok()) co_return bench_st_; \
  } while (0)

namespace idn::cli {
namespace {

namespace asio = boost::asio;
using p2p::awaitable;
using p2p::ByteStream;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kEchoProtocol = "/idn/bench/echo/1.0.0";
constexpr std::string_view kSinkProtocol = "/idn/bench/sink/1.0.0";
constexpr size_t kMiB = 1024 * 1024;
constexpr size_t kSmall = 64, kLarge = 3 * 1024;
// Row labels of IDN's own stack over each transport.
const std::string kIdnTcp = "IDN (Noise+yamux)", kIdnWs = "IDN over WebSocket";
// Every measured phase stops at this wall time even when its count is not reached, so a stalled
// transport cannot hang the benchmark.
constexpr auto kPhaseBudget = std::chrono::seconds(60);

struct Args {
  size_t iterations = 5000;
  size_t warmup = 500;
  size_t bulk_mib = 256;
  std::string out = "bench/out";
  bool no_js = false;
  std::string js_script = "interop/bench_js.mjs";
  int js_timeout_s = 180;
  int threads = 2;
};

struct Row {
  std::string transport, payload;
  std::optional<double> median_us, p99_us, p90_us;
  std::optional<double> mib_per_s;
  size_t n = 0;
  std::string note;
};

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// Server side, shared by IDN streams and plain TCP sockets so both do identical work.
awaitable<void> serve_echo(ByteStream& s) {
  std::vector<uint8_t> buf(64 * 1024);
  while (true) {
    auto n = co_await s.read_some(buf);
    if (!n.ok() || *n == 0) break;
    if (!(co_await s.write(ByteView(buf.data(), *n))).is_ok()) co_return;
  }
  (void)co_await s.close_write();
}

// Reads until EOF, then answers with the byte count (8 bytes, little endian).
awaitable<void> serve_sink(ByteStream& s) {
  std::vector<uint8_t> buf(256 * 1024);
  uint64_t total = 0;
  while (true) {
    auto n = co_await s.read_some(buf);
    if (!n.ok()) co_return;
    if (*n == 0) break;
    total += *n;
  }
  std::array<uint8_t, 8> ack{};
  for (int i = 0; i < 8; ++i) ack[i] = static_cast<uint8_t>(total >> (8 * i));
  if ((co_await s.write(ack)).is_ok()) (void)co_await s.close_write();
}

// Timed request/response rounds on one long-lived stream: write `bytes`, read them back.
awaitable<Result<std::vector<double>>> measure_rtt(ByteStream& s, size_t bytes, size_t warmup,
                                                   size_t iterations) {
  Bytes msg(bytes), back(bytes);
  for (size_t i = 0; i < bytes; ++i) msg[i] = static_cast<uint8_t>(i * 31 + 7);
  std::vector<double> samples;
  samples.reserve(iterations);
  auto deadline = Clock::now() + kPhaseBudget;
  for (size_t i = 0; i < warmup + iterations && Clock::now() < deadline; ++i) {
    msg[0] = static_cast<uint8_t>(i);
    auto t0 = Clock::now();
    BENCH_CO_RETURN_IF_ERROR(co_await s.write(msg));
    BENCH_CO_RETURN_IF_ERROR(co_await s.read_exact(back));
    double us = us_since(t0);
    if (back != msg) co_return Status::corruption("echo returned different bytes");
    if (i >= warmup) samples.push_back(us);
  }
  if (samples.empty()) co_return Status::timeout("no RTT sample within the phase budget");
  co_return samples;
}

// One-way bulk transfer of `mib` 1 MiB messages into a sink; returns MiB/s, timed until the
// sink confirms it has received every byte.
awaitable<Result<double>> measure_bulk(ByteStream& s, size_t mib) {
  Bytes chunk(kMiB);
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<uint8_t>(i * 13);
  auto deadline = Clock::now() + kPhaseBudget;
  auto t0 = Clock::now();
  size_t sent = 0;
  for (; sent < mib && Clock::now() < deadline; ++sent) {
    BENCH_CO_RETURN_IF_ERROR(co_await s.write(chunk));
  }
  BENCH_CO_RETURN_IF_ERROR(co_await s.close_write());
  std::array<uint8_t, 8> ack{};
  BENCH_CO_RETURN_IF_ERROR(co_await s.read_exact(ack));
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  uint64_t got = 0;
  for (int i = 0; i < 8; ++i) got |= static_cast<uint64_t>(ack[i]) << (8 * i);
  if (got != sent * kMiB)
    co_return Status::corruption("sink received " + std::to_string(got) + " of " +
                                 std::to_string(sent * kMiB) + " bytes");
  co_return static_cast<double>(sent) / seconds;
}

// Bulk echo: `mib` 1 MiB messages written while the echoed bytes are read back, the way
// bench_js.mjs measures js-libp2p; returns MiB/s counting each byte once.
awaitable<Result<double>> measure_bulk_echo(std::shared_ptr<ByteStream> s, size_t mib) {
  auto ex = co_await asio::this_coro::executor;
  auto write_status = std::make_shared<std::optional<Status>>();
  auto sent = std::make_shared<size_t>(0);
  auto deadline = Clock::now() + kPhaseBudget;
  auto t0 = Clock::now();
  asio::co_spawn(
      ex,
      [s, mib, deadline, write_status, sent]() -> awaitable<void> {
        Bytes chunk(kMiB);
        for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<uint8_t>(i * 11);
        Status st = Status::ok();
        for (; *sent < mib && Clock::now() < deadline && st.is_ok(); ++*sent)
          st = co_await s->write(chunk);
        if (st.is_ok()) st = co_await s->close_write();
        *write_status = st;
      },
      asio::detached);
  std::vector<uint8_t> buf(256 * 1024);
  uint64_t got = 0;
  while (true) {
    auto n = co_await s->read_some(buf);
    if (!n.ok()) co_return n.status().with_context("reading the echo");
    if (*n == 0) break;
    got += *n;
  }
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  // The echo side closes only after our close_write, so the writer has finished by now.
  if (!write_status->has_value())
    co_return Status::internal("echo ended before the writer finished");
  if (!(*write_status)->is_ok()) co_return **write_status;
  if (got != *sent * kMiB)
    co_return Status::corruption("echoed " + std::to_string(got) + " of " +
                                 std::to_string(*sent * kMiB) + " bytes");
  co_return static_cast<double>(*sent) / seconds;
}

Row rtt_row(std::string transport, size_t bytes, const std::vector<double>& v) {
  Row r{std::move(transport), bytes == kSmall ? "64 B" : "3 KiB"};
  r.median_us = percentile(v, 0.5);
  r.p90_us = percentile(v, 0.9);
  r.p99_us = percentile(v, 0.99);
  r.n = v.size();
  return r;
}

Row bulk_row(std::string transport, size_t mib, double mib_per_s, bool echo) {
  Row r{std::move(transport), "1 MiB x " + std::to_string(mib) + (echo ? " (echo)" : " (one way)")};
  r.mib_per_s = mib_per_s;
  r.n = mib;
  return r;
}

struct Results {
  std::vector<Row> rows;
  Status status;
};

// Plain TCP: a listener on 127.0.0.1 whose connections say with their first byte whether they
// want echo ('e') or sink ('s').
awaitable<void> tcp_accept_loop(std::shared_ptr<asio::ip::tcp::acceptor> acc, size_t max_conns) {
  for (size_t i = 0; i < max_conns; ++i) {
    boost::system::error_code ec;
    auto sock = co_await acc->async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    sock.set_option(asio::ip::tcp::no_delay(true), ec);
    asio::co_spawn(
        acc->get_executor(),
        [s = std::make_shared<p2p::TcpStream>(std::move(sock))]() -> awaitable<void> {
          std::array<uint8_t, 1> mode{};
          if (!(co_await s->read_exact(mode)).is_ok()) co_return;
          if (mode[0] == 'e') co_await serve_echo(*s);
          if (mode[0] == 's') co_await serve_sink(*s);
        },
        asio::detached);
  }
}

awaitable<Result<std::shared_ptr<p2p::TcpStream>>> tcp_connect(asio::ip::tcp::endpoint ep,
                                                               char mode) {
  asio::ip::tcp::socket sock(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  co_await sock.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
  if (ec)
    co_return Status::io_error("plain TCP connect to " + ep.address().to_string() + ": " +
                               ec.message());
  sock.set_option(asio::ip::tcp::no_delay(true), ec);
  auto s = std::make_shared<p2p::TcpStream>(std::move(sock));
  uint8_t m = static_cast<uint8_t>(mode);
  BENCH_CO_RETURN_IF_ERROR(co_await s->write(ByteView(&m, 1)));
  co_return s;
}

// The server side of every measurement runs on its own io_context and thread, as a peer in
// another process would: the client's thread encrypts and writes while the server's decrypts
// and reads. IDN and plain TCP get the same arrangement, so their ratio stays fair.
// With --threads 1 the server shares the client's io_context (the old arrangement: one core
// does everything) and call() runs inline.
class ServerThread {
 public:
  explicit ServerThread(std::optional<asio::any_io_executor> shared = std::nullopt)
      : shared_(std::move(shared)), work_(asio::make_work_guard(ioc_)) {
    if (!shared_) thread_ = std::thread([this] { ioc_.run(); });
  }
  ~ServerThread() {
    work_.reset();
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;

  asio::any_io_executor executor() { return shared_ ? *shared_ : ioc_.get_executor(); }
  // Runs `f` on the server thread and waits for its result. Blocks the calling thread: only
  // for setup and teardown, never inside a timed phase.
  template <class F>
  auto call(F f) -> decltype(f()) {
    if (shared_) return f();
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(ioc_, [&task] { task(); });
    return result.get();
  }

 private:
  std::optional<asio::any_io_executor> shared_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

// IDN: the client host on this io_context, the server host (listening on `listen`) on the
// server thread's; one long-lived echo stream and one sink stream. Rows are labelled `label`.
awaitable<Status> run_idn(const Args& a, Results& res, ServerThread& srv, const char* listen,
                          const std::string& label) {
  auto ex = co_await asio::this_coro::executor;
  auto ka = identity::KeyPair::generate();
  auto kb = identity::KeyPair::generate();
  if (!ka.ok()) co_return ka.status();
  if (!kb.ok()) co_return kb.status();
  std::unique_ptr<p2p::Host> server;
  auto listened = srv.call([&]() -> Result<std::vector<core::Multiaddr>> {
    server = std::make_unique<p2p::Host>(srv.executor(), std::move(*ka));
    server->set_handler(
        std::string(kEchoProtocol),
        [](std::shared_ptr<p2p::Stream> s) -> awaitable<void> { co_await serve_echo(*s); });
    server->set_handler(
        std::string(kSinkProtocol),
        [](std::shared_ptr<p2p::Stream> s) -> awaitable<void> { co_await serve_sink(*s); });
    auto bound = server->listen(*core::Multiaddr::parse(listen));
    if (!bound.ok()) return bound.status();
    return server->listen_addrs();
  });
  auto client = std::make_unique<p2p::Host>(ex, std::move(*kb));
  Status st = co_await [&]() -> awaitable<Status> {
    if (!listened.ok()) co_return listened.status();
    auto peer = co_await client->dial(listened->at(0));
    if (!peer.ok()) co_return peer.status().with_context("dialling the bench server");
    auto echo = co_await client->new_stream(*peer, std::string(kEchoProtocol));
    if (!echo.ok()) co_return echo.status().with_context("opening the echo stream");
    for (size_t bytes : {kSmall, kLarge}) {
      auto v = co_await measure_rtt(**echo, bytes, a.warmup, a.iterations);
      if (!v.ok()) co_return v.status().with_context(label + " RTT");
      res.rows.push_back(rtt_row(label, bytes, *v));
    }
    (void)co_await (*echo)->close_write();
    auto sink = co_await client->new_stream(*peer, std::string(kSinkProtocol));
    if (!sink.ok()) co_return sink.status().with_context("opening the sink stream");
    auto mibs = co_await measure_bulk(**sink, a.bulk_mib);
    if (!mibs.ok()) co_return mibs.status().with_context(label + " bulk");
    res.rows.push_back(bulk_row(label, a.bulk_mib, *mibs, false));
    auto echo2 = co_await client->new_stream(*peer, std::string(kEchoProtocol));
    if (!echo2.ok()) co_return echo2.status().with_context("opening the bulk echo stream");
    auto emibs = co_await measure_bulk_echo(*echo2, a.bulk_mib);
    if (!emibs.ok()) co_return emibs.status().with_context(label + " bulk echo");
    res.rows.push_back(bulk_row(label, a.bulk_mib, *emibs, true));
    co_return Status::ok();
  }();
  client->stop();
  // The server host lives on the server thread: stop and destroy it there (as a host on one
  // thread is), so none of its handlers can run concurrently with its destructor.
  srv.call([&] {
    if (server) server->stop();
    server.reset();
  });
  co_return st;
}

awaitable<Status> run_native(const Args& a, Results& res, ServerThread& srv) {
  Status st = co_await run_idn(a, res, srv, "/ip4/127.0.0.1/tcp/0", kIdnTcp);
  if (!st.is_ok()) co_return st;
  st = co_await run_idn(a, res, srv, "/ip4/127.0.0.1/tcp/0/ws", kIdnWs);
  if (!st.is_ok()) co_return st;

  // Plain TCP: the listener and its echo / sink servers on the server thread, the client here.
  auto acc = srv.call([&] {
    auto acceptor = std::make_shared<asio::ip::tcp::acceptor>(
        srv.executor(), asio::ip::tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0});
    asio::co_spawn(srv.executor(), tcp_accept_loop(acceptor, 3), asio::detached);
    return acceptor;
  });
  auto ep = srv.call([&] { return acc->local_endpoint(); });
  st = co_await [&]() -> awaitable<Status> {
    auto echo = co_await tcp_connect(ep, 'e');
    if (!echo.ok()) co_return echo.status();
    for (size_t bytes : {kSmall, kLarge}) {
      auto v = co_await measure_rtt(**echo, bytes, a.warmup, a.iterations);
      if (!v.ok()) co_return v.status().with_context("plain TCP RTT");
      res.rows.push_back(rtt_row("plain TCP", bytes, *v));
    }
    (void)co_await (*echo)->close_write();
    auto sink = co_await tcp_connect(ep, 's');
    if (!sink.ok()) co_return sink.status();
    auto mibs = co_await measure_bulk(**sink, a.bulk_mib);
    if (!mibs.ok()) co_return mibs.status().with_context("plain TCP bulk");
    res.rows.push_back(bulk_row("plain TCP", a.bulk_mib, *mibs, false));
    auto echo2 = co_await tcp_connect(ep, 'e');
    if (!echo2.ok()) co_return echo2.status();
    auto emibs = co_await measure_bulk_echo(*echo2, a.bulk_mib);
    if (!emibs.ok()) co_return emibs.status().with_context("plain TCP bulk echo");
    res.rows.push_back(bulk_row("plain TCP", a.bulk_mib, *emibs, true));
    co_return Status::ok();
  }();
  // The acceptor belongs to the server thread: close and release it there.
  srv.call([&] {
    boost::system::error_code ec;
    acc->close(ec);
    acc.reset();
  });
  co_return st;
}

// The number after "key": inside the JSON object that follows "section":, from bench_js.mjs's
// one-line output (a flat, known shape; no general JSON parser needed).
std::optional<double> json_number(const std::string& text, const std::string& section,
                                  const std::string& key) {
  size_t p = text.find("\"" + section + "\"");
  if (p == std::string::npos) return std::nullopt;
  size_t end = text.find('}', p);
  size_t k = text.find("\"" + key + "\":", p);
  if (k == std::string::npos || k > end) return std::nullopt;
  try {
    return std::stod(text.substr(k + key.size() + 3));
  } catch (...) {
    return std::nullopt;
  }
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs bench_js.mjs once; returns its stdout's JSON line or an error.
Result<std::string> run_js(const Args& a, size_t rr_bytes, size_t mib) {
  std::string cmd = "timeout " + std::to_string(a.js_timeout_s) + " node " +
                    shell_quote(a.js_script) + " --rr-count " +
                    std::to_string(std::min<size_t>(a.iterations, 5000)) + " --rr-bytes " +
                    std::to_string(rr_bytes) + " --mib " + std::to_string(mib) + " --pings 5";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return Status::io_error("cannot start node: " + std::string(std::strerror(errno)));
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  if (rc != 0 || out.find("\"rr_us\"") == std::string::npos)
    return Status::io_error("`" + cmd + "` failed (exit " + std::to_string(rc) + "): " + out);
  return out;
}

void add_js_rows(const Args& a, Results& res, std::string& js_note) {
  namespace fs = std::filesystem;
  if (a.no_js) {
    js_note = "skipped (--no-js)";
    return;
  }
  fs::path script(a.js_script);
  if (!fs::exists(script) || !fs::exists(script.parent_path() / "node_modules") ||
      std::system("command -v node >/dev/null 2>&1") != 0) {
    js_note = "skipped (needs node and " + (script.parent_path() / "node_modules").string() +
              "; run scripts/setup, from the repository root)";
    return;
  }
  for (size_t bytes : {kSmall, kLarge}) {
    // The 3 KiB run also carries the bulk transfer; the 64 B run moves only 1 MiB.
    size_t mib = bytes == kLarge ? a.bulk_mib : 1;
    auto out = run_js(a, bytes, mib);
    if (!out.ok()) {
      js_note = "failed: " + out.status().to_string();
      return;
    }
    Row r{"js-libp2p <-> js-libp2p", bytes == kSmall ? "64 B" : "3 KiB"};
    r.median_us = json_number(*out, "rr_us", "median");
    r.p90_us = json_number(*out, "rr_us", "p90");
    auto n = json_number(*out, "rr_us", "n");
    r.n = n ? static_cast<size_t>(*n) : 0;
    r.note = "p99 not reported by bench_js.mjs; p90 shown";
    res.rows.push_back(r);
    if (bytes == kLarge) {
      auto t = json_number(*out, "throughput", "mib_per_s");
      Row b{"js-libp2p <-> js-libp2p", "64 KiB writes x " + std::to_string(mib) + " MiB (echo)"};
      b.mib_per_s = t;
      b.n = mib;
      b.note = "echo: bytes go both ways; MiB/s counts them once";
      res.rows.push_back(b);
    }
  }
  js_note = "ran " + a.js_script;
}

std::string fmt(std::optional<double> v, const char* f) {
  if (!v) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, *v);
  return buf;
}

const Row* find(const Results& r, const std::string& transport, const std::string& payload) {
  for (const auto& row : r.rows)
    if (row.transport == transport && row.payload.rfind(payload, 0) == 0) return &row;
  return nullptr;
}

std::optional<double> ratio(const Row* a, const Row* b, bool rtt) {
  if (!a || !b) return std::nullopt;
  auto x = rtt ? a->median_us : a->mib_per_s;
  auto y = rtt ? b->median_us : b->mib_per_s;
  if (!x || !y || *y == 0) return std::nullopt;
  return *x / *y;
}

std::string render_markdown(const Args& a, const Results& res, const std::string& js_note) {
  std::ostringstream md;
  md << "| transport | payload | n | median us | p99 us | throughput |\n";
  md << "|---|---|---|---|---|---|\n";
  for (const auto& r : res.rows) {
    std::string p99 = fmt(r.p99_us, "%.1f");
    if (!r.p99_us && r.p90_us) p99 = "n/a (p90 " + fmt(r.p90_us, "%.1f") + ")";
    std::string tp = r.mib_per_s ? fmt(r.mib_per_s, "%.0f MiB/s") + " (" +
                                       fmt(*r.mib_per_s / 1024.0, "%.2f GiB/s") + ")"
                                 : "-";
    md << "| " << r.transport << " | " << r.payload << " | " << r.n << " | "
       << fmt(r.median_us, "%.1f") << " | " << p99 << " | " << tp << " |\n";
  }
  const std::string idn = kIdnTcp, ws = kIdnWs, tcp = "plain TCP", js = "js-libp2p <-> js-libp2p";
  auto r64 = ratio(find(res, idn, "64 B"), find(res, tcp, "64 B"), true);
  auto r3k = ratio(find(res, idn, "3 KiB"), find(res, tcp, "3 KiB"), true);
  auto rtp = ratio(find(res, idn, "1 MiB x " + std::to_string(a.bulk_mib) + " (one way)"),
                   find(res, tcp, "1 MiB x " + std::to_string(a.bulk_mib) + " (one way)"), false);
  auto j64 = ratio(find(res, js, "64 B"), find(res, idn, "64 B"), true);
  auto j3k = ratio(find(res, js, "3 KiB"), find(res, idn, "3 KiB"), true);
  auto jtp = ratio(find(res, idn, "1 MiB x " + std::to_string(a.bulk_mib) + " (echo)"),
                   find(res, js, "64 KiB"), false);
  md << "\nRatios:\n\n";
  md << "- IDN / plain TCP median RTT, 64 B: " << fmt(r64, "%.2fx")
     << " (target <= 2x); 3 KiB: " << fmt(r3k, "%.2fx") << "\n";
  md << "- IDN / plain TCP one-way throughput: " << fmt(rtp, "%.2f") << "\n";
  const std::string one_way = "1 MiB x " + std::to_string(a.bulk_mib) + " (one way)";
  md << "- IDN over WebSocket / over TCP median RTT, 64 B: "
     << fmt(ratio(find(res, ws, "64 B"), find(res, idn, "64 B"), true), "%.2fx")
     << "; one-way throughput: "
     << fmt(ratio(find(res, ws, one_way), find(res, idn, one_way), false), "%.2f") << "\n";
  md << "- js-libp2p / IDN median RTT (how many times faster IDN is), 64 B: " << fmt(j64, "%.1fx")
     << "; 3 KiB: " << fmt(j3k, "%.1fx") << "\n";
  md << "- IDN / js-libp2p echo throughput: " << fmt(jtp, "%.1fx") << "\n";
  md << "\njs-libp2p: " << js_note << "\n";
  md << "\nSettings: " << a.iterations << " timed round trips per payload after " << a.warmup
     << " warm-up, " << a.bulk_mib << " MiB bulk; everything on 127.0.0.1. "
     << (a.threads == 2 ? "Client and server run on two io_context threads (as two peers in two "
                          "processes would), for IDN and plain TCP alike.\n"
                        : "Client and server share one io_context thread (--threads 1), for IDN "
                          "and plain TCP alike.\n");
  return md.str();
}

int run_bench_transport(const Args& a) {
  if (a.iterations < 1 || a.iterations > 10'000'000)
    return report(Status::invalid_argument("--iterations must be 1..10000000"));
  if (a.bulk_mib < 1 || a.bulk_mib > 64 * 1024)
    return report(Status::invalid_argument("--bulk-mib must be 1..65536"));
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(a.out, ec);
  if (ec) return report(Status::io_error("cannot create " + a.out + ": " + ec.message()));

  Results res;
  {
    asio::io_context ioc;
    ServerThread srv(a.threads == 1 ? std::optional<asio::any_io_executor>(ioc.get_executor())
                                    : std::nullopt);
    std::optional<Status> done;
    asio::co_spawn(
        ioc,
        [&]() -> awaitable<void> {
          try {
            done = co_await run_native(a, res, srv);
          } catch (const std::exception& e) {
            done = Status::internal(std::string("benchmark coroutine threw: ") + e.what());
          }
          ioc.stop();
        },
        asio::detached);
    // Four phases of at most kPhaseBudget each, plus setup.
    ioc.run_for(kPhaseBudget * 6 + std::chrono::seconds(30));
    if (!done) return report(Status::timeout("transport benchmark did not finish in time"));
    if (!done->is_ok()) return report(*done);
  }
  std::string js_note;
  add_js_rows(a, res, js_note);

  std::string md = render_markdown(a, res, js_note);
  std::printf("Transport benchmark on 127.0.0.1\n\n%s", md.c_str());

  fs::path dir(a.out);
  std::ofstream csv(dir / "transport.csv");
  std::ofstream mdf(dir / "transport.md");
  if (!csv || !mdf) return report(Status::io_error("cannot write into " + a.out));
  csv << "transport,payload,n,median_us,p90_us,p99_us,mib_per_s,note\n";
  for (const auto& r : res.rows)
    csv << r.transport << ',' << r.payload << ',' << r.n << ',' << fmt(r.median_us, "%.2f") << ','
        << fmt(r.p90_us, "%.2f") << ',' << fmt(r.p99_us, "%.2f") << ',' << fmt(r.mib_per_s, "%.1f")
        << ',' << r.note << '\n';
  mdf << "# idn bench transport\n\n" << md;
  std::printf("\nwrote %s and %s\n", (dir / "transport.csv").string().c_str(),
              (dir / "transport.md").string().c_str());
  return 0;
}

}  // namespace

void register_bench_transport(CLI::App& bench) {
  auto a = std::make_shared<Args>();
  auto* b = bench.add_subcommand(
      "transport",
      "Loopback RTT (64 B, 3 KiB) and 1 MiB bulk throughput: IDN's libp2p stack vs plain TCP "
      "vs js-libp2p");
  b->add_option("--iterations", a->iterations, "Timed round trips per payload size");
  b->add_option("--warmup", a->warmup, "Untimed round trips before timing");
  b->add_option("--bulk-mib", a->bulk_mib, "MiB sent in 1 MiB messages for throughput");
  b->add_option("--out", a->out, "Directory for transport.csv and transport.md");
  b->add_option("--threads", a->threads,
                "1: client and server share one io_context thread; 2: one thread each, as two "
                "peers in two processes")
      ->check(CLI::Range(1, 2));
  b->add_flag("--no-js", a->no_js, "Skip the js-libp2p <-> js-libp2p baseline");
  b->add_option("--js-script", a->js_script, "Path to interop/bench_js.mjs");
  b->add_option("--js-timeout", a->js_timeout_s, "Seconds before a js-libp2p run is killed")
      ->check(CLI::Range(1, 3600));
  b->callback([a] { run_or_exit(run_bench_transport(*a)); });
}

}  // namespace idn::cli
