#include "serve/infer_server.h"

#include <pthread.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "engine/engine.h"
#include "model/package.h"
#include "rpc/dispatcher.h"

namespace idn::serve {

namespace asio = p2p::asio;
using p2p::awaitable;
using protocol::InferError;
using protocol::InferProgress;
using Clock = std::chrono::steady_clock;

namespace {

// What a hosted service needs at run time. Immutable after add_service but for the engines,
// each used only by its worker.
struct Service {
  explicit Service(core::Multihash i) : id(std::move(i)) {}
  core::Multihash id;
  // Set for a service served by a Handler: no engines, no spec, never queued.
  std::shared_ptr<Handler> handler;
  ise::ServiceDescriptor descriptor;
  model::ModelSpec spec;
  std::vector<std::unique_ptr<engine::Engine>> engines;  // [worker]
  // The io thread's own engine for inline runs: loaded (by a worker) once the model has proved
  // cheap, so a big model never costs the memory. Installed under Core::mu, then io-only.
  std::unique_ptr<engine::Engine> io_engine;
  bool io_engine_loading = false;  // guarded by Core::mu
  bool io_engine_failed = false;   // guarded by Core::mu: do not try again
  std::filesystem::path package_dir;
  engine::EngineOptions engine_options;
  engine::Backend backend = engine::Backend::kTorch;  // what engines[0] chose at load
  std::string backend_reason;
  // Per-sample shape of each stage's output: what a request resuming at stage s+1 carries.
  std::vector<std::vector<int64_t>> stage_out_shapes;
  std::atomic<bool> removed{false};
  // Engines' stage counters, copied by each worker after every run (read without touching an
  // engine another thread may be using).
  mutable std::mutex runs_mu;
  std::vector<std::vector<int64_t>> runs;  // [worker, then the io thread][stage]
  double ms_per_request = 0;               // moving average of run time; guarded by Core::mu
};

// How a request ended, for the stats.
enum class Outcome {
  kCompleted,
  kCancelled,
  kBusy,
  kRefused,
  kInvalid,
  kUnknown,
  kDeadline,
  kFailed
};

struct Job {
  explicit Job(asio::any_io_executor io) : ready(std::move(io)) {}
  std::shared_ptr<Service> service;
  core::Tensor input;  // one sample, without the batch dimension
  engine::ExitRule rule;
  int start_stage = 0;
  std::optional<int> stop_after;
  Clock::time_point received, deadline;
  // Set once, by whoever decides the final answer first (worker, io side, stop()). Workers
  // drop a finished job's sample at the next stage.
  std::atomic<bool> finished{false};
  bool queued = false;   // guarded by Core::mu
  bool running = false;  // counted in stats.running; guarded by Core::mu
  // io thread only: progress waiting to be sent, and the wake-up of the request's handler.
  std::deque<InferProgress> outbox;
  p2p::Signal ready;
};

InferProgress error_progress(InferError e, std::string message) {
  InferProgress p;
  p.final = true;
  p.error = e;
  p.error_message = std::move(message);
  return p;
}

bool batchable(const Job& j) {
  return !j.stop_after.has_value();
}

std::optional<engine::ExitRule> map_rule(const protocol::ExitRule& r, std::string& why) {
  using protocol::ExitCriterion;
  auto check_threshold = [&]() {
    if (!std::isfinite(r.threshold) || r.threshold < 0.0f || r.threshold > 1.0f) {
      why = fmt::format("exit rule {}: threshold {} is outside [0, 1]",
                        protocol::exit_criterion_name(r.criterion), r.threshold);
      return false;
    }
    return true;
  };
  switch (r.criterion) {
    case ExitCriterion::kModelDefault:
      return engine::ExitRule{};
    case ExitCriterion::kEntropy:
      if (!check_threshold()) return std::nullopt;
      return engine::ExitRule{model::ExitCriterion::kEntropy, r.threshold};
    case ExitCriterion::kConfidence:
      if (!check_threshold()) return std::nullopt;
      return engine::ExitRule{model::ExitCriterion::kConfidence, r.threshold};
    case ExitCriterion::kLastExit:
      // Confidence never exceeds 1: no early exit meets this, the last exit always answers.
      return engine::ExitRule{model::ExitCriterion::kConfidence, 2.0};
  }
  why = fmt::format("exit rule: unknown criterion {}", static_cast<int>(r.criterion));
  return std::nullopt;
}

bool shape_matches(const std::vector<int64_t>& got, const std::vector<int64_t>& per_sample) {
  if (got == per_sample) return true;
  return got.size() == per_sample.size() + 1 && got[0] == 1 &&
         std::equal(per_sample.begin(), per_sample.end(), got.begin() + 1);
}

}  // namespace

struct InferServer::Core {
  Core(asio::any_io_executor ex, ServerConfig c) : io(std::move(ex)), cfg(std::move(c)) {
    if (cfg.workers == 0) cfg.workers = 1;
    if (cfg.max_batch == 0) cfg.max_batch = 1;
    if (cfg.cancel_poll <= std::chrono::milliseconds(0))
      cfg.cancel_poll = std::chrono::milliseconds(1);
  }

