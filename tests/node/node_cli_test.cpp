// The built `idn` binary end to end: `idn node` started twice (the second bootstraps to the
// first) connects them, `idn peers` lists the peer, SIGTERM stops both cleanly. Waits are on
// process output, HTTP polls and waitpid with deadlines; nothing sleeps.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "node/http.h"

namespace idn::node {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const std::string kIdn = std::string(IDN_BINARY_DIR) + "/idn";

// A child process whose stdout we read line by line.
class Child {
 public:
  explicit Child(std::vector<std::string> args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 2);
      close(fds[0]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }

  // Reads "key value" lines until `key` appears; returns its value ("" on deadline/EOF).
  std::string read_until(const std::string& key, std::chrono::milliseconds within = 10s) {
    auto deadline = std::chrono::steady_clock::now() + within;
    for (;;) {
      size_t nl;
      while ((nl = buf_.find('\n')) != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        size_t sp = line.find(' ');
        std::string k = line.substr(0, sp), v = sp == std::string::npos ? "" : line.substr(sp + 1);
        if (!lines_.count(k)) lines_[k] = v;
        if (k == key) return v;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
      char chunk[4096];
      ssize_t n = read(out_, chunk, sizeof chunk);
      if (n <= 0) return "";
      buf_.append(chunk, n);
    }
  }
  std::string line(const std::string& key) { return lines_.count(key) ? lines_[key] : ""; }

  // Sends SIGTERM and waits for the exit status (-1 when it does not exit in time).
  int terminate(std::chrono::milliseconds within = 15s) {
    kill(pid_, SIGTERM);
    pid_t pid = pid_;
    auto waited = std::async(std::launch::async, [pid] {
      int status = 0;
      waitpid(pid, &status, 0);
      return status;
    });
    if (waited.wait_for(within) != std::future_status::ready) return -1;
    reaped_ = true;
    int status = waited.get();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool reaped_ = false;
  std::string buf_;
  std::map<std::string, std::string> lines_;
};

std::string run_capture(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  return out;
}

bool sees(const HttpAddress& http, const std::string& peer, std::chrono::milliseconds within) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = http_get(http, "/status");
    if (r.ok()) {
      auto j = nlohmann::json::parse(r->body, nullptr, false);
      if (j.is_object()) {
        for (const auto& p : j["peers"]) {
          if (p["peer_id"] == peer) return true;
        }
      }
    }
    std::this_thread::yield();
  }
  return false;
}

TEST(NodeCli, TwoNodesBootstrapConnectAndStopOnSigterm) {
  if (!std::filesystem::exists(kIdn)) GTEST_SKIP() << kIdn << " not built (target idn)";
  Child a({kIdn, "node", "--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0"});
  ASSERT_EQ(a.read_until("ready"), "");
  std::string addr_a = a.line("listening"), id_a = a.line("peer_id");
  ASSERT_THAT(addr_a, HasSubstr("/p2p/" + id_a));
  auto http_a = parse_http_address(a.line("http"));
  ASSERT_TRUE(http_a.ok());

  Child b({kIdn, "node", "--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0", "--bootstrap",
           addr_a});
  ASSERT_EQ(b.read_until("ready"), "");
  std::string id_b = b.line("peer_id");
  auto http_b = parse_http_address(b.line("http"));
  ASSERT_TRUE(http_b.ok());

  EXPECT_TRUE(sees(*http_a, id_b, 10s));
  EXPECT_TRUE(sees(*http_b, id_a, 10s));

  std::string table = run_capture(kIdn + " peers --http " + http_a->to_string());
  EXPECT_THAT(table, HasSubstr("node " + id_a + ", 1 peer(s)"));
  EXPECT_THAT(table, HasSubstr(id_b));
  EXPECT_THAT(table, HasSubstr("inbound"));

  EXPECT_EQ(b.terminate(), 0);
  EXPECT_EQ(a.terminate(), 0);
}

TEST(NodeCli, BadConfigIsOneErrorLineAndExitCode2) {
  if (!std::filesystem::exists(kIdn)) GTEST_SKIP() << kIdn << " not built (target idn)";
  auto path = std::filesystem::path(::testing::TempDir()) / "bad_node.toml";
  {
    FILE* f = fopen(path.c_str(), "w");
    fputs("listen = [\"/ip4/127.0.0.1/tcp/0\"]\nlisten_port = 4001\n", f);
    fclose(f);
  }
  std::string out = run_capture(kIdn + " node --config " + path.string() + " 2>&1; echo rc=$?");
  EXPECT_THAT(out, HasSubstr(":2:1: unknown key 'listen_port'"));
  EXPECT_THAT(out, HasSubstr("rc=2"));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
}

TEST(NodeCli, PeersWithoutARunningNodeSaysWhatToCheck) {
  if (!std::filesystem::exists(kIdn)) GTEST_SKIP() << kIdn << " not built (target idn)";
  std::string out = run_capture(kIdn + " peers --http 127.0.0.1:1 2>&1; echo rc=$?");
  EXPECT_THAT(out, HasSubstr("is `idn node` running"));
  EXPECT_THAT(out, HasSubstr("rc=1"));
}

}  // namespace
}  // namespace idn::node
