#include "client/session.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <limits>
#include <random>

#include "core/varint.h"
#include "p2p/host.h"
#include "rpc/message_io.h"

namespace idn::client {

namespace asio = boost::asio;
using p2p::awaitable;
using p2p::SteadyTime;
using Outcome = PeerReport::Outcome;
using Clock = std::chrono::steady_clock;

Status SessionOptions::validate() const {
  if (fanout == 0) return Status::invalid_argument("SessionOptions.fanout must be at least 1");
  if (max_attempts == 0) {
    return Status::invalid_argument("SessionOptions.max_attempts must be at least 1");
  }
  if (deadline.count() <= 0) {
    return Status::invalid_argument("SessionOptions.deadline must be positive");
  }
  if (inactivity_timeout.count() <= 0) {
    return Status::invalid_argument("SessionOptions.inactivity_timeout must be positive");
  }
  if (cancel_grace.count() < 0) {
    return Status::invalid_argument("SessionOptions.cancel_grace must not be negative");
  }
  if (keep_alive && keep_alive_idle.count() <= 0) {
    return Status::invalid_argument("SessionOptions.keep_alive_idle must be positive");
  }
  if (finish_confidence && !(*finish_confidence >= 0.0f && *finish_confidence <= 1.0f)) {
    return Status::invalid_argument(
        fmt::format("SessionOptions.finish_confidence {} is not in [0, 1]", *finish_confidence));
  }
  if (output_shape) {
    for (int64_t d : *output_shape) {
      if (d < 0) {
        return Status::invalid_argument(
            fmt::format("SessionOptions.output_shape {} has a negative dimension",
                        core::shape_string(*output_shape)));
      }
    }
  }
  return Status::ok();
}

ProviderSource fixed_providers(std::vector<identity::PeerId> peers) {
  return [peers = std::move(peers)](const core::Multihash&, size_t n,
                                    const std::vector<identity::PeerId>& exclude)
             -> awaitable<Result<std::vector<identity::PeerId>>> {
    std::vector<identity::PeerId> out;
    for (const identity::PeerId& p : peers) {
      if (out.size() == n) break;
      if (std::find(exclude.begin(), exclude.end(), p) == exclude.end()) out.push_back(p);
    }
    co_return out;
  };
}

namespace detail {

// A busy peer is asked again no sooner than this, whatever retry_after it sent: a peer
// answering busy with 0 must not make a request spin.
constexpr uint32_t kMinBusyRetryMs = 10;

// A keep-alive stream to one provider and what its first request carried, which later requests
// on it leave out (proto/idn_infer.proto, "Keep-alive").
struct KeptStream {
  identity::PeerId peer;
  std::shared_ptr<p2p::Stream> stream;
  Bytes service_id;
  protocol::ExitRule exit_rule;
  uint32_t deadline_ms = 0;
  SteadyTime idle_since;
};

// Idle streams a provider keeps open for this session, so its next request to that provider
// skips opening a stream and repeating what the stream's first request said. A stream is in
// use by one request at a time: take() hands it out, give_back() returns it after a final
// answer that said stream_open. Closed (our side, cleanly) after `idle`, when the provider ended
// its side, and by close_all(). On the io executor.
class StreamPool : public std::enable_shared_from_this<StreamPool> {
 public:
  // Idle streams kept per provider: more are closed when given back.
  static constexpr size_t kMaxIdlePerPeer = 4;

  StreamPool(asio::any_io_executor ex, std::chrono::milliseconds idle)
      : ex_(ex), idle_(idle), timer_(std::move(ex)) {}

  // An idle stream to `peer`, or null.
  std::shared_ptr<KeptStream> take(const identity::PeerId& peer) {
    const SteadyTime now = Clock::now();
    for (auto it = streams_.begin(); it != streams_.end();) {
      if ((*it)->peer != peer) {
        ++it;
        continue;
      }
      std::shared_ptr<KeptStream> k = *it;
      it = streams_.erase(it);
      // The provider ended it (its idle limit), or ours passed: not worth a request.
      if (k->stream->at_eof() || now >= k->idle_since + idle_) {
        close(std::move(k));
        continue;
      }
      return k;
    }
    return nullptr;
  }

  void give_back(std::shared_ptr<KeptStream> k) {
    const size_t same = static_cast<size_t>(std::count_if(
        streams_.begin(), streams_.end(), [&](const auto& o) { return o->peer == k->peer; }));
    if (closed_ || same >= kMaxIdlePerPeer) {
      close(std::move(k));
      return;
    }
    k->idle_since = Clock::now();
    streams_.push_back(std::move(k));  // streams_ stays ordered by idle_since
    if (!reaping_) {
      reaping_ = true;
      asio::co_spawn(ex_, reap(shared_from_this()), asio::detached);
    }
  }

  void close_all() {
    closed_ = true;
    for (auto& k : streams_) close(std::move(k));
    streams_.clear();
    timer_.cancel();
  }

  size_t idle_count() const { return streams_.size(); }

 private:
  // Ends our side; the provider then ends its own and both forget the stream.
  void close(std::shared_ptr<KeptStream> k) {
    asio::co_spawn(
        ex_, [k = std::move(k)]() -> awaitable<void> { (void)co_await k->stream->close_write(); },
        asio::detached);
  }