  asio::any_io_executor io;
  // The thread running `io` (set by the first request): progress made there, by an inline
  // run or by the handler itself, is handed over directly instead of posted.
  std::atomic<std::thread::id> io_thread{};
  ServerConfig cfg;

  mutable std::mutex mu;  // guards everything below up to the io-only part
  std::condition_variable work;
  std::unordered_map<core::Multihash, std::shared_ptr<Service>> services;
  std::deque<std::shared_ptr<Job>> queue;
  bool stopping = false;
  ServerStats stats;
  double ms_per_request = 0;  // moving average of run time per request, all services
  std::atomic<bool> stop_flag{false};

  std::mutex join_mu;  // serialises stop()'s join
  std::vector<std::thread> workers;

  // io thread only: requests in flight, for the cancellation sweep.
  struct Active {
    rpc::InferContext* ctx;
    std::shared_ptr<Job> job;
  };
  std::vector<Active> active;
  bool sweeping = false;

  // --- final answers ---

  void count(Outcome o) {
    switch (o) {
      case Outcome::kCompleted:
        stats.completed++;
        break;
      case Outcome::kCancelled:
        stats.cancelled++;
        break;
      case Outcome::kBusy:
        stats.busy++;
        break;
      case Outcome::kRefused:
        stats.refused++;
        break;
      case Outcome::kInvalid:
        stats.invalid++;
        break;
      case Outcome::kUnknown:
        stats.unknown_service++;
        break;
      case Outcome::kDeadline:
        stats.deadline_exceeded++;
        break;
      case Outcome::kFailed:
        stats.failed++;
        break;
    }
  }

  // Hands a progress to the job's handler (any thread). On the io thread directly: an inline
  // run's answers are then written in the same turn as the request was read, so the
  // protocol echo, the answers and the FIN leave in one packet.
  void deliver(const std::shared_ptr<Job>& job, InferProgress p) {
    auto hand_over = [job, p = std::move(p)]() mutable {
      job->outbox.push_back(std::move(p));
      job->ready.notify_all();
    };
    if (std::this_thread::get_id() == io_thread.load(std::memory_order_relaxed)) {
      hand_over();
    } else {
      asio::post(io, std::move(hand_over));
    }
  }

  // Decides the final answer of `job` unless someone already did; takes it out of the queue.
  // Returns false when the job was already finished (the caller's answer is dropped).
  bool finish(const std::shared_ptr<Job>& job, InferProgress p, Outcome o) {
    if (job->finished.exchange(true)) return false;
    {
      std::lock_guard lk(mu);
      count(o);
      // Leaves the gauge before the answer can reach the requester, so whoever hears the final
      // answer never sees the request still running.
      if (job->running) {
        job->running = false;
        stats.running--;
      }
      if (job->queued) {
        job->queued = false;
        auto it = std::find(queue.begin(), queue.end(), job);
        if (it != queue.end()) queue.erase(it);
      }
    }
    p.final = true;
    deliver(job, std::move(p));
    return true;
  }

  uint32_t retry_after_ms_locked() const {
    double per = ms_per_request > 0 ? ms_per_request : 10.0;
    double waiting = static_cast<double>(queue.size() + stats.running + 1);
    double ms = per * waiting / static_cast<double>(cfg.workers);
    return static_cast<uint32_t>(std::clamp(std::ceil(ms), 1.0, 60000.0));
  }

  // --- validation (io thread) ---

  Status validate(const protocol::InferRequest& req, const Service& svc) const {
    const int n_stages = static_cast<int>(svc.spec.stages.size());
    if (req.start_stage >= static_cast<uint32_t>(n_stages))
      return Status::invalid_argument(fmt::format(
          "start_stage {} is outside the model's stages 0..{}", req.start_stage, n_stages - 1));
    if (req.stop_after_stage) {
      if (*req.stop_after_stage >= static_cast<uint32_t>(n_stages))
        return Status::invalid_argument(
            fmt::format("stop_after_stage {} is outside the model's stages 0..{}",
                        *req.stop_after_stage, n_stages - 1));
      if (*req.stop_after_stage < req.start_stage)
        return Status::invalid_argument(fmt::format("stop_after_stage {} precedes start_stage {}",
                                                    *req.stop_after_stage, req.start_stage));
    }
    if (req.start_stage == 0) {
      // Reads only the immutable spec: safe while the worker runs this engine.
      return svc.engines[0]->check_input(req.input, false);
    }
    const auto& want = svc.stage_out_shapes[req.start_stage - 1];
    if (req.input.dtype != core::DType::kF32)
      return Status::invalid_argument(
          fmt::format("activation entering stage {} must be F32, got {}", req.start_stage,
                      core::dtype_name(req.input.dtype)));
    if (!shape_matches(req.input.shape, want))
      return Status::invalid_argument(
          fmt::format("activation entering stage {} has shape {}; model '{}' produces {} there",
                      req.start_stage, core::shape_string(req.input.shape), svc.spec.name,
                      core::shape_string(want)));
    IDN_RETURN_IF_ERROR(req.input.validate());
    for (float v : req.input.f32())
      if (!std::isfinite(v)) return Status::invalid_argument("activation contains NaN or infinity");
    return Status::ok();
  }

