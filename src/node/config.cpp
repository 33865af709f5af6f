#include "node/config.h"

// Only this file includes toml++; without exceptions, parse() returns a result to inspect.
#define TOML_EXCEPTIONS 0
#include <fmt/format.h>

#include <toml++/toml.h>
#include <charconv>
#include <fstream>
#include <sstream>

#include <span>

#include "identity/peer_id.h"

namespace idn::node {
namespace {

constexpr std::string_view kTopKeys[] = {
    "listen", "identity",     "passphrase_file",       "bootstrap", "http",  "log_level",
    "limits", "data_dir",     "store_max_bytes",       "host",      "dht",   "serve",
    "swap",   "busy_poll_us", "poll_while_waiting_us", "ise",       "relay", "engine"};
constexpr std::string_view kRelayKeys[] = {
    "enabled",           "max_reservations",   "max_circuits",      "max_circuits_per_peer",
    "reservation_ttl_s", "circuit_duration_s", "circuit_data_bytes"};
constexpr std::string_view kIseKeys[] = {
    "auto_host",   "k",           "memory_budget_mb", "min_service_period_s",
    "need_idle_s", "keep_factor", "per_provider",     "max_need_count"};
constexpr std::string_view kDhtKeys[] = {"enabled", "port",         "bootstrap",
                                         "lan",     "record_ttl_s", "withdraw_on_stop"};
constexpr std::string_view kSwapKeys[] = {"enabled",
                                          "m",
                                          "n",
                                          "grace_ops",
                                          "ignore_period_s",
                                          "idle_close_s",
                                          "receipt_timeout_ms",
                                          "checkpoint_every",
                                          "close_checkpoint_min",
                                          "commit_interval_ms",
                                          "challenge_rate",
                                          "probation_challenges",
                                          "on_challenge_failure",
                                          "on_ledger_mismatch",
                                          "trusted",
                                          "blacklist"};
constexpr std::string_view kEngineKeys[] = {"backend"};
constexpr std::string_view kServeKeys[] = {"workers", "max_queue", "max_batch", "inline_below_us"};
constexpr std::string_view kLimitKeys[] = {"max_connections",
                                           "max_streams_per_connection",
                                           "handshake_timeout_ms",
                                           "max_pending_handshakes",
                                           "max_pending_handshakes_per_address",
                                           "handshake_evictable_after_ms",
                                           "handshake_silent_evictable_after_ms",
                                           "idle_timeout_ms",
                                           "dial_timeout_ms",
                                           "max_message_bytes"};

std::string join(std::span<const std::string_view> names) {
  std::string out;
  for (auto n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

class Parser {
 public:
  Parser(std::string_view source, std::filesystem::path base_dir)
      : source_(source), base_dir_(std::move(base_dir)) {}

  Status error(const toml::source_region& where, std::string_view msg) const {
    if (where.begin.line == 0) return Status::invalid_argument(fmt::format("{}: {}", source_, msg));
    return Status::invalid_argument(
        fmt::format("{}:{}:{}: {}", source_, where.begin.line, where.begin.column, msg));
  }

  Result<std::string> string(const toml::node& n, std::string_view key) const {
    if (auto s = n.value<std::string>(); s && n.is_string()) return *s;
    return error(n.source(), fmt::format("{} must be a string", key));
  }

  Result<std::vector<std::string>> string_array(const toml::node& n, std::string_view key) const {
    const toml::array* arr = n.as_array();
    if (!arr) return error(n.source(), fmt::format("{} must be an array of strings", key));
    std::vector<std::string> out;
    for (const toml::node& el : *arr) {
      if (!el.is_string()) {
        return error(el.source(), fmt::format("{} must be an array of strings", key));
      }
      out.push_back(*el.value<std::string>());
    }
    return out;
  }

  Result<uint64_t> positive(const toml::node& n, std::string_view key, uint64_t max) const {
    return in_range(n, key, 1, max);
  }

  Result<uint64_t> in_range(const toml::node& n, std::string_view key, uint64_t min,
                            uint64_t max) const {
    if (!n.is_integer()) return error(n.source(), fmt::format("{} must be an integer", key));
    int64_t v = *n.value<int64_t>();
    if (v < 0 || static_cast<uint64_t>(v) < min || static_cast<uint64_t>(v) > max) {
      return error(n.source(), fmt::format("{} = {} is out of range ({}..{})", key, v, min, max));
    }
    return static_cast<uint64_t>(v);
  }

  Status limits(const toml::table& t, LimitsConfig& out) const {
    // Bounds keep values meaningful: a zero limit would stop the node, and a day-long
    // handshake timeout is a typo, not a configuration.
    constexpr uint64_t kMaxCount = 1'000'000;
    constexpr uint64_t kMaxMs = 24ull * 3600 * 1000;
    constexpr uint64_t kMaxBytes = 1ull << 30;
    for (auto&& [k, v] : t) {
      std::string_view key = k.str();
      auto ms = [&](std::optional<std::chrono::milliseconds>& field) -> Status {
        IDN_ASSIGN_OR_RETURN(uint64_t x, positive(v, key, kMaxMs));
        field = std::chrono::milliseconds(x);
        return Status::ok();
      };
      if (key == "max_connections") {
        IDN_ASSIGN_OR_RETURN(out.max_connections, positive(v, key, kMaxCount));
      } else if (key == "max_streams_per_connection") {
        IDN_ASSIGN_OR_RETURN(out.max_streams_per_connection, positive(v, key, kMaxCount));
      } else if (key == "handshake_timeout_ms") {
        IDN_RETURN_IF_ERROR(ms(out.handshake_timeout));
      } else if (key == "max_pending_handshakes") {
        IDN_ASSIGN_OR_RETURN(out.max_pending_handshakes, positive(v, key, kMaxCount));
      } else if (key == "max_pending_handshakes_per_address") {
        IDN_ASSIGN_OR_RETURN(out.max_pending_handshakes_per_address, positive(v, key, kMaxCount));
      } else if (key == "handshake_evictable_after_ms") {
        IDN_RETURN_IF_ERROR(ms(out.handshake_evictable_after));
      } else if (key == "handshake_silent_evictable_after_ms") {
        IDN_RETURN_IF_ERROR(ms(out.handshake_silent_evictable_after));
      } else if (key == "idle_timeout_ms") {
        IDN_RETURN_IF_ERROR(ms(out.idle_timeout));
      } else if (key == "dial_timeout_ms") {
        IDN_RETURN_IF_ERROR(ms(out.dial_timeout));
      } else if (key == "max_message_bytes") {
        IDN_ASSIGN_OR_RETURN(out.max_message_bytes, positive(v, key, kMaxBytes));
      } else {
        return error(k.source(),
                     fmt::format("unknown key 'limits.{}' (known: {})", key, join(kLimitKeys)));
      }
    }
    return Status::ok();
  }

  Result<bool> boolean(const toml::node& n, std::string_view key) const {
    if (!n.is_boolean()) return error(n.source(), fmt::format("{} must be true or false", key));
    return *n.value<bool>();
  }

  Status dht(const toml::table& t, DhtConfig& out) const {
    for (auto&& [k, v] : t) {
      std::string_view key = k.str();
      if (key == "enabled") {
        IDN_ASSIGN_OR_RETURN(out.enabled, boolean(v, "dht.enabled"));
      } else if (key == "port") {
        if (!v.is_integer() || *v.value<int64_t>() < 0 || *v.value<int64_t>() > 65535)
          return error(v.source(), "dht.port must be an integer 0..65535");
        out.port = static_cast<uint16_t>(*v.value<int64_t>());
      } else if (key == "bootstrap") {
        IDN_ASSIGN_OR_RETURN(out.bootstrap, string_array(v, "dht.bootstrap"));
        for (const auto& hp : out.bootstrap) {
          if (hp.rfind(':') == std::string::npos || hp.rfind(':') + 1 == hp.size())
            return error(v.source(), fmt::format("dht.bootstrap: '{}' is not HOST:PORT", hp));
        }
      } else if (key == "lan") {
        IDN_ASSIGN_OR_RETURN(out.lan, boolean(v, "dht.lan"));
      } else if (key == "record_ttl_s") {
        IDN_ASSIGN_OR_RETURN(uint64_t s, positive(v, "dht.record_ttl_s", 7 * 24 * 3600));
        out.record_ttl = std::chrono::seconds(s);
      } else if (key == "withdraw_on_stop") {
        IDN_ASSIGN_OR_RETURN(out.withdraw_on_stop, boolean(v, "dht.withdraw_on_stop"));
      } else {
        return error(k.source(),
                     fmt::format("unknown key 'dht.{}' (known: {})", key, join(kDhtKeys)));
      }
    }
    return Status::ok();
  }

  Status relay(const toml::table& t, RelayNodeConfig& out) const {
    for (auto&& [k, v] : t) {
      std::string_view key = k.str();
      if (key == "enabled") {
        IDN_ASSIGN_OR_RETURN(out.enabled, boolean(v, "relay.enabled"));
      } else if (key == "max_reservations") {
        IDN_ASSIGN_OR_RETURN(out.max_reservations,
                             in_range(v, "relay.max_reservations", 0, 1 << 20));
      } else if (key == "max_circuits") {
        IDN_ASSIGN_OR_RETURN(out.max_circuits, in_range(v, "relay.max_circuits", 0, 1 << 20));
      } else if (key == "max_circuits_per_peer") {
        IDN_ASSIGN_OR_RETURN(out.max_circuits_per_peer,
                             in_range(v, "relay.max_circuits_per_peer", 0, 1 << 20));
      } else if (key == "reservation_ttl_s") {
        IDN_ASSIGN_OR_RETURN(uint64_t s, positive(v, "relay.reservation_ttl_s", 7 * 24 * 3600));
        out.reservation_ttl = std::chrono::seconds(s);
      } else if (key == "circuit_duration_s") {
        IDN_ASSIGN_OR_RETURN(uint64_t s, in_range(v, "relay.circuit_duration_s", 0, 7 * 24 * 3600));
        out.circuit_duration = std::chrono::seconds(s);
      } else if (key == "circuit_data_bytes") {
        IDN_ASSIGN_OR_RETURN(out.circuit_data,
                             in_range(v, "relay.circuit_data_bytes", 0, uint64_t{1} << 50));
      } else {
        return error(k.source(),
                     fmt::format("unknown key 'relay.{}' (known: {})", key, join(kRelayKeys)));
      }
    }
    return Status::ok();
  }

  Status ise(const toml::table& t, IseConfig& out) const {
    for (auto&& [k, v] : t) {
      std::string_view key = k.str();
      if (key == "auto_host") {
        IDN_ASSIGN_OR_RETURN(out.auto_host, boolean(v, "ise.auto_host"));
      } else if (key == "k") {
        IDN_ASSIGN_OR_RETURN(out.k, in_range(v, "ise.k", 0, 4096));
      } else if (key == "memory_budget_mb") {
        // 16 TiB: ise::kMaxCostBytes, more than any machine holds.
        IDN_ASSIGN_OR_RETURN(out.memory_budget_mb, in_range(v, "ise.memory_budget_mb", 0, 1 << 24));
      } else if (key == "min_service_period_s") {
        IDN_ASSIGN_OR_RETURN(auto s, in_range(v, "ise.min_service_period_s", 0, 30 * 24 * 3600));
        out.min_service_period = std::chrono::seconds(s);
      } else if (key == "need_idle_s") {
        IDN_ASSIGN_OR_RETURN(auto s, positive(v, "ise.need_idle_s", 30 * 24 * 3600));
        out.need_idle = std::chrono::seconds(s);
      } else if (key == "keep_factor") {
        IDN_ASSIGN_OR_RETURN(out.keep_factor, number(v, "ise.keep_factor"));
        if (!(out.keep_factor >= 1.0 && out.keep_factor <= 100.0))
          return error(v.source(), "ise.keep_factor must be in [1, 100]");
      } else if (key == "per_provider") {
        IDN_ASSIGN_OR_RETURN(out.per_provider, boolean(v, "ise.per_provider"));
      } else if (key == "max_need_count") {
        IDN_ASSIGN_OR_RETURN(out.max_need_count, in_range(v, "ise.max_need_count", 1, 1 << 20));
      } else {
        return error(k.source(),
                     fmt::format("unknown key 'ise.{}' (known: {})", key, join(kIseKeys)));
      }
    }
    return Status::ok();
  }

  Status engine(const toml::table& t, EngineNodeConfig& out) const {
    for (auto&& [k, v] : t) {
      std::string_view key = k.str();
      if (key != "backend")
        return error(k.source(),
                     fmt::format("unknown key 'engine.{}' (known: {})", key, join(kEngineKeys)));
      auto name = v.value<std::string>();
      if (!name || (*name != "auto" && *name != "torch" && *name != "cpu"))
        return error(v.source(), "engine.backend must be \"auto\", \"torch\" or \"cpu\"");
      out.backend = *name;
    }
    return Status::ok();
  }

  Status serve(const toml::table& t, ServeConfig& out) const {
    for (auto&& [k, v] : t) {
      std::string_view key = k.str();
      if (key == "workers") {
        IDN_ASSIGN_OR_RETURN(out.workers, positive(v, "serve.workers", 256));
      } else if (key == "max_queue") {
        IDN_ASSIGN_OR_RETURN(out.max_queue, positive(v, "serve.max_queue", 1'000'000));
      } else if (key == "max_batch") {
        IDN_ASSIGN_OR_RETURN(out.max_batch, positive(v, "serve.max_batch", 4096));
      } else if (key == "inline_below_us") {
        IDN_ASSIGN_OR_RETURN(auto us, in_range(v, "serve.inline_below_us", 0, 1'000'000));
        out.inline_below = std::chrono::microseconds(us);
      } else {
        return error(k.source(),
                     fmt::format("unknown key 'serve.{}' (known: {})", key, join(kServeKeys)));
      }
    }
    return Status::ok();
  }

  Result<double> number(const toml::node& n, std::string_view key) const {
    if (n.is_integer()) return static_cast<double>(*n.value<int64_t>());
    if (n.is_floating_point()) return *n.value<double>();
    return error(n.source(), fmt::format("{} must be a number", key));
  }

  Result<std::vector<Bytes>> peer_list(const toml::node& n, std::string_view key) const {
    IDN_ASSIGN_OR_RETURN(auto texts, string_array(n, key));
    std::vector<Bytes> out;
    for (const auto& t : texts) {
      auto id = identity::PeerId::parse(t);
      if (!id.ok())
        return error(n.source(),
                     fmt::format("{}: '{}' is not a peer ID: {}", key, t, id.status().message()));
      out.push_back(id->bytes());
    }
    return out;
  }

  Status swap(const toml::table& t, SwapNodeConfig& out) const {
    swap::Config& c = out.params;
    for (auto&& [k, v] : t) {
      std::string_view key = k.str();
      std::string full = "swap." + std::string(key);
      if (key == "enabled") {
        IDN_ASSIGN_OR_RETURN(out.enabled, boolean(v, full));
      } else if (key == "m") {
        IDN_ASSIGN_OR_RETURN(c.m, number(v, full));
      } else if (key == "n") {
        IDN_ASSIGN_OR_RETURN(c.n, number(v, full));
      } else if (key == "grace_ops") {
        IDN_ASSIGN_OR_RETURN(c.grace_ops, in_range(v, full, 1, uint64_t{1} << 62));
      } else if (key == "ignore_period_s") {
        IDN_ASSIGN_OR_RETURN(auto x, in_range(v, full, 0, 7 * 24 * 3600));
        c.ignore_period_s = static_cast<uint32_t>(x);
      } else if (key == "idle_close_s") {
        IDN_ASSIGN_OR_RETURN(auto x, positive(v, full, 7 * 24 * 3600));
        c.idle_close_s = static_cast<uint32_t>(x);
      } else if (key == "receipt_timeout_ms") {
        IDN_ASSIGN_OR_RETURN(auto x, positive(v, full, 24 * 3600 * 1000));
        c.receipt_timeout_ms = static_cast<uint32_t>(x);
      } else if (key == "checkpoint_every") {
        IDN_ASSIGN_OR_RETURN(auto x, positive(v, full, swap::kMaxCheckpointEvery));
        c.checkpoint_every = static_cast<uint32_t>(x);
      } else if (key == "close_checkpoint_min") {
        IDN_ASSIGN_OR_RETURN(auto x, in_range(v, full, 0, swap::kMaxCheckpointEvery));
        c.close_checkpoint_min = static_cast<uint32_t>(x);
      } else if (key == "commit_interval_ms") {
        IDN_ASSIGN_OR_RETURN(auto x, in_range(v, full, 0, 60'000));
        c.commit_interval_ms = static_cast<uint32_t>(x);
      } else if (key == "challenge_rate") {
        IDN_ASSIGN_OR_RETURN(c.challenge_rate, number(v, full));
      } else if (key == "probation_challenges") {
        IDN_ASSIGN_OR_RETURN(auto x, in_range(v, full, 0, 1000));
        c.probation_challenges = static_cast<uint32_t>(x);
      } else if (key == "on_challenge_failure") {
        IDN_ASSIGN_OR_RETURN(auto text, string(v, full));
        auto p = swap::parse_challenge_failure(text);
        if (!p.ok()) return error(v.source(), p.status().message());
        c.on_challenge_failure = *p;
      } else if (key == "on_ledger_mismatch") {
        IDN_ASSIGN_OR_RETURN(auto text, string(v, full));
        auto p = swap::parse_mismatch_policy(text);
        if (!p.ok()) return error(v.source(), p.status().message());
        c.on_ledger_mismatch = *p;
      } else if (key == "trusted") {
        IDN_ASSIGN_OR_RETURN(c.trusted, peer_list(v, full));
      } else if (key == "blacklist") {
        IDN_ASSIGN_OR_RETURN(c.blacklist, peer_list(v, full));
      } else {
        return error(k.source(),
                     fmt::format("unknown key 'swap.{}' (known: {})", key, join(kSwapKeys)));
      }
    }
    if (Status st = swap::validate(c); !st.is_ok()) return error(t.source(), st.message());
    return Status::ok();
  }

  Result<Config> parse(const toml::table& root) const {
    Config c = Config::defaults();
    for (auto&& [k, v] : root) {
      std::string_view key = k.str();
      if (key == "listen") {
        IDN_ASSIGN_OR_RETURN(auto addrs, string_array(v, key));
        if (addrs.empty()) return error(v.source(), "listen must name at least one multiaddr");
        c.listen.clear();
        for (const auto& a : addrs) {
          auto ma = core::Multiaddr::parse(a);
          if (!ma.ok()) return error(v.source(), fmt::format("listen: {}", ma.status().message()));
          if (!ma->tcp_port()) {
            return error(v.source(), fmt::format("listen: {} has no /tcp/ port", a));
          }
          c.listen.push_back(std::move(*ma));
        }
      } else if (key == "identity") {
        IDN_ASSIGN_OR_RETURN(std::string path, string(v, key));
        if (path.empty()) return error(v.source(), "identity must be a file path");
        std::filesystem::path p(path);
        c.identity_file = p.is_relative() && !base_dir_.empty() ? base_dir_ / p : p;
      } else if (key == "passphrase_file") {
        IDN_ASSIGN_OR_RETURN(std::string path, string(v, key));
        if (path.empty()) return error(v.source(), "passphrase_file must be a file path");
        std::filesystem::path p(path);
        c.passphrase_file = p.is_relative() && !base_dir_.empty() ? base_dir_ / p : p;
      } else if (key == "bootstrap") {
        IDN_ASSIGN_OR_RETURN(auto addrs, string_array(v, key));
        for (const auto& a : addrs) {
          auto ma = parse_bootstrap_addr(a);
          if (!ma.ok())
            return error(v.source(), fmt::format("bootstrap: {}", ma.status().message()));
          c.bootstrap.push_back(std::move(*ma));
        }
      } else if (key == "http") {
        IDN_ASSIGN_OR_RETURN(std::string addr, string(v, key));
        if (addr.empty()) {
          c.http.reset();
        } else {
          auto h = parse_http_address(addr);
          if (!h.ok()) return error(v.source(), fmt::format("http: {}", h.status().message()));
          c.http = *h;
        }
      } else if (key == "busy_poll_us") {
        IDN_ASSIGN_OR_RETURN(auto us, in_range(v, "busy_poll_us", 0, 1'000'000));
        c.busy_poll = std::chrono::microseconds(us);
      } else if (key == "poll_while_waiting_us") {
        IDN_ASSIGN_OR_RETURN(auto us, in_range(v, "poll_while_waiting_us", 0, 1'000'000));
        c.poll_while_waiting = std::chrono::microseconds(us);
      } else if (key == "log_level") {
        IDN_ASSIGN_OR_RETURN(c.log_level, string(v, key));
        if (!is_log_level(c.log_level)) {
          return error(v.source(),
                       fmt::format("log_level '{}' is not one of trace, debug, info, warn, "
                                   "error, off",
                                   c.log_level));
        }
      } else if (key == "limits") {
        const toml::table* t = v.as_table();
        if (!t) return error(v.source(), "limits must be a table ([limits])");
        IDN_RETURN_IF_ERROR(limits(*t, c.limits));
      } else if (key == "dht") {
        const toml::table* t = v.as_table();
        if (!t) return error(v.source(), "dht must be a table ([dht])");
        IDN_RETURN_IF_ERROR(dht(*t, c.dht));
      } else if (key == "serve") {
        const toml::table* t = v.as_table();
        if (!t) return error(v.source(), "serve must be a table ([serve])");
        IDN_RETURN_IF_ERROR(serve(*t, c.serve));
      } else if (key == "engine") {
        const toml::table* t = v.as_table();
        if (!t) return error(v.source(), "engine must be a table ([engine])");
        IDN_RETURN_IF_ERROR(engine(*t, c.engine));
      } else if (key == "relay") {
        const toml::table* t = v.as_table();
        if (!t) return error(v.source(), "relay must be a table ([relay])");
        IDN_RETURN_IF_ERROR(relay(*t, c.relay));
      } else if (key == "ise") {
        const toml::table* t = v.as_table();
        if (!t) return error(v.source(), "ise must be a table ([ise])");
        IDN_RETURN_IF_ERROR(ise(*t, c.ise));
      } else if (key == "swap") {
        const toml::table* t = v.as_table();
        if (!t) return error(v.source(), "swap must be a table ([swap])");
        IDN_RETURN_IF_ERROR(swap(*t, c.swap));
      } else if (key == "data_dir") {
        IDN_ASSIGN_OR_RETURN(std::string path, string(v, key));
        if (path.empty()) return error(v.source(), "data_dir must be a directory path");
        std::filesystem::path p(path);
        c.data_dir = p.is_relative() && !base_dir_.empty() ? base_dir_ / p : p;
      } else if (key == "store_max_bytes") {
        if (!v.is_integer() || *v.value<int64_t>() < 0)
          return error(v.source(), "store_max_bytes must be an integer >= 0");
        c.store_max_bytes = static_cast<uint64_t>(*v.value<int64_t>());
      } else if (key == "host") {
        IDN_ASSIGN_OR_RETURN(c.host, string_array(v, key));
      } else {
        return error(k.source(), fmt::format("unknown key '{}' (known: {})", key, join(kTopKeys)));
      }
    }
    return c;
  }

 private:
  std::string source_;
  std::filesystem::path base_dir_;
};

}  // namespace

std::string HttpAddress::to_string() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<HttpAddress> parse_http_address(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::invalid_argument(
        fmt::format("HTTP address '{}' {} (expected HOST:PORT, e.g. 127.0.0.1:9464)", text, why));
  };
  HttpAddress a;
  std::string_view port;
  if (text.starts_with('[')) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("has a malformed [IPv6] host");
    }
    a.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("has no port");
    a.host = std::string(text.substr(0, colon));
    if (a.host.find(':') != std::string::npos) return bad("needs brackets around an IPv6 host");
    port = text.substr(colon + 1);
  }
  if (a.host.empty()) return bad("has no host");
  if (a.host == "localhost") a.host = "127.0.0.1";
  unsigned v = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || v > 65535) {
    return bad("has an invalid port (0..65535)");
  }
  a.port = static_cast<uint16_t>(v);
  // Only IP literals: resolving names would block and make the bind address ambiguous.
  auto ip = core::Multiaddr::parse(fmt::format(
      "/{}/{}/tcp/{}", a.host.find(':') == std::string::npos ? "ip4" : "ip6", a.host, a.port));
  if (!ip.ok()) return bad("does not have an IP address as host");
  return a;
}

Result<core::Multiaddr> parse_bootstrap_addr(std::string_view text) {
  IDN_ASSIGN_OR_RETURN(core::Multiaddr ma, core::Multiaddr::parse(text));
  if (!ma.peer_multihash()) {
    return Status::invalid_argument(
        fmt::format("{} has no /p2p/<peer id>; a bootstrap address must name the peer", text));
  }
  if (!ma.tcp_port()) return Status::invalid_argument(fmt::format("{} has no /tcp/ port", text));
  return ma;
}

bool is_log_level(std::string_view level) {
  for (std::string_view l : {"trace", "debug", "info", "warn", "error", "off"}) {
    if (level == l) return true;
  }
  return false;
}

Config Config::defaults() {
  Config c;
  c.listen.push_back(core::Multiaddr::parse(kDefaultListen).value());
  c.http = parse_http_address(kDefaultHttp).value();
  return c;
}

Result<Config> parse_config(std::string_view text, std::string_view source,
                            const std::filesystem::path& base_dir) {
  toml::parse_result parsed = toml::parse(text, source);
  Parser p(source, base_dir);
  if (!parsed) {
    return p.error(parsed.error().source(), std::string(parsed.error().description()));
  }
  return p.parse(parsed.table());
}

Result<Config> load_config(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    return Status::not_found(fmt::format("config file {} does not exist", file.string()));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::io_error(fmt::format("cannot read config file {}", file.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::io_error(fmt::format("error reading config file {}", file.string()));
  return parse_config(ss.str(), file.string(), file.parent_path());
}

}  // namespace idn::node
