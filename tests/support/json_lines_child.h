// A foreign peer (a Node.js script from interop/) run as a child process: stdin/stdout pipes,
// stdout read as JSON lines with deadlines. Shared by the js-libp2p and helia interop tests.
#pragma once

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

extern char** environ;

namespace idn::testing {

class JsonLinesChild {
 public:
  using json = nlohmann::json;

  explicit JsonLinesChild(std::vector<std::string> args) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
  }
  ~JsonLinesChild() {
    if (stdin_ >= 0) close(stdin_);
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st;
      waitpid(pid_, &st, 0);
    }
    if (stdout_ >= 0) close(stdout_);
  }
  JsonLinesChild(const JsonLinesChild&) = delete;
  JsonLinesChild& operator=(const JsonLinesChild&) = delete;

  bool ok() const { return pid_ > 0; }

  // Next JSON line within `timeout`; nullopt on timeout or EOF. Non-JSON lines are skipped.
  std::optional<json> next(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        auto j = json::parse(line, nullptr, false);
        if (j.is_discarded()) continue;
        return j;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{stdout_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      char tmp[4096];
      ssize_t n = read(stdout_, tmp, sizeof tmp);
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  // All lines up to and including the one whose "event" is `event` (or "error").
  std::vector<json> until(const std::string& event, std::chrono::milliseconds timeout) {
    std::vector<json> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (auto j = next(std::chrono::duration_cast<std::chrono::milliseconds>(
               deadline - std::chrono::steady_clock::now()))) {
      out.push_back(*j);
      if ((*j)["event"] == event || (*j)["event"] == "error") break;
    }
    return out;
  }

  // The line whose "event" is `event` (or "error"); earlier lines are kept in `seen`.
  std::optional<json> wait_event(const std::string& event, std::chrono::milliseconds timeout) {
    auto lines = until(event, timeout);
    seen.insert(seen.end(), lines.begin(), lines.end());
    if (lines.empty()) return std::nullopt;
    const auto& last = lines.back();
    if (last["event"] == event || last["event"] == "error") return last;
    return std::nullopt;
  }
  std::vector<json> seen;

 private:
  pid_t pid_ = -1;
  int stdin_ = -1, stdout_ = -1;
  std::string buf_;
};

}  // namespace idn::testing