  // --- the io side of one request ---

  // Hosts `svc` under `id`; requests queued for a service it replaces get kUnknownService.
  // Unavailable once stopping.
  Status install(const core::Multihash& id, std::shared_ptr<Service> svc) {
    std::vector<std::shared_ptr<Job>> orphans;
    {
      std::lock_guard lk(mu);
      if (stopping) return Status::unavailable("the inference server is stopped");
      auto& slot = services[id];
      if (slot) {
        slot->removed = true;
        for (const auto& j : queue)
          if (j->service == slot) orphans.push_back(j);
      }
      slot = std::move(svc);
    }
    for (const auto& j : orphans)
      finish(j,
             error_progress(InferError::kUnknownService,
                            "service " + ise::service_id_text(id) + " was replaced; retry"),
             Outcome::kUnknown);
    return Status::ok();
  }

  void start_sweep(const std::shared_ptr<Core>& self) {
    if (sweeping) return;
    sweeping = true;
    asio::co_spawn(io, sweep(self), asio::detached);
  }

  // The rpc layer exposes cancellation as a flag; one timer looks at every request in flight
  // and wakes the handlers whose requester cancelled. It ends when nothing is in flight.
  static awaitable<void> sweep(std::shared_ptr<Core> self) {
    asio::steady_timer t(self->io);
    while (!self->active.empty()) {
      t.expires_after(self->cfg.cancel_poll);
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      for (auto& a : self->active)
        if (a.ctx->cancelled() && !a.job->finished) a.job->ready.notify_all();
    }
    self->sweeping = false;
  }