  static awaitable<void> reap(std::shared_ptr<StreamPool> self) {
    while (!self->closed_ && !self->streams_.empty()) {
      self->timer_.expires_at(self->streams_.front()->idle_since + self->idle_);
      boost::system::error_code ec;
      co_await self->timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      const SteadyTime now = Clock::now();
      while (!self->streams_.empty() && now >= self->streams_.front()->idle_since + self->idle_) {
        self->close(std::move(self->streams_.front()));
        self->streams_.erase(self->streams_.begin());
      }
    }
    self->reaping_ = false;
  }

  asio::any_io_executor ex_;
  std::chrono::milliseconds idle_;
  asio::steady_timer timer_;
  std::vector<std::shared_ptr<KeptStream>> streams_;
  bool reaping_ = false;
  bool closed_ = false;
};

// One peer's part in a request: its stream and what it sent so far.
struct Attempt {
  enum class State {
    kOpening,  // stream being opened, request being written or answers being read
    kClosing,  // outcome decided; Cancel / half-close on the way, stream drained then dropped
  };
  Attempt(identity::PeerId p, size_t report) : peer(std::move(p)), report_index(report) {}

  identity::PeerId peer;
  size_t report_index;
  State state = State::kOpening;
  std::shared_ptr<p2p::Stream> stream;
  bool request_written = false;
  bool cancel_wanted = false;  // the Cancel is sent once the request is written
  bool writes_closed = false;  // our side is half-closed (after Cancel, or after a final answer)
  bool reader_done = false;
  std::optional<uint32_t> last_exit;
  uint64_t last_operations = 0;
  size_t accepted = 0;       // well-formed answers taken from it
  bool receipt_due = false;  // a Receipt goes out before our side closes
  SteadyTime last_activity = Clock::now();
  // Keep-alive: the stream's record (set when we asked keep_open or took it from the pool).
  std::shared_ptr<KeptStream> kept;
  bool reused = false;     // the request went on a stream an earlier request had used
  size_t frames = 0;       // answers read for this request
  bool keep_open = false;  // its final answer said stream_open: the stream goes back to the pool

  bool active() const { return state == State::kOpening; }
};

// The state of one request, shared by the caller's InferStream, the driver coroutine (timers,
// provider lookups) and one reader coroutine per peer. Everything runs on the io executor.
class Request : public std::enable_shared_from_this<Request> {
 public:
  Request(asio::any_io_executor ex, p2p::Host& host, ProviderSource providers,
          core::Multihash service, SessionOptions opts, uint64_t id, core::Tensor input,
          std::shared_ptr<SessionStats> stats, std::shared_ptr<InFlight> in_flight,
          std::shared_ptr<StreamPool> pool, std::optional<Challenge> challenge = std::nullopt)
      : ex_(std::move(ex)),
        host_(host),
        providers_(std::move(providers)),
        service_(std::move(service)),
        opts_(std::move(opts)),
        id_(id),
        input_(std::move(input)),
        started_(Clock::now()),
        deadline_(started_ + opts_.deadline),
        changed_(ex_),
        stats_(std::move(stats)),
        in_flight_(std::move(in_flight)),
        pool_(std::move(pool)),
        challenge_(std::move(challenge)) {
    if (opts_.on_complete && !challenge_) completed_input_ = input_;
  }

  void start() { asio::co_spawn(ex_, drive(shared_from_this()), asio::detached); }

  awaitable<std::optional<Event>> next() {
    auto self = shared_from_this();  // the Signal must outlive this wait
    for (;;) {
      if (!queue_.empty()) {
        Event e = std::move(queue_.front());
        queue_.pop_front();
        stats_->events++;
        co_return e;
      }
      if (done_) co_return std::nullopt;
      co_await changed_.wait();
    }
  }

  void finish_by_caller() {
    if (done_) return;
    queue_.clear();
    complete(summary_.best ? Status::ok()
                           : Status::cancelled("finished by the caller before any answer"));
  }

  bool done() const { return done_; }
  uint64_t id() const { return id_; }
  void skip_selector() { use_selector_ = false; }
  void set_body(RequestInput body) { body_ = std::move(body); }
  const Summary& summary() const { return summary_; }

 private:
  static awaitable<void> drive(std::shared_ptr<Request> self) {
    struct Counted {
      InFlight* n;
      explicit Counted(InFlight* c) : n(c) {
        if (n) n->fetch_add(1, std::memory_order_relaxed);
      }
      ~Counted() {
        if (n) n->fetch_sub(1, std::memory_order_relaxed);
      }
    } counted(self->in_flight_.get());
    co_await self->run();
  }

