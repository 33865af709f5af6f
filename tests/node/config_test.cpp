#include "node/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "identity/peer_id.h"

namespace idn::node {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr char kPeer[] = "12D3KooWQ7anFy4QCWTMRN2VEs1LwVMBC6SN74oEuvvLuC8jdLbc";

std::string err(std::string_view toml) {
  auto c = parse_config(toml, "node.toml");
  EXPECT_FALSE(c.ok());
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  // One line, so the CLI prints exactly one error line.
  EXPECT_EQ(c.status().message().find('\n'), std::string::npos) << c.status().message();
  return c.status().message();
}

TEST(Config, EmptyFileGivesDefaults) {
  auto c = parse_config("", "node.toml");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_EQ(c->listen.size(), 1u);
  EXPECT_EQ(c->listen[0].to_string(), kDefaultListen);
  ASSERT_TRUE(c->http.has_value());
  EXPECT_EQ(c->http->to_string(), kDefaultHttp);
  EXPECT_FALSE(c->identity_file.has_value());
  EXPECT_TRUE(c->bootstrap.empty());
  EXPECT_EQ(c->log_level, "info");
  EXPECT_FALSE(c->limits.max_connections.has_value());
}

TEST(Config, FullFileParses) {
  std::string toml = std::string(R"(
listen = ["/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/4002"]
identity = "keys/node.key"
bootstrap = ["/ip4/10.0.0.2/tcp/4001/p2p/)") +
                     kPeer + R"("]
http = "[::1]:9000"
log_level = "debug"

[limits]
max_connections = 10
max_streams_per_connection = 20
handshake_timeout_ms = 1500
idle_timeout_ms = 60000
dial_timeout_ms = 2000
max_message_bytes = 1048576
)";
  auto c = parse_config(toml, "node.toml", "/etc/idn");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_EQ(c->listen.size(), 2u);
  EXPECT_EQ(c->listen[1].to_string(), "/ip6/::1/tcp/4002");
  EXPECT_EQ(c->identity_file, std::filesystem::path("/etc/idn/keys/node.key"));
  ASSERT_EQ(c->bootstrap.size(), 1u);
  EXPECT_THAT(c->bootstrap[0].to_string(), HasSubstr(kPeer));
  EXPECT_EQ(c->http, (HttpAddress{"::1", 9000}));
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->limits.max_connections, 10u);
  EXPECT_EQ(c->limits.max_streams_per_connection, 20u);
  EXPECT_EQ(c->limits.handshake_timeout, 1500ms);
  EXPECT_EQ(c->limits.idle_timeout, 60000ms);
  EXPECT_EQ(c->limits.dial_timeout, 2000ms);
  EXPECT_EQ(c->limits.max_message_bytes, 1048576u);
}

TEST(Config, DhtTableParses) {
  auto c = parse_config(R"([dht]
port = 4005
lan = true
record_ttl_s = 600
withdraw_on_stop = false
)",
                        "node.toml", "/etc/idn");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->dht.port, 4005);
  EXPECT_TRUE(c->dht.lan);
  EXPECT_EQ(c->dht.record_ttl, std::chrono::seconds(600));
  EXPECT_FALSE(c->dht.withdraw_on_stop);
  EXPECT_TRUE(parse_config("", "node.toml", "/etc/idn")->dht.withdraw_on_stop);
  auto bad = parse_config("[dht]\nwithdraw_on_stop = 1\n", "node.toml", "/etc/idn");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("dht.withdraw_on_stop must be true or false"));
}

TEST(Config, EmptyHttpDisablesTheEndpoint) {
  auto c = parse_config("http = \"\"", "node.toml");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->http.has_value());
}

TEST(Config, AbsoluteIdentityPathIsKept) {
  auto c = parse_config("identity = \"/var/lib/idn/node.key\"", "node.toml", "/etc/idn");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->identity_file, std::filesystem::path("/var/lib/idn/node.key"));
}