  static awaitable<void> serve(std::shared_ptr<Core> self, rpc::InferContext& ctx) {
    const auto received = Clock::now();
    self->io_thread.store(std::this_thread::get_id(), std::memory_order_relaxed);
    const auto& req = ctx.request();
    {
      std::lock_guard lk(self->mu);
      self->stats.requests++;
    }
    // Answers with one final error progress without queuing.
    auto refusal = [&](InferError e, std::string msg, Outcome o) {
      {
        std::lock_guard lk(self->mu);
        self->count(o);
      }
      spdlog::debug("infer request {} from {}: {} ({})", req.request_id, ctx.peer().to_string(),
                    protocol::infer_error_name(e), msg);
      return error_progress(e, std::move(msg));
    };

    auto id = core::Multihash::from_bytes(req.service_id);
    if (!id.ok()) {
      InferProgress p =
          refusal(InferError::kInvalidRequest,
                  "service_id is not a multihash: " + id.status().message(), Outcome::kInvalid);
      (void)co_await ctx.send(std::move(p));
      co_return;
    }
    std::shared_ptr<Service> svc;
    bool stopping;
    {
      std::lock_guard lk(self->mu);
      stopping = self->stopping;
      auto it = self->services.find(*id);
      if (it != self->services.end()) svc = it->second;
    }
    if (stopping) {
      InferProgress p =
          refusal(InferError::kCancelled, "the server is stopping", Outcome::kCancelled);
      (void)co_await ctx.send(std::move(p));
      co_return;
    }
    if (!svc) {
      InferProgress p = refusal(InferError::kUnknownService,
                                "service " + ise::service_id_text(*id) + " is not hosted here",
                                Outcome::kUnknown);
      (void)co_await ctx.send(std::move(p));
      co_return;
    }
    if (self->cfg.admission) {
      Decision d = self->cfg.admission->admit(ctx.peer(), *id, req.request_id);
      if (!d.serve) {
        InferProgress p = refusal(InferError::kRefused,
                                  d.reason.empty() ? "refused by this server's strategy" : d.reason,
                                  Outcome::kRefused);
        (void)co_await ctx.send(std::move(p));
        co_return;
      }
    }
    if (svc->handler) {
      co_await serve_handler(self, ctx, *id, *svc->handler, received);
      co_return;
    }
    std::string why;
    auto rule = map_rule(req.exit_rule, why);
    Status valid = rule ? self->validate(req, *svc) : Status::invalid_argument(why);
    if (!valid.is_ok()) {
      InferProgress p = refusal(InferError::kInvalidRequest, valid.message(), Outcome::kInvalid);
      (void)co_await ctx.send(std::move(p));
      co_return;
    }

    auto job = std::make_shared<Job>(self->io);
    job->service = svc;
    job->input = req.input;
    const auto& in_shape = req.start_stage == 0 ? svc->spec.inputs[0].shape
                                                : svc->stage_out_shapes[req.start_stage - 1];
    job->input.shape = in_shape;  // drop an optional leading batch dimension of 1
    job->rule = *rule;
    job->start_stage = static_cast<int>(req.start_stage);
    if (req.stop_after_stage) job->stop_after = static_cast<int>(*req.stop_after_stage);
    job->received = received;
    job->deadline = received + (req.deadline_ms > 0 ? std::chrono::milliseconds(req.deadline_ms)
                                                    : self->cfg.default_deadline);
    bool run_inline = false;
    {
      std::unique_lock lk(self->mu);
      if (self->queue.size() >= self->cfg.max_queue) {
        uint32_t retry = self->retry_after_ms_locked();
        self->count(Outcome::kBusy);
        lk.unlock();
        InferProgress p = error_progress(
            InferError::kBusy, fmt::format("{} requests already queued; retry in about {} ms",
                                           self->cfg.max_queue, retry));
        p.retry_after_ms = retry;
        (void)co_await ctx.send(std::move(p));
        co_return;
      }
      if (self->can_inline_locked(*svc)) {
        run_inline = true;
        job->running = true;
        self->stats.running++;
        self->stats.inlined++;
      } else {
        job->queued = true;
        self->queue.push_back(job);
        self->work.notify_one();
      }
    }

    self->active.push_back({&ctx, job});
    self->start_sweep(self);
    if (run_inline) {
      // Answers land in the outbox directly (deliver() on the io thread): the loop below
      // sends them once this returns.
      std::vector<std::shared_ptr<Job>> batch{job};
      self->run_and_account(self->cfg.workers, batch);
    }
    // What reached the requester, for the WorkSink: the last answer's cumulative operations.
    WorkDone work{ctx.peer(), *id, req.request_id, 0, 0, false, {}};
    size_t answers_sent = 0;
    for (;;) {
      bool done = false;
      while (!job->outbox.empty() && !done) {
        InferProgress p = std::move(job->outbox.front());
        job->outbox.pop_front();
        done = p.final;
        const bool is_answer = p.error == InferError::kNone;
        const uint64_t ops = p.operations;
        const uint32_t exit = p.exit_index;
        Status st = co_await ctx.send(std::move(p));
        if (st.is_ok() && is_answer) {
          ++answers_sent;
          work.operations = ops;
          work.exit_index = exit;
          work.answered = done;
        }
        if (!st.is_ok()) {
          // The requester went away: stop the work; count it as cancelled unless it was over.
          InferProgress gone =
              error_progress(InferError::kCancelled, "stream failed: " + st.message());
          self->finish(job, std::move(gone), Outcome::kCancelled);
          done = true;
        }
      }
      if (done) break;
      if (!job->finished) {
        if (ctx.cancelled()) {
          self->finish(job, error_progress(InferError::kCancelled, "cancelled by the requester"),
                       Outcome::kCancelled);
        } else if (Clock::now() >= job->deadline) {
          auto ms =
              std::chrono::duration_cast<std::chrono::milliseconds>(job->deadline - job->received);
          self->finish(
              job,
              error_progress(InferError::kDeadlineExceeded,
                             fmt::format("deadline of {} ms passed before an answer", ms.count())),
              Outcome::kDeadline);
        }
      }
      if (!job->outbox.empty()) continue;
      // A finished job's final is already posted: wait for it without a timer.
      co_await job->ready.wait(job->finished ? p2p::SteadyTime::max() : job->deadline);
    }
    auto it = std::find_if(self->active.begin(), self->active.end(),
                           [&](const Active& a) { return a.ctx == &ctx; });
    if (it != self->active.end()) self->active.erase(it);
    if (answers_sent > 0) {
      work.sent_at = Clock::now();
      {
        std::lock_guard lk(self->mu);
        self->stats.operations += work.operations;
      }
      if (self->cfg.work_sink) self->cfg.work_sink->on_work(work);
    }
  }