  awaitable<void> run() {
    stats_->started++;
    if (Status st = opts_.validate(); !st.is_ok()) {
      complete(st);
      co_return;
    }
    const bool has_input = !(input_ == core::Tensor{});
    if (has_input || (body_.inputs.empty() && !body_.sample_ref)) {
      if (Status st = input_.validate(); !st.is_ok()) {
        complete(Status::invalid_argument("input tensor: " + st.message()));
        co_return;
      }
    }
    if (has_input && !body_.inputs.empty()) {
      complete(Status::invalid_argument("a request carries input or inputs, not both"));
      co_return;
    }
    if (body_.inputs.size() != body_.input_views.size()) {
      complete(Status::invalid_argument("every input needs its view"));
      co_return;
    }
    for (const auto& t : body_.inputs) {
      if (Status st = t.validate(); !st.is_ok()) {
        complete(Status::invalid_argument("input tensor: " + st.message()));
        co_return;
      }
    }
    if (challenge_) {
      if (Status st = challenge_->expected.validate(); !st.is_ok()) {
        complete(st.with_context("challenge"));
        co_return;
      }
    } else if (opts_.local_prefix && has_input && !run_local_prefix()) {
      co_return;
    }
    if (Status st = encode_request(); !st.is_ok()) {
      complete(st);
      co_return;
    }
    while (!done_) {
      refill();
      if (done_) break;
      SteadyTime wake = deadline_;
      for (auto& a : attempts_) {
        if (a->active()) wake = std::min(wake, a->last_activity + opts_.inactivity_timeout);
      }
      if (can_retry_busy()) wake = std::min(wake, busy_.front().retry_at);
      co_await changed_.wait(wake);
      if (done_) break;
      SteadyTime now = Clock::now();
      if (now >= deadline_) {
        complete(timeout_status());
        break;
      }
      for (auto& a : attempts_) {
        if (a->active() && now >= a->last_activity + opts_.inactivity_timeout) {
          drop(a, Outcome::kTimedOut,
               fmt::format("silent for {} ms", opts_.inactivity_timeout.count()));
        }
      }
    }
  }

  // Returns false when the request is complete (local answer confident, or the hook failed).
  bool run_local_prefix() {
    auto step = opts_.local_prefix(input_);
    if (!step.ok()) {
      complete(step.status().with_context("local prefix"));
      return false;
    }
    if (step->local_answer) {
      Event e = std::move(*step->local_answer);
      e.peer = host_.id();
      e.local = true;
      e.latency = elapsed();
      if (e.predicted < 0) e.predicted = argmax(e.output);
      summary_.best = e;
      queue_.push_back(std::move(e));
      changed_.notify_all();
    }
    if (step->confident) {
      if (summary_.best) stats_->local_answers++;
      complete(summary_.best ? Status::ok()
                             : Status::internal("local prefix reported a confident exit "
                                                "without an answer"));
      return false;
    }
    if (Status st = step->activation.validate(); !st.is_ok()) {
      complete(Status::internal("local prefix activation: " + st.message()));
      return false;
    }
    input_ = std::move(step->activation);
    start_stage_ = step->next_stage;
    return true;
  }

  Status encode_request() {
    protocol::InferRequest req;
    req.request_id = id_;
    req.service_id = service_.bytes();
    req.input = std::move(input_);
    req.exit_rule = opts_.exit_rule;
    // Rounded, not truncated: requests started alike send the same value, which a later
    // request on a kept stream can then leave out.
    auto left = std::chrono::round<std::chrono::milliseconds>(deadline_ - Clock::now());
    req.deadline_ms = static_cast<uint32_t>(
        std::clamp<int64_t>(left.count(), 1, std::numeric_limits<uint32_t>::max()));
    req.start_stage = start_stage_;
    req.inputs = std::move(body_.inputs);
    req.input_views = std::move(body_.input_views);
    req.sample_ref = body_.sample_ref;
    req.stop_after_stage = body_.stop_after_stage;
    req.keep_open = pool_ != nullptr;
    protocol::InferClientMessage message{std::move(req)};
    request_frame_ = protocol::encode(message);
    if (request_frame_.size() > rpc::kMaxInferMessage) {
      return Status::limit_exceeded(
          fmt::format("the encoded request is {} bytes, peers accept at most {}; split the input",
                      request_frame_.size(), rpc::kMaxInferMessage));
    }
    // Kept for requests on kept streams (follow_up_frame).
    if (pool_) request_ = std::get<protocol::InferRequest>(std::move(message));
    return Status::ok();
  }

  // The request as a later one on kept stream `k`: what equals k's first request is left out.
  const Bytes& follow_up_frame(const KeptStream& k) {
    const int same = (k.service_id == request_.service_id ? 1 : 0) |
                     (k.exit_rule == request_.exit_rule ? 2 : 0) |
                     (k.deadline_ms == request_.deadline_ms ? 4 : 0);
    if (follow_up_frame_.empty() || follow_up_same_ != same) {
      protocol::InferRequest r = request_;
      r.keep_open = false;
      if (same & 1) r.service_id.clear();
      if (same & 2) r.exit_rule_inherited = true;
      if (same & 4) r.deadline_ms = 0;
      follow_up_frame_ = protocol::encode(protocol::InferClientMessage{std::move(r)});
      follow_up_same_ = same;
    }
    return follow_up_frame_;
  }

  std::chrono::microseconds elapsed() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_);
  }

  size_t active_count() const {
    return static_cast<size_t>(std::count_if(attempts_.begin(), attempts_.end(),
                                             [](const auto& a) { return a->active(); }));
  }