TEST(Config, UnknownKeysNameTheKeyAndLine) {
  EXPECT_THAT(err("listen = [\"/ip4/127.0.0.1/tcp/1\"]\nlisten_addr = 3\n"),
              HasSubstr("node.toml:2:1: unknown key 'listen_addr'"));
  EXPECT_THAT(err("[limits]\nmax_conns = 3\n"), HasSubstr("unknown key 'limits.max_conns'"));
}

TEST(Config, IseSectionParsesAndIsChecked) {
  auto c = parse_config(
      "[ise]\nauto_host = true\nk = 2\nmin_service_period_s = 10\nneed_idle_s = 5\n"
      "memory_budget_mb = 512\nkeep_factor = 1.5\nper_provider = false\nmax_need_count = 7\n",
      "node.toml");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_TRUE(c->ise.auto_host);
  EXPECT_DOUBLE_EQ(c->ise.keep_factor, 1.5);
  EXPECT_FALSE(c->ise.per_provider);
  EXPECT_EQ(c->ise.max_need_count, 7u);
  EXPECT_EQ(c->ise.k, 2u);
  EXPECT_EQ(c->ise.memory_budget_mb, 512u);
  EXPECT_EQ(c->ise.min_service_period, 10s);
  EXPECT_EQ(c->ise.need_idle, 5s);
  auto d = parse_config("", "node.toml");
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->ise.auto_host);  // a node hosts on demand only when its operator says so
  EXPECT_EQ(d->ise.k, 0u);         // 0: derived from cores, memory and costs
  EXPECT_EQ(d->ise.memory_budget_mb, 0u);
  EXPECT_TRUE(d->ise.per_provider);
  EXPECT_DOUBLE_EQ(d->ise.keep_factor, 1.0);
  EXPECT_EQ(d->ise.max_need_count, 120u);
  EXPECT_THAT(err("[ise]\nmax_need_count = 0\n"), HasSubstr("ise.max_need_count"));
  EXPECT_THAT(err("[ise]\nmemory_budget_mb = -1\n"), HasSubstr("ise.memory_budget_mb"));
  EXPECT_THAT(err("[ise]\nkk = 2\n"), HasSubstr("unknown key 'ise.kk'"));
  EXPECT_THAT(err("[ise]\nneed_idle_s = 0\n"), HasSubstr("need_idle_s"));
  EXPECT_THAT(err("[ise]\nkeep_factor = 0.5\n"), HasSubstr("ise.keep_factor must be in [1, 100]"));
  EXPECT_THAT(err("[ise]\nauto_host = 1\n"), HasSubstr("ise.auto_host must be true or false"));
  EXPECT_THAT(err("ise = 3"), HasSubstr("ise must be a table"));
}

TEST(Config, BadValuesAreOneClearLine) {
  EXPECT_THAT(err("listen = \"/ip4/1.2.3.4/tcp/1\""), HasSubstr("listen must be an array"));
  EXPECT_THAT(err("listen = []"), HasSubstr("at least one"));
  EXPECT_THAT(err("listen = [\"/ip4/1.2.3.4/udp/1\"]"), HasSubstr("no /tcp/ port"));
  EXPECT_THAT(err("listen = [\"not a multiaddr\"]"), HasSubstr("node.toml:1:"));
  EXPECT_THAT(err("listen = [1]"), HasSubstr("array of strings"));
  EXPECT_THAT(err("bootstrap = [\"/ip4/1.2.3.4/tcp/1\"]"), HasSubstr("no /p2p/"));
  EXPECT_THAT(err("http = \"127.0.0.1\""), HasSubstr("has no port"));
  EXPECT_THAT(err("http = \"127.0.0.1:99999\""), HasSubstr("invalid port"));
  EXPECT_THAT(err("http = \"example.com:80\""), HasSubstr("IP address"));
  EXPECT_THAT(err("http = 9464"), HasSubstr("http must be a string"));
  EXPECT_THAT(err("log_level = \"loud\""), HasSubstr("log_level 'loud'"));
  EXPECT_THAT(err("identity = \"\""), HasSubstr("identity must be a file path"));
  EXPECT_THAT(err("limits = 3"), HasSubstr("limits must be a table"));
  EXPECT_THAT(err("[limits]\nmax_connections = 0"),
              HasSubstr("node.toml:2:19: max_connections = 0 is out of range"));
  EXPECT_THAT(err("[limits]\nmax_connections = -5"), HasSubstr("out of range"));
  EXPECT_THAT(err("[limits]\nidle_timeout_ms = \"1s\""), HasSubstr("must be an integer"));
}