  // A requester's Receipt (io thread): counted, then handed to the sink.
  // A Handler's request, after admission: validated, run here on the io thread, its answers
  // sent and its work reported as an engine's would be.
  static awaitable<void> serve_handler(std::shared_ptr<Core> self, rpc::InferContext& ctx,
                                       const core::Multihash& id, Handler& handler,
                                       Clock::time_point received) {
    const auto& req = ctx.request();
    auto answer_error = [&](InferError e, std::string msg, Outcome o) -> awaitable<void> {
      {
        std::lock_guard lk(self->mu);
        self->count(o);
      }
      (void)co_await ctx.send(error_progress(e, std::move(msg)));
    };
    std::string why;
    Status valid =
        map_rule(req.exit_rule, why) ? handler.validate(req) : Status::invalid_argument(why);
    if (!valid.is_ok()) {
      co_await answer_error(InferError::kInvalidRequest, valid.message(), Outcome::kInvalid);
      co_return;
    }
    auto out = handler.run(req);
    if (out.ok() && (out->empty() || !out->back().final))
      out = Status::internal("the handler's last answer is not final");
    if (!out.ok()) {
      spdlog::warn("service {}: {}", ise::service_id_text(id), out.status().to_string());
      co_await answer_error(InferError::kInternal, out.status().message(), Outcome::kFailed);
      co_return;
    }
    const auto deadline =
        received + (req.deadline_ms > 0 ? std::chrono::milliseconds(req.deadline_ms)
                                        : self->cfg.default_deadline);
    if (Clock::now() >= deadline) {
      co_await answer_error(InferError::kDeadlineExceeded, "deadline passed before an answer",
                            Outcome::kDeadline);
      co_return;
    }
    WorkDone work{ctx.peer(), id, req.request_id, 0, 0, false, {}};
    bool sent = false;
    Outcome outcome = Outcome::kCompleted;
    for (auto& p : *out) {
      p.request_id = req.request_id;
      const uint64_t ops = p.operations;
      const uint32_t exit = p.exit_index;
      const bool last = p.final;
      if (Status st = co_await ctx.send(std::move(p)); !st.is_ok()) {
        outcome = Outcome::kCancelled;
        break;
      }
      sent = true;
      work.operations = ops;
      work.exit_index = exit;
      work.answered = last;
    }
    {
      std::lock_guard lk(self->mu);
      self->count(outcome);
      if (sent) self->stats.operations += work.operations;
    }
    if (sent) {
      work.sent_at = Clock::now();
      if (self->cfg.work_sink) self->cfg.work_sink->on_work(work);
    }
  }

  Status on_receipt(const identity::PeerId& from, const protocol::Receipt& r) {
    {
      std::lock_guard lk(mu);
      stats.receipts++;
      stats.receipted_operations += r.operations;
    }
    if (!cfg.receipt_sink) return Status::ok();
    return cfg.receipt_sink->on_receipt(from, r);
  }

  // --- workers ---

  void worker_main(size_t w) {
    for (;;) {
      std::vector<std::shared_ptr<Job>> batch;
      {
        std::unique_lock lk(mu);
        work.wait(lk, [&] { return stopping || !queue.empty(); });
        if (stopping) return;
        auto first = queue.front();
        queue.pop_front();
        first->queued = false;
        batch.push_back(first);
        if (batchable(*first)) {
          for (auto it = queue.begin(); it != queue.end() && batch.size() < cfg.max_batch;) {
            const Job& j = **it;
            if (j.service == first->service && j.start_stage == first->start_stage &&
                batchable(j)) {
              (*it)->queued = false;
              batch.push_back(*it);
              it = queue.erase(it);
            } else {
              ++it;
            }
          }
        }
        stats.running += batch.size();
        for (auto& j : batch) j->running = true;
      }
      const std::shared_ptr<Service> svc = batch[0]->service;
      run_and_account(w, batch);
      maybe_load_io_engine(svc);
    }
  }

  // Runs `batch` (counted in stats.running) on worker `lane`'s engines, or on the io thread's
  // when lane == cfg.workers, and updates the time averages.
  void run_and_account(size_t lane, std::vector<std::shared_ptr<Job>>& batch) {
    const std::vector<std::shared_ptr<Job>> taken = batch;  // run() drops finished jobs
    const std::shared_ptr<Service> svc = batch[0]->service;
    auto t0 = Clock::now();
    const size_t ran = run(lane, batch);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    std::lock_guard lk(mu);
    for (const auto& j : taken) {  // normally finish() already took each one off the gauge
      if (j->running) {
        j->running = false;
        stats.running--;
      }
    }
    if (ran > 0) {
      double per = ms / static_cast<double>(ran);
      auto avg = [per](double& a) { a = a == 0 ? per : 0.8 * a + 0.2 * per; };
      avg(ms_per_request);
      avg(svc->ms_per_request);
    }
  }

  bool cheap_locked(const Service& svc) const {
    return cfg.inline_below.count() > 0 && !cfg.before_stage && svc.ms_per_request > 0 &&
           svc.ms_per_request * 1000.0 < static_cast<double>(cfg.inline_below.count());
  }