  // Keeps `fanout` peers working while attempts and providers last: new providers first, then
  // peers that were busy, once their retry_after has passed (so a small swarm under load still
  // answers). Completes the request when nobody is working and nobody else can be asked.
  void refill() {
    if (done_ || lookup_in_flight_) return;
    size_t active = active_count();
    size_t budget = opts_.max_attempts - std::min(opts_.max_attempts, attempts_.size());
    size_t want = std::min(opts_.fanout - std::min(opts_.fanout, active), budget);
    // Candidates the selector ranked but that were not needed at the time come first.
    while (want > 0 && !spare_.empty()) {
      identity::PeerId peer = spare_.front();
      spare_.erase(spare_.begin());
      if (std::find(tried_.begin(), tried_.end(), peer) != tried_.end()) continue;
      start_attempt(peer);
      --want;
      ++active;
    }
    if (want > 0 && !providers_exhausted_) {
      lookup_in_flight_ = true;
      asio::co_spawn(ex_, lookup(shared_from_this(), want), asio::detached);
      return;
    }
    SteadyTime now = Clock::now();
    while (want > 0 && !busy_.empty() && busy_.front().retry_at <= now) {
      identity::PeerId peer = busy_.front().peer;
      busy_.erase(busy_.begin());
      start_attempt(peer);
      --want;
      ++active;
    }
    if (active > 0) return;
    if (want > 0 && !busy_.empty() && busy_.front().retry_at < deadline_) return;  // wait for it
    complete(exhausted_status(budget == 0));
  }

  // Whether refill() would start a busy peer again once its retry time comes (only then may
  // the driver wake for it: a past retry time nobody can use would make it spin).
  bool can_retry_busy() const {
    return !busy_.empty() && providers_exhausted_ && !lookup_in_flight_ &&
           active_count() < opts_.fanout && attempts_.size() < opts_.max_attempts;
  }

  // A busy peer may be asked again after it said it would have room.
  void remember_busy(const identity::PeerId& peer, uint32_t retry_after_ms) {
    auto wait = std::chrono::milliseconds(std::max<uint32_t>(retry_after_ms, kMinBusyRetryMs));
    busy_.push_back({peer, Clock::now() + wait});
    std::sort(busy_.begin(), busy_.end(),
              [](const BusyPeer& a, const BusyPeer& b) { return a.retry_at < b.retry_at; });
  }

  static awaitable<void> lookup(std::shared_ptr<Request> self, size_t n) {
    co_await self->do_lookup(n);
  }

  bool known(const identity::PeerId& p) const {
    auto in = [&](const std::vector<identity::PeerId>& v) {
      return std::find(v.begin(), v.end(), p) != v.end();
    };
    return p == host_.id() || in(tried_) || in(passed_over_) || in(spare_);
  }

  awaitable<void> do_lookup(size_t n) {
    const size_t ask = std::max(n, opts_.candidates);
    std::vector<identity::PeerId> exclude = tried_;
    exclude.insert(exclude.end(), passed_over_.begin(), passed_over_.end());
    exclude.insert(exclude.end(), spare_.begin(), spare_.end());
    Result<std::vector<identity::PeerId>> found =
        Status::invalid_argument("the session has no provider source");
    if (providers_) found = co_await providers_(service_, ask, exclude);
    lookup_in_flight_ = false;
    if (done_) co_return;
    size_t started = 0;
    if (!found.ok()) {
      lookup_error_ = found.status();
      providers_exhausted_ = true;
    } else {
      std::vector<identity::PeerId> fresh;
      for (const identity::PeerId& p : *found)
        if (!known(p) && std::find(fresh.begin(), fresh.end(), p) == fresh.end())
          fresh.push_back(p);
      bool skipped = false;
      if (opts_.selector && !fresh.empty() && use_selector_) {
        std::vector<identity::PeerId> chosen = opts_.selector->select(service_, fresh);
        std::vector<identity::PeerId> ranked;
        for (const identity::PeerId& p : chosen)
          if (std::find(fresh.begin(), fresh.end(), p) != fresh.end() &&
              std::find(ranked.begin(), ranked.end(), p) == ranked.end())
            ranked.push_back(p);
        for (const identity::PeerId& p : fresh)
          if (std::find(ranked.begin(), ranked.end(), p) == ranked.end()) {
            passed_over_.push_back(p);
            skipped = true;
          }
        fresh = std::move(ranked);
      }
      for (const identity::PeerId& p : fresh) {
        if (started < n) {
          start_attempt(p);
          ++started;
        } else {
          spare_.push_back(p);
        }
      }
      // Fewer than asked: the source has no more right now; asking again would spin. When the
      // selector left peers out of a full answer, the source may have others: ask again.
      if (started < n && (found->size() < ask || !skipped)) providers_exhausted_ = true;
    }
    changed_.notify_all();
  }

  void start_attempt(const identity::PeerId& peer) {
    if (std::find(tried_.begin(), tried_.end(), peer) == tried_.end()) tried_.push_back(peer);
    summary_.peers.push_back(PeerReport{peer, Outcome::kRunning, "", 0, 0, 0, std::nullopt, {}});
    auto a = std::make_shared<Attempt>(peer, summary_.peers.size() - 1);
    attempts_.push_back(a);
    asio::co_spawn(ex_, run_attempt(shared_from_this(), a), asio::detached);
  }

  static awaitable<void> run_attempt(std::shared_ptr<Request> self, std::shared_ptr<Attempt> a) {
    co_await self->attempt(a);
    a->reader_done = true;
    a->stream.reset();  // releases the yamux stream; a live handle would count against its limit
    self->changed_.notify_all();
  }