TEST(Config, LatencyKnobsParseAndZeroTurnsThemOff) {
  auto d = parse_config("", "node.toml");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->busy_poll, 0us);
  EXPECT_EQ(d->poll_while_waiting, 0us);
  EXPECT_EQ(d->serve.inline_below, 1000us);
  auto c = parse_config(
      "busy_poll_us = 150\npoll_while_waiting_us = 300\n[serve]\ninline_below_us = 0\n",
      "node.toml");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->busy_poll, 150us);
  EXPECT_EQ(c->poll_while_waiting, 300us);
  EXPECT_EQ(c->serve.inline_below, 0us);
  EXPECT_THAT(err("busy_poll_us = -1"),
              HasSubstr("busy_poll_us = -1 is out of range (0..1000000)"));
  EXPECT_THAT(err("poll_while_waiting_us = 2000000"),
              HasSubstr("poll_while_waiting_us = 2000000 is out of range (0..1000000)"));
  EXPECT_THAT(err("[serve]\ninline_below_us = 2000000"),
              HasSubstr("serve.inline_below_us = 2000000 is out of range"));
}

TEST(Config, EngineBackendDefaultsToAutoAndIsChecked) {
  auto d = parse_config("", "node.toml");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->engine.backend, "auto");
  for (const char* b : {"auto", "torch", "cpu"}) {
    auto c = parse_config(std::string("[engine]\nbackend = \"") + b + "\"\n", "node.toml");
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    EXPECT_EQ(c->engine.backend, b);
  }
  EXPECT_THAT(err("[engine]\nbackend = \"gpu\""),
              HasSubstr("node.toml:2:11: engine.backend must be \"auto\", \"torch\" or \"cpu\""));
  EXPECT_THAT(err("[engine]\nbackend = 1"), HasSubstr("engine.backend must be"));
  EXPECT_THAT(err("[engine]\nthreads = 1"), HasSubstr("unknown key 'engine.threads'"));
  EXPECT_THAT(err("engine = 1"), HasSubstr("engine must be a table"));
}