  // Whether a request for `svc` may run on the io thread now (see ServerConfig::inline_below):
  // the model is cheap, its io engine is loaded and nothing waits for a worker.
  bool can_inline_locked(const Service& svc) const {
    return !stop_flag && queue.empty() && svc.io_engine && cheap_locked(svc);
  }

  // Worker thread: gives a service that proved cheap its io-thread engine (once).
  void maybe_load_io_engine(const std::shared_ptr<Service>& svc) {
    {
      std::lock_guard lk(mu);
      if (svc->io_engine || svc->io_engine_loading || svc->io_engine_failed || svc->removed ||
          !cheap_locked(*svc))
        return;
      svc->io_engine_loading = true;
    }
    auto e = engine::Engine::load(svc->package_dir, svc->engine_options);
    std::lock_guard lk(mu);
    svc->io_engine_loading = false;
    if (!e.ok()) {
      spdlog::warn("service {}: no inline engine ({}); requests stay on the workers",
                   ise::service_id_text(svc->id), e.status().to_string());
      svc->io_engine_failed = true;
      return;
    }
    svc->io_engine = std::move(*e);
  }

  // Whether `job` may run (further); finishes it when not. Worker thread.
  bool still_wanted(const std::shared_ptr<Job>& job) {
    if (job->finished) return false;
    if (stop_flag) {
      finish(job, error_progress(InferError::kCancelled, "the server is stopping"),
             Outcome::kCancelled);
      return false;
    }
    if (job->service->removed) {
      finish(job,
             error_progress(
                 InferError::kUnknownService,
                 "service " + ise::service_id_text(job->service->id) + " is no longer hosted here"),
             Outcome::kUnknown);
      return false;
    }
    if (Clock::now() >= job->deadline) {
      auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(job->deadline - job->received);
      finish(job,
             error_progress(InferError::kDeadlineExceeded,
                            fmt::format("deadline of {} ms passed before an answer", ms.count())),
             Outcome::kDeadline);
      return false;
    }
    return true;
  }

  // Runs what is still wanted of `batch`; returns how many requests reached the engine.
  size_t run(size_t lane, std::vector<std::shared_ptr<Job>>& batch) {
    std::erase_if(batch, [&](const std::shared_ptr<Job>& j) { return !still_wanted(j); });
    if (batch.empty()) return 0;
    Service& svc = *batch[0]->service;
    engine::Engine& eng = lane < svc.engines.size() ? *svc.engines[lane] : *svc.io_engine;
    if (batch.size() > 1) {
      std::lock_guard lk(mu);
      stats.batches++;
      stats.batched_requests += batch.size();
    }
    if (batch[0]->stop_after)
      run_split(svc, eng, batch[0]);
    else
      run_progressive(svc, eng, batch);
    auto runs = eng.stage_runs();
    std::lock_guard lk(svc.runs_mu);
    svc.runs[lane] = std::move(runs);
    return batch.size();
  }

  void fail_unfinished(const std::vector<std::shared_ptr<Job>>& batch, const Status& st) {
    for (const auto& j : batch)
      if (!j->finished)
        finish(j, error_progress(InferError::kInternal, "inference failed: " + st.message()),
               Outcome::kFailed);
  }

  void run_split(Service& svc, engine::Engine& eng, const std::shared_ptr<Job>& job) {
    const int last = *job->stop_after;
    if (cfg.before_stage)
      for (int s = job->start_stage; s <= last; ++s) cfg.before_stage(svc.id, s, 1);
    if (!still_wanted(job)) return;
    core::Tensor x = job->input;
    x.shape.insert(x.shape.begin(), 1);
    auto out = eng.run_stages(x, job->start_stage - 1, last);
    if (!out.ok()) return fail_unfinished({job}, out.status());
    if (!out->shape.empty() && out->shape[0] == 1) out->shape.erase(out->shape.begin());
    InferProgress p;
    p.exit_index = static_cast<uint32_t>(last);
    p.output = std::move(*out);
    uint64_t ops = 0;
    for (int s = job->start_stage; s <= last; ++s) ops += svc.spec.stages[s].flops;
    p.operations = ops;
    finish(job, std::move(p), Outcome::kCompleted);
  }