  awaitable<void> attempt(const std::shared_ptr<Attempt>& a) {
    std::shared_ptr<KeptStream> kept = pool_ ? pool_->take(a->peer) : nullptr;
    for (;;) {
      if (kept) {
        a->stream = kept->stream;
        a->reused = true;
      } else {
        std::string protocol_id(protocol::kInferProtocolId);
        auto s = co_await host_.new_stream_optimistic(a->peer, protocol_id);
        if (!s.ok()) {
          if (a->active()) {
            Code c = s.status().code();
            drop(a,
                 c == Code::kTimeout ? Outcome::kTimedOut
                 : c == Code::kNotFound || c == Code::kUnavailable || c == Code::kIOError
                     ? Outcome::kVanished
                     : Outcome::kError,
                 "opening the stream failed: " + s.status().to_string());
          }
          co_return;
        }
        a->stream = std::move(*s);
        a->reused = false;
        if (pool_) {
          kept = std::make_shared<KeptStream>(KeptStream{a->peer, a->stream, request_.service_id,
                                                         request_.exit_rule, request_.deadline_ms,
                                                         SteadyTime{}});
        }
      }
      a->kept = kept;
      if (!a->active()) {  // given up on while the stream opened: end it without a request
        (void)co_await a->stream->close_write();
        a->writes_closed = true;
      } else {
        a->last_activity = Clock::now();
        const Bytes& frame = a->reused ? follow_up_frame(*kept) : request_frame_;
        Status st = co_await p2p::write_length_prefixed(*a->stream, frame);
        if (!st.is_ok()) {
          a->stream->reset();
          if (a->reused && a->active()) {  // the kept stream died while idle: a fresh one
            kept.reset();
            continue;
          }
          if (a->active())
            drop(a, Outcome::kVanished, "sending the request failed: " + st.to_string());
          co_return;
        }
        a->request_written = true;
        count_sent(frame.size());
        if (!a->active()) co_await close_writes(a);  // dropped while the request was written
      }
      if (co_await read_answers(a)) co_return;
      // The kept stream ended before anything was answered (the provider closed it while it
      // was idle, or went away): the request goes on a fresh stream.
      a->request_written = false;
      kept.reset();
    }
  }

  // Reads the answers to a's request. False when a kept stream ended (or was reset) before
  // any answer to this request and a is still active: the caller asks again on a fresh one.
  awaitable<bool> read_answers(const std::shared_ptr<Attempt>& a) {
    for (;;) {
      auto frame = co_await p2p::read_length_prefixed(*a->stream, rpc::kMaxInferMessage);
      if (!frame.ok()) {
        Code c = frame.status().code();
        if (a->reused && a->frames == 0 && a->active() &&
            (c == Code::kNotFound || c == Code::kCancelled || c == Code::kIOError ||
             c == Code::kUnavailable)) {
          if (c == Code::kNotFound) {
            std::shared_ptr<p2p::Stream> stream = a->stream;
            (void)co_await stream->close_write();
          } else {
            a->stream->reset();
          }
          co_return false;
        }
        if (a->active()) {
          if (c == Code::kNotFound) {
            drop(a, Outcome::kVanished, "closed the stream without a final answer");
          } else if (c == Code::kLimitExceeded || c == Code::kCorruption) {
            drop(a, Outcome::kMalformed, frame.status().to_string());
          } else if (c == Code::kUnsupported || c == Code::kPeerMisbehaved) {
            drop(a, Outcome::kError, frame.status().to_string());  // refused /idn/infer
          } else {
            drop(a, Outcome::kVanished, frame.status().to_string());
          }
        }
        if (c != Code::kNotFound) {
          a->stream->reset();
        } else if (!a->writes_closed) {
          // The peer ended cleanly first: end ours cleanly too (a reset would look like an
          // error to a peer that is still reading), after the receipt when one is due.
          a->writes_closed = true;
          std::shared_ptr<p2p::Stream> stream = a->stream;
          co_await write_receipt(a, *stream);
          (void)co_await stream->close_write();
        }
        co_return true;
      }
      count_received(frame->size());
      a->frames++;
      if (!a->active()) continue;  // draining a peer we gave up on
      a->last_activity = Clock::now();
      auto msg = protocol::decode_infer_server(ByteView(*frame), rpc::infer_io_limits().decode);
      if (!msg.ok()) {
        drop(a, Outcome::kMalformed, msg.status().to_string());
        continue;
      }
      on_progress(a, std::get<protocol::InferProgress>(std::move(*msg)));
      // Its final answer kept the stream open: the stream went back to the pool (or goes once
      // the receipt is written); nothing more of this request comes on it.
      if (a->keep_open) co_return true;
    }
  }

  static uint64_t frame_size(size_t payload) { return core::uvarint_size(payload) + payload; }
  void count_sent(size_t payload) {
    summary_.bytes_sent += frame_size(payload);
    stats_->bytes_sent += frame_size(payload);
  }
  void count_received(size_t payload) {
    summary_.bytes_received += frame_size(payload);
    stats_->bytes_received += frame_size(payload);
  }