TEST(Config, SwapTableParsesAndChecksEveryKey) {
  auto d = parse_config("", "node.toml");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->swap.enabled);
  EXPECT_EQ(d->swap.params.grace_ops, kNodeGraceOps);

  std::string toml = std::string(R"([swap]
enabled = true
m = 3
n = 4.5
grace_ops = 1000
ignore_period_s = 0
idle_close_s = 60
receipt_timeout_ms = 500
checkpoint_every = 8
close_checkpoint_min = 0
commit_interval_ms = 0
challenge_rate = 0.25
on_challenge_failure = "blacklist"
on_ledger_mismatch = "contempt"
trusted = [")") + kPeer +
                     R"("]
)";
  auto c = parse_config(toml, "node.toml");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  const swap::Config& s = c->swap.params;
  EXPECT_EQ(s.m, 3.0);
  EXPECT_EQ(s.n, 4.5);
  EXPECT_EQ(s.grace_ops, 1000u);
  EXPECT_EQ(s.ignore_period_s, 0u);
  EXPECT_EQ(s.idle_close_s, 60u);
  EXPECT_EQ(s.receipt_timeout_ms, 500u);
  EXPECT_EQ(s.checkpoint_every, 8u);
  EXPECT_EQ(s.close_checkpoint_min, 0u);
  EXPECT_EQ(d->swap.params.close_checkpoint_min, 64u);
  EXPECT_EQ(s.commit_interval_ms, 0u);
  EXPECT_EQ(d->swap.params.commit_interval_ms, 200u);
  EXPECT_EQ(d->swap.params.checkpoint_every, 1024u);
  EXPECT_EQ(s.challenge_rate, 0.25);
  EXPECT_EQ(s.on_challenge_failure, swap::ChallengeFailure::kBlacklist);
  EXPECT_EQ(s.on_ledger_mismatch, swap::MismatchPolicy::kContempt);
  ASSERT_EQ(s.trusted.size(), 1u);
  EXPECT_EQ(s.trusted[0], identity::PeerId::parse(kPeer)->bytes());

  EXPECT_THAT(err("[swap]\nmm = 1\n"), HasSubstr("unknown key 'swap.mm'"));
  EXPECT_THAT(err("[swap]\nm = 1\n"), HasSubstr("m must be a number > 1"));
  EXPECT_THAT(err("[swap]\nchallenge_rate = 2\n"), HasSubstr("challenge_rate"));
  EXPECT_THAT(err("[swap]\ncommit_interval_ms = 60001\n"), HasSubstr("out of range (0..60000)"));
  EXPECT_THAT(err("[swap]\nclose_checkpoint_min = 4096\n"), HasSubstr("out of range (0..2048)"));
  EXPECT_THAT(err("[swap]\ncheckpoint_every = 2049\n"), HasSubstr("out of range"));
  EXPECT_THAT(err("[swap]\ncommit_interval_ms = 10000\n"), HasSubstr("below receipt_timeout_ms"));
  EXPECT_THAT(err("[swap]\ntrusted = [\"nope\"]\n"), HasSubstr("is not a peer ID"));
  EXPECT_THAT(err("[swap]\non_challenge_failure = \"shrug\"\n"), HasSubstr("shrug"));
  EXPECT_THAT(
      err(std::string("[swap]\ntrusted = [\"") + kPeer + "\"]\nblacklist = [\"" + kPeer + "\"]\n"),
      HasSubstr("both trusted and blacklisted"));
  EXPECT_THAT(err("swap = 1\n"), HasSubstr("[swap]"));
}

TEST(Config, TomlSyntaxErrorsCarryPosition) {
  EXPECT_THAT(err("listen = [\n"), HasSubstr("node.toml:"));
  EXPECT_THAT(err("= 3"), HasSubstr("node.toml:1:"));
}

TEST(Config, HttpAddressForms) {
  EXPECT_EQ(parse_http_address("localhost:80").value(), (HttpAddress{"127.0.0.1", 80}));
  EXPECT_EQ(parse_http_address("0.0.0.0:0").value(), (HttpAddress{"0.0.0.0", 0}));
  EXPECT_EQ(parse_http_address("[::1]:1").value().to_string(), "[::1]:1");
  EXPECT_FALSE(parse_http_address("::1:80").ok());
  EXPECT_FALSE(parse_http_address(":80").ok());
  EXPECT_FALSE(parse_http_address("1.2.3.4:").ok());
  EXPECT_FALSE(parse_http_address("1.2.3.4:8x").ok());
  EXPECT_FALSE(parse_http_address("[::1]80").ok());
}

TEST(Config, LoadConfigReportsMissingFilesAndResolvesRelativeToTheFile) {
  auto missing = load_config("/nonexistent/idn/node.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);

  auto dir = std::filesystem::path(::testing::TempDir()) / "idn_config_test";
  std::filesystem::create_directories(dir);
  { std::ofstream(dir / "node.toml") << "identity = \"node.key\"\n"; }
  auto c = load_config(dir / "node.toml");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->identity_file, dir / "node.key");
}

}  // namespace
}  // namespace idn::node