  void run_progressive(Service& svc, engine::Engine& eng,
                       const std::vector<std::shared_ptr<Job>>& batch) {
    const size_t n = batch.size();
    core::Tensor inputs{core::DType::kF32, batch[0]->input.shape, {}};
    inputs.dtype = batch[0]->input.dtype;
    inputs.shape.insert(inputs.shape.begin(), static_cast<int64_t>(n));
    inputs.bytes.reserve(batch[0]->input.bytes.size() * n);
    std::vector<engine::ExitRule> rules;
    for (const auto& j : batch) {
      inputs.bytes.insert(inputs.bytes.end(), j->input.bytes.begin(), j->input.bytes.end());
      rules.push_back(j->rule);
    }
    int hooked_stage = -1;
    auto keep_going = [&](size_t i, int stage) {
      if (cfg.before_stage && stage != hooked_stage) {
        hooked_stage = stage;
        cfg.before_stage(svc.id, stage, n);
      }
      return still_wanted(batch[i]);
    };
    auto on_exit = [&](size_t i, const engine::ExitEvent& ev) {
      const auto& job = batch[i];
      if (job->finished) return false;
      InferProgress p;
      p.exit_index = static_cast<uint32_t>(ev.exit_index);
      p.output = core::Tensor::f32({static_cast<int64_t>(ev.probs.size())}, ev.probs);
      p.confidence = static_cast<float>(ev.confidence);
      p.entropy = static_cast<float>(ev.entropy);
      p.operations = static_cast<uint64_t>(ev.flops);
      if (ev.exited) {
        finish(job, std::move(p), Outcome::kCompleted);
        return true;
      }
      deliver(job, std::move(p));
      return true;
    };
    auto r =
        eng.infer_batch_progressive(inputs, batch[0]->start_stage - 1, rules, on_exit, keep_going);
    if (!r.ok()) return fail_unfinished(batch, r.status());
    fail_unfinished(batch, Status::internal("the model ended without an answer"));
  }
};

Result<engine::ExitRule> engine_rule(const protocol::ExitRule& rule) {
  std::string why;
  auto r = map_rule(rule, why);
  if (!r) return Status::invalid_argument(why);
  return *r;
}

InferServer::InferServer(asio::any_io_executor io, ServerConfig cfg)
    : core_(std::make_shared<Core>(std::move(io), std::move(cfg))) {
  for (size_t w = 0; w < core_->cfg.workers; ++w)
    core_->workers.emplace_back([c = core_.get(), w] {
      pthread_setname_np(pthread_self(), ("idn-infer-" + std::to_string(w)).substr(0, 15).c_str());
      c->worker_main(w);
    });
}

InferServer::~InferServer() {
  stop();
}

Status InferServer::add_service(const core::Multihash& id, const ise::ServiceDescriptor& d,
                                const std::filesystem::path& package_dir) {
  IDN_RETURN_IF_ERROR(ise::validate(d).with_context("service descriptor"));
  auto svc = std::make_shared<Service>(id);
  svc->descriptor = d;
  engine::EngineOptions opts;
  opts.threads = core_->cfg.engine_threads;
  opts.backend = core_->cfg.engine_backend;
  // A cpu engine's buffers are sized for its largest call: the server's batches.
  opts.cpu_max_batch = static_cast<int>(std::clamp<size_t>(core_->cfg.max_batch, 1, 256));
  for (size_t w = 0; w < core_->cfg.workers; ++w) {
    IDN_ASSIGN_OR_RETURN(auto e, engine::Engine::load(package_dir, opts));
    // The first engine decides the backend (auto probes and times both); the other workers and
    // the inline engine take that decision, so all run the same backend and the probe runs once.
    if (w == 0) opts.backend = e->backend();
    svc->engines.push_back(std::move(e));
  }
  svc->spec = svc->engines[0]->spec();
  svc->backend = svc->engines[0]->backend();
  svc->backend_reason = svc->engines[0]->backend_reason();
  const auto& spec = svc->spec;
  const std::string where =
      "service " + ise::service_id_text(id) + " (" + package_dir.string() + ")";
  if (d.inputs.size() != 1 || d.inputs[0].dtype != spec.inputs[0].dtype ||
      d.inputs[0].shape != spec.inputs[0].shape)
    return Status::invalid_argument(fmt::format(
        "{}: the descriptor's inputs do not match the package, which takes one {} input {}", where,
        core::dtype_name(spec.inputs[0].dtype), core::shape_string(spec.inputs[0].shape)));
  if (d.exits.size() != spec.exits.size())
    return Status::invalid_argument(
        fmt::format("{}: the descriptor lists {} exits, the package has {}", where, d.exits.size(),
                    spec.exits.size()));
  for (size_t e = 0; e < d.exits.size(); ++e)
    if (d.exits[e].stage != spec.exits[e].stage || d.exits[e].criterion != spec.exits[e].criterion)
      return Status::invalid_argument(fmt::format(
          "{}: descriptor exit {} ('{}') is at stage {} ({}); the package's is at stage {} ({})",
          where, e, d.exits[e].name, d.exits[e].stage, model::criterion_name(d.exits[e].criterion),
          spec.exits[e].stage, model::criterion_name(spec.exits[e].criterion)));
  std::string hash = ise::model_hash_of(model::to_json_text(spec));
  if (d.model_hash != hash)
    return Status::invalid_argument(
        fmt::format("{}: the descriptor names model hash {}, the package's model.json hashes to {}",
                    where, d.model_hash, hash));
  for (const auto& st : spec.stages) {
    const auto* layer = spec.layer(st.output);
    if (!layer)
      return Status::invalid_argument(
          fmt::format("{}: stage '{}' outputs unknown layer '{}'", where, st.name, st.output));
    svc->stage_out_shapes.push_back(layer->out_shape);
  }
  // One row per worker and one for the io thread's inline runs.
  svc->runs.assign(core_->cfg.workers + 1, std::vector<int64_t>(spec.stages.size(), 0));
  svc->package_dir = package_dir;
  svc->engine_options = opts;

  IDN_RETURN_IF_ERROR(core_->install(id, svc));
  spdlog::info("serving {} ({}) with {} worker(s), engine backend {}", ise::service_id_text(id),
               spec.name, core_->cfg.workers, svc->backend_reason);
  return Status::ok();
}

Status InferServer::add_handler(const core::Multihash& id, std::shared_ptr<Handler> handler) {
  if (!handler) return Status::invalid_argument("add_handler: no handler");
  auto svc = std::make_shared<Service>(id);
  svc->handler = std::move(handler);
  IDN_RETURN_IF_ERROR(core_->install(id, svc));
  spdlog::info("serving {} with a handler", ise::service_id_text(id));
  return Status::ok();
}

void InferServer::remove_service(const core::Multihash& id) {
  std::vector<std::shared_ptr<Job>> orphans;
  {
    std::lock_guard lk(core_->mu);
    auto it = core_->services.find(id);
    if (it == core_->services.end()) return;
    it->second->removed = true;
    for (const auto& j : core_->queue)
      if (j->service == it->second) orphans.push_back(j);
    core_->services.erase(it);
  }
  for (const auto& j : orphans)
    core_->finish(
        j,
        error_progress(InferError::kUnknownService,
                       "service " + ise::service_id_text(id) + " is no longer hosted here"),
        Outcome::kUnknown);
}

bool InferServer::hosts(const core::Multihash& id) const {
  std::lock_guard lk(core_->mu);
  return core_->services.count(id) > 0;
}

std::vector<core::Multihash> InferServer::services() const {
  std::lock_guard lk(core_->mu);
  std::vector<core::Multihash> out;
  for (const auto& [id, s] : core_->services) out.push_back(id);
  return out;
}

void InferServer::attach(rpc::Dispatcher& d) {
  // Holds the core, not `this`: a request in flight never outlives what it uses.
  d.on_infer_request([core = core_](rpc::InferContext& ctx) { return Core::serve(core, ctx); });
  d.on_receipt([core = core_](const identity::PeerId& from,
                              const protocol::Receipt& r) -> awaitable<Status> {
    co_return core->on_receipt(from, r);
  });
}

awaitable<void> InferServer::handle(rpc::InferContext& ctx) {
  return Core::serve(core_, ctx);
}

ServerStats InferServer::stats() const {
  std::lock_guard lk(core_->mu);
  ServerStats s = core_->stats;
  s.queued = core_->queue.size();
  return s;
}

std::vector<int64_t> InferServer::stage_runs(const core::Multihash& id) const {
  std::shared_ptr<Service> svc;
  {
    std::lock_guard lk(core_->mu);
    auto it = core_->services.find(id);
    if (it == core_->services.end()) return {};
    svc = it->second;
  }
  std::lock_guard lk(svc->runs_mu);
  std::vector<int64_t> sum(svc->spec.stages.size(), 0);
  for (const auto& r : svc->runs)
    for (size_t s = 0; s < r.size() && s < sum.size(); ++s) sum[s] += r[s];
  return sum;
}

std::optional<InferServer::BackendInfo> InferServer::backend(const core::Multihash& id) const {
  std::lock_guard lk(core_->mu);
  auto it = core_->services.find(id);
  if (it == core_->services.end() || it->second->handler) return std::nullopt;
  return BackendInfo{it->second->backend, it->second->backend_reason};
}

void InferServer::stop() {
  std::vector<std::shared_ptr<Job>> queued;
  {
    std::lock_guard lk(core_->mu);
    if (!core_->stopping) {
      core_->stopping = true;
      core_->stop_flag = true;
      queued.assign(core_->queue.begin(), core_->queue.end());
    }
  }
  core_->work.notify_all();
  for (const auto& j : queued)
    core_->finish(j, error_progress(InferError::kCancelled, "the server is stopping"),
                  Outcome::kCancelled);
  std::lock_guard jl(core_->join_mu);
  for (auto& t : core_->workers)
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
}

}  // namespace idn::serve