  void on_progress(const std::shared_ptr<Attempt>& a, protocol::InferProgress p) {
    PeerReport& report = summary_.peers[a->report_index];
    if (p.error != protocol::InferError::kNone) {
      std::string why = p.error_message.empty() ? "" : ": " + p.error_message;
      // An error is an answer too: a stream the provider keeps open serves the next request.
      a->keep_open = p.final && p.stream_open && a->kept;
      if (p.busy()) {
        drop(a, Outcome::kBusy, fmt::format("busy (retry after {} ms){}", p.retry_after_ms, why),
             !p.final);
        remember_busy(a->peer, p.retry_after_ms);
      } else if (p.error == protocol::InferError::kRefused) {
        drop(a, Outcome::kRefused, fmt::format("refused{}", why), !p.final);
      } else {
        drop(a, Outcome::kError, fmt::format("{}{}", protocol::infer_error_name(p.error), why),
             !p.final);
      }
      return;
    }
    if (Status st = check_answer(p, id_, opts_.output_shape, a->last_exit, a->last_operations,
                                 opts_.output_dtype);
        !st.is_ok()) {
      drop(a, Outcome::kMalformed, st.message(), !p.final);
      return;
    }
    if (challenge_ && p.final) {
      Status verdict = check_known_answer(p, challenge_->expected);
      report.challenge_passed = verdict.is_ok();
      if (verdict.is_ok()) {
        stats_->challenges_passed++;
      } else {
        stats_->challenges_failed++;
      }
      if (opts_.observer)
        opts_.observer->on_challenge(service_, a->peer, verdict.is_ok(), verdict.message());
      if (!verdict.is_ok()) {
        drop(a, Outcome::kWrongAnswer, "challenge failed: " + verdict.message(), false);
        return;
      }
    }
    a->last_exit = p.exit_index;
    a->last_operations = p.operations;
    a->accepted++;
    report.answers++;
    report.votes.push_back({p.exit_index, argmax(p.output)});
    report.operations = p.operations;
    summary_.answers++;
    // A challenge judges final answers only: nothing but one completes it.
    bool finish =
        p.final ||
        (!challenge_ && opts_.finish_confidence && p.confidence >= *opts_.finish_confidence) ||
        (!challenge_ && meets_exit_rule(opts_.exit_rule, p.confidence, p.entropy));
    // A challenge hands out judged (final, matching) answers only.
    if ((!challenge_ || p.final) && improves(p.exit_index, p.confidence, summary_.best)) {
      Event e{a->peer,
              p.exit_index,
              std::move(p.output),
              p.confidence,
              p.entropy,
              p.operations,
              p.final,
              false,
              elapsed(),
              -1};
      e.predicted = argmax(e.output);
      summary_.best = e;
      queue_.push_back(std::move(e));
    }
    if (p.final) {
      a->keep_open = p.stream_open && a->kept;
      drop(a, Outcome::kAnswered,
           fmt::format("final answer from exit {}", a->last_exit.value_or(0)), false);
    }
    if (finish) complete(Status::ok());
    changed_.notify_all();
  }

  // Decides a peer's outcome and stops using it. With `cancel` (it may still be working) a
  // Cancel goes out once the request is on the wire; either way our side is half-closed and
  // the stream is drained for cancel_grace, then reset.
  void drop(const std::shared_ptr<Attempt>& a, Outcome outcome, std::string detail,
            bool cancel = true) {
    if (!a->active()) return;
    a->state = Attempt::State::kClosing;
    PeerReport& report = summary_.peers[a->report_index];
    report.outcome = outcome;
    report.detail = std::move(detail);
    if (outcome != Outcome::kAnswered && outcome != Outcome::kFinishedEarly) {
      spdlog::debug("request {}: dropped peer {}: {} ({})", id_, a->peer.to_string(),
                    outcome_name(outcome), report.detail);
    }
    bool can_write = outcome != Outcome::kVanished;
    // Answers it gave that we took are confirmed; a peer that lied, vanished or stalled gets
    // none (its provider then counts the work unpaid).
    if (opts_.send_receipts && can_write && a->accepted > 0 &&
        (outcome == Outcome::kAnswered || outcome == Outcome::kFinishedEarly)) {
      report.receipt_operations = a->last_operations;
      if (opts_.observer && opts_.observer->delivers_receipts()) {
        // The observer records it and carries it to the provider (batched, after its ledger
        // commits): nothing more goes on this stream.
        protocol::Receipt r = make_receipt(*a);
        stats_->receipts_sent++;
        stats_->receipted_operations += r.operations;
        opts_.observer->on_receipt_sent(a->peer, std::move(r));
      } else {
        a->receipt_due = true;
      }
    }
    if (opts_.observer) opts_.observer->on_peer_done(service_, id_, report);
    a->cancel_wanted = cancel && can_write;
    if (a->keep_open && !a->cancel_wanted && can_write && a->request_written) {
      // The provider answered finally and keeps the stream open: it goes back to the pool,
      // after the receipt when one is due on it.
      if (a->receipt_due) {
        asio::co_spawn(ex_, keep_after_receipt(shared_from_this(), a), asio::detached);
      } else {
        pool_->give_back(a->kept);
      }
    } else {
      a->keep_open = false;
      if (a->request_written && can_write) {
        asio::co_spawn(ex_, close_writes_of(shared_from_this(), a), asio::detached);
      }
      asio::co_spawn(ex_, reap(ex_, a, opts_.cancel_grace), asio::detached);
    }
    changed_.notify_all();
  }

  static awaitable<void> close_writes_of(std::shared_ptr<Request> self,
                                         std::shared_ptr<Attempt> a) {
    co_await self->close_writes(a);
  }

  static awaitable<void> keep_after_receipt(std::shared_ptr<Request> self,
                                            std::shared_ptr<Attempt> a) {
    std::shared_ptr<KeptStream> k = a->kept;
    co_await self->write_receipt(a, *k->stream);
    self->pool_->give_back(std::move(k));
  }

  awaitable<void> close_writes(const std::shared_ptr<Attempt>& a) {
    std::shared_ptr<p2p::Stream> stream = a->stream;  // the reader may drop its handle meanwhile
    if (a->writes_closed || !stream) co_return;
    a->writes_closed = true;
    if (a->cancel_wanted) {
      Bytes cancel = protocol::encode(protocol::InferClientMessage{protocol::InferCancel{id_}});
      Status st = co_await p2p::write_length_prefixed(*stream, cancel);
      if (st.is_ok()) count_sent(cancel.size());
    }
    co_await write_receipt(a, *stream);
    (void)co_await stream->close_write();
  }

  // The Receipt for a peer's accepted answers. Unsigned: the Noise session authenticates both
  // ends; swap/ signs ledger checkpoints.
  protocol::Receipt make_receipt(const Attempt& a) const {
    protocol::Receipt r;
    r.request_id = id_;
    r.service_id = service_.bytes();
    r.operations = a.last_operations;
    r.server = a.peer.bytes();
    r.signer = host_.id().bytes();
    r.unix_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
    return r;
  }

  // The receipt drop() left to us, on the request's stream (an observer that delivers receipts
  // itself took it already).
  awaitable<void> write_receipt(const std::shared_ptr<Attempt>& a, p2p::Stream& stream) {
    if (!a->receipt_due) co_return;
    a->receipt_due = false;
    // One more turn of the executor: the caller, woken by the answer, runs before the receipt
    // is encoded and written.
    co_await asio::post(ex_, asio::use_awaitable);
    protocol::Receipt r = make_receipt(*a);
    // The observer records the receipt before it leaves: the provider never holds a receipt we
    // lack, and one we hold that it never got is settled at the next Open (the requester's copy
    // decides).
    if (opts_.observer) opts_.observer->on_receipt_sent(a->peer, r);
    Bytes frame = protocol::encode(protocol::InferClientMessage{r});
    Status st = co_await p2p::write_length_prefixed(stream, frame);
    if (!st.is_ok()) {
      spdlog::debug("request {}: receipt to {} not sent: {}", id_, a->peer.to_string(),
                    st.to_string());
      co_return;
    }
    count_sent(frame.size());
    stats_->receipts_sent++;
    stats_->receipted_operations += r.operations;
  }

  // A peer that never closes its side after we are done with it must not hold the stream.
  static awaitable<void> reap(asio::any_io_executor ex, std::shared_ptr<Attempt> a,
                              std::chrono::milliseconds grace) {
    asio::steady_timer t(ex, grace);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!a->reader_done && a->stream) a->stream->reset();
  }

  void complete(Status st) {
    if (done_) return;
    done_ = true;
    summary_.status = std::move(st);
    for (auto& a : attempts_) {
      if (a->active()) drop(a, Outcome::kFinishedEarly, "the request was complete");
    }
    record_completion();
    changed_.notify_all();
    if (completed_input_) opts_.on_complete(*std::exchange(completed_input_, {}), summary_);
  }

  void record_completion() {
    SessionStats& s = *stats_;
    s.completed++;
    switch (summary_.status.code()) {
      case Code::kOk:
        s.ok++;
        break;
      case Code::kTimeout:
        s.timeouts++;
        break;
      case Code::kNotFound:
        s.not_found++;
        break;
      case Code::kUnavailable:
        s.unavailable++;
        break;
      case Code::kCancelled:
        s.cancelled++;
        break;
      default:
        s.other_errors++;
        break;
    }
    for (const PeerReport& r : summary_.peers) {
      auto i = static_cast<size_t>(r.outcome);
      if (i < s.peer_outcomes.size()) s.peer_outcomes[i]++;
    }
  }

  std::string best_text() const {
    if (!summary_.best) return "no answer arrived";
    const Event& b = *summary_.best;
    return fmt::format("best so far: exit {} from {} with confidence {:.3f}", b.exit_index,
                       b.local ? std::string("the local prefix") : b.peer.to_string(),
                       b.confidence);
  }

  std::string peers_text() const {
    std::string peers;
    for (const PeerReport& r : summary_.peers) {
      if (!peers.empty()) peers += "; ";
      peers += fmt::format("{}: {}", r.peer.to_string(), outcome_name(r.outcome));
      if (!r.detail.empty()) peers += fmt::format(" ({})", r.detail);
    }
    return peers;
  }

  // Where the time went: which peers were asked and how they did, or that no provider was
  // found in time.
  Status timeout_status() const {
    std::string where;
    if (!summary_.peers.empty()) {
      where = fmt::format("; asked [{}]", peers_text());
    } else if (lookup_in_flight_) {
      where = "; the provider lookup had not finished";
    } else {
      where = "; no peer was asked";
    }
    return Status::timeout(
        fmt::format("request {} for service {}: no final answer within {} ms ({}){}", id_,
                    service_.to_base58(), opts_.deadline.count(), best_text(), where));
  }

  Status exhausted_status(bool budget_spent) const {
    if (attempts_.empty()) {
      if (!lookup_error_.is_ok()) {
        return lookup_error_.with_context(
            fmt::format("finding providers of service {}", service_.to_base58()));
      }
      return Status::not_found(
          fmt::format("no provider of service {} is known", service_.to_base58()));
    }
    std::string peers = peers_text();
    return Status::unavailable(
        fmt::format("request {} for service {}: all {} peers tried failed{} [{}] ({})", id_,
                    service_.to_base58(), attempts_.size(),
                    budget_spent ? fmt::format(", max_attempts ({}) reached", opts_.max_attempts)
                                 : std::string(", no other provider known"),
                    peers, best_text()));
  }

  asio::any_io_executor ex_;
  p2p::Host& host_;
  ProviderSource providers_;
  core::Multihash service_;
  SessionOptions opts_;
  uint64_t id_;
  core::Tensor input_;
  RequestInput body_;  // what the request carries besides input_ (its input field unused)
  uint32_t start_stage_ = 0;
  Bytes request_frame_;
  SteadyTime started_, deadline_;
  p2p::Signal changed_;

  std::vector<std::shared_ptr<Attempt>> attempts_;
  std::vector<identity::PeerId> tried_;
  struct BusyPeer {
    identity::PeerId peer;
    SteadyTime retry_at;
  };
  std::vector<BusyPeer> busy_;  // by retry time
  bool lookup_in_flight_ = false;
  bool providers_exhausted_ = false;
  Status lookup_error_;
  std::deque<Event> queue_;
  bool done_ = false;
  Summary summary_;
  std::shared_ptr<SessionStats> stats_;
  std::shared_ptr<InFlight> in_flight_;
  std::shared_ptr<StreamPool> pool_;  // keep-alive streams of the session; null: none
  protocol::InferRequest request_;    // with pool_: what request_frame_ encodes
  Bytes follow_up_frame_;             // the request on a kept stream (follow_up_frame)
  int follow_up_same_ = 0;            // which of its first request's fields it left out
  std::optional<Challenge> challenge_;
  std::optional<core::Tensor> completed_input_;  // for opts_.on_complete
  bool use_selector_ = true;                     // off for a challenge aimed at one peer
  std::vector<identity::PeerId> passed_over_;    // left out by the selector
  std::vector<identity::PeerId> spare_;          // ranked by the selector, not asked yet
};

}  // namespace detail

InferStream::~InferStream() {
  r_->finish_by_caller();
}

awaitable<std::optional<Event>> InferStream::next() {
  return r_->next();
}
void InferStream::finish() {
  r_->finish_by_caller();
}
bool InferStream::done() const {
  return r_->done();
}
uint64_t InferStream::request_id() const {
  return r_->id();
}
const Summary& InferStream::summary() const {
  return r_->summary();
}

namespace {
uint64_t random_first_request_id() {
  std::random_device rd;
  uint64_t v = (uint64_t{rd()} << 32) ^ rd();
  return (v >> 2) | 1;  // below 2^62: a session never wraps; never 0
}
}  // namespace

Session::Session(asio::any_io_executor io, p2p::Host& host, ProviderSource providers,
                 core::Multihash service, SessionOptions opts, std::shared_ptr<InFlight> in_flight)
    : io_(std::move(io)),
      host_(host),
      providers_(std::move(providers)),
      service_(std::move(service)),
      opts_(std::move(opts)),
      first_request_id_(random_first_request_id()),
      next_request_id_(first_request_id_),
      in_flight_(std::move(in_flight)) {
  if (opts_.keep_alive) pool_ = std::make_shared<detail::StreamPool>(io_, opts_.keep_alive_idle);
}

size_t Session::idle_streams() const {
  return pool_ ? pool_->idle_count() : 0;
}

Session::~Session() {
  if (pool_) asio::post(io_, [pool = pool_] { pool->close_all(); });
}

std::shared_ptr<InferStream> Session::infer(core::Tensor input) {
  auto r =
      std::make_shared<detail::Request>(io_, host_, providers_, service_, opts_, next_request_id_++,
                                        std::move(input), stats_, in_flight_, pool_);
  r->start();
  return std::make_shared<InferStream>(std::move(r));
}

std::shared_ptr<InferStream> Session::infer(RequestInput body) {
  core::Tensor input = std::move(body.input);
  auto r =
      std::make_shared<detail::Request>(io_, host_, providers_, service_, opts_, next_request_id_++,
                                        std::move(input), stats_, in_flight_, pool_);
  r->set_body(std::move(body));
  r->start();
  return std::make_shared<InferStream>(std::move(r));
}

std::shared_ptr<InferStream> Session::challenge(core::Tensor input, Challenge c) {
  ProviderSource source = providers_;
  SessionOptions opts = opts_;
  const bool targeted = c.peer.has_value();
  if (targeted) {
    source = fixed_providers({*c.peer});
    opts.fanout = 1;
    opts.candidates = 0;
  }
  auto r = std::make_shared<detail::Request>(io_, host_, std::move(source), service_,
                                             std::move(opts), next_request_id_++, std::move(input),
                                             stats_, in_flight_, pool_, std::move(c));
  if (targeted) r->skip_selector();
  r->start();
  return std::make_shared<InferStream>(std::move(r));
}

awaitable<Result<Event>> Session::infer_once(core::Tensor input) {
  std::shared_ptr<InferStream> s = infer(std::move(input));
  while (co_await s->next()) {
  }
  const Summary& sum = s->summary();
  if (!sum.status.is_ok()) co_return sum.status;
  if (!sum.best) co_return Status::internal("request completed without an answer");
  co_return *sum.best;
}

}  // namespace idn::client
