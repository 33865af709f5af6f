// The serving side of /idn/infer/1.0.0: executes InferRequests for the services this node
// hosts, on worker threads (or, for a cheap model and an idle server, on the io thread) with one
// engine::Engine per service and worker, and streams the progress (one InferProgress per exit
// reached, the last one final) back on the io executor.
// Torch-free header: node/ includes it. Accounting (ComputeSwap) plugs in through
// serve/accounting.h: an Admission decides before a request is queued (a refusal is answered
// kRefused with the reason), a WorkSink hears the operations each answered request cost, a
// ReceiptSink gets the requesters' Receipts.
//
// Threading: handle()/attach() and everything touching an rpc::InferContext run on the io
// executor `io`; model execution runs on the worker threads, or inline on `io` (inline_below);
// results are posted back to `io`. add_service/remove_service/hosts/services/stats/stage_runs/stop
// are thread-safe.
//
// Split execution (dissertation §7, "stages on peers"): start_stage > 0 resumes from the
// activation entering that stage; stop_after_stage = k returns stage k's output activation as
// the single final progress (exit_index = k, confidence 0) and reports no exits on the way: the
// requester that asked for an activation runs its own exits.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "core/multihash.h"
#include "core/status.h"
#include "engine/engine.h"
#include "ise/service_descriptor.h"
#include "p2p/stream.h"
#include "protocol/messages.h"
#include "serve/accounting.h"
#include "serve/handler.h"

namespace idn::rpc {
class Dispatcher;
class InferContext;
}  // namespace idn::rpc

namespace idn::serve {

// The engine's form of a request's exit rule (kLastExit: no early exit meets it).
// Errors: InvalidArgument (threshold outside [0, 1], unknown criterion).
Result<engine::ExitRule> engine_rule(const protocol::ExitRule& rule);

struct ServerConfig {
  size_t workers = 1;     // worker threads; each owns one Engine per hosted service
  size_t max_queue = 64;  // requests waiting beyond this are answered kBusy with retry_after_ms
  std::chrono::milliseconds default_deadline{10000};  // when a request's deadline_ms is 0
  size_t max_batch = 8;    // queued requests for the same service and stage run as one batch
  int engine_threads = 1;  // LibTorch intra-op threads
  // What runs the models (engine::Backend): kAuto takes the faster of the cpu executor and
  // LibTorch where they agree on the package, else LibTorch (engine/engine.h).
  engine::Backend engine_backend = engine::Backend::kAuto;
  // How often the io side looks for requests whose requester cancelled or went away (the
  // rpc layer exposes cancellation as a flag). One timer for all requests in flight.
  std::chrono::milliseconds cancel_poll{5};
  // A request for a service whose recent runs took less than this on average runs on the io
  // thread itself when nothing is queued: that saves two thread hand-offs (the wake-ups cost
  // ~0.1 ms each on a small VM, more than such a model's run) and blocks the io thread only
  // briefly. The io thread gets its own engine, loaded by a worker once the model proved cheap
  // (a big model never costs the extra copy). Zero: always use the workers.
  std::chrono::microseconds inline_below{1000};
  // Called before each stage a batch runs (service, stage, batch size), on a worker thread.
  // For tests (to hold a worker at a known point) and tracing; must not call into the server.
  // While it is set, requests never run on the io thread (a hook that blocks would stall it).
  std::function<void(const core::Multihash& service, int stage, size_t batch)> before_stage;
  // Accounting seams (see serve/accounting.h), all optional. Without an admission every
  // request is admitted; without sinks work and receipts are only counted in ServerStats.
  // Called on the io executor; the server holds them for its lifetime.
  std::shared_ptr<Admission> admission;
  std::shared_ptr<WorkSink> work_sink;
  std::shared_ptr<ReceiptSink> receipt_sink;
};

// Counters since construction. Every request ends in exactly one of completed, cancelled,
// busy, refused, invalid, unknown_service, deadline_exceeded, failed.
struct ServerStats {
  uint64_t requests = 0;
  uint64_t completed = 0;
  uint64_t cancelled = 0;  // by the requester (Cancel, or the stream went away) or by stop()
  uint64_t busy = 0;
  uint64_t refused = 0;  // by the Admission
  uint64_t invalid = 0;
  uint64_t unknown_service = 0;
  uint64_t deadline_exceeded = 0;
  uint64_t failed = 0;                // engine errors (kInternal)
  uint64_t batches = 0;               // engine runs that served more than one request
  uint64_t batched_requests = 0;      // requests served inside those batches
  uint64_t queued = 0;                // waiting now (a gauge)
  uint64_t running = 0;               // executing now (a gauge)
  uint64_t inlined = 0;               // requests run on the io thread (see inline_below)
  uint64_t operations = 0;            // summed WorkDone::operations (work that reached requesters)
  uint64_t receipts = 0;              // Receipts read from requesters
  uint64_t receipted_operations = 0;  // summed Receipt::operations
};

class InferServer {
 public:
  InferServer(boost::asio::any_io_executor io, ServerConfig cfg = {});
  ~InferServer();  // stop()
  InferServer(const InferServer&) = delete;
  InferServer& operator=(const InferServer&) = delete;

  // Serves `id` from the package directory: loads one Engine per worker and checks that the
  // descriptor's input dtype/shape, exits and model hash agree with the package. Replaces a
  // service already hosted under `id` (requests queued for the old one are answered
  // kUnknownService). Reads the package synchronously: call it off the io thread for big models.
  // Errors: from Engine::load (NotFound, Corruption, InvalidArgument...), InvalidArgument,
  // FailedPrecondition after stop().
  Status add_service(const core::Multihash& id, const ise::ServiceDescriptor& d,
                     const std::filesystem::path& package_dir);
  // Serves `id` with a Handler (serve/handler.h) instead of engines: admission, validation,
  // deadlines, work and stats apply as to any service; the handler runs on the io executor.
  // Replaces a service already hosted under `id`. Errors: InvalidArgument (no handler),
  // Unavailable after stop().
  Status add_handler(const core::Multihash& id, std::shared_ptr<Handler> handler);
  // Queued requests for it get kUnknownService; a running one finishes.
  void remove_service(const core::Multihash& id);
  bool hosts(const core::Multihash& id) const;
  std::vector<core::Multihash> services() const;

  // d.on_infer_request(...) and d.on_receipt(...) (counts, then cfg.receipt_sink).
  void attach(rpc::Dispatcher& d);
  // Serves one request to its final progress (what attach installs; tests call it).
  p2p::awaitable<void> handle(rpc::InferContext& ctx);

  ServerStats stats() const;
  // Per-stage executions of `id`'s engines (batches), summed over workers; empty when not
  // hosted.
  std::vector<int64_t> stage_runs(const core::Multihash& id) const;
  // The backend `id`'s engines run on (kTorch or kCpu, see cfg.engine_backend) and why; nullopt
  // when not hosted or served by a Handler.
  struct BackendInfo {
    engine::Backend backend = engine::Backend::kTorch;
    std::string reason;
  };
  std::optional<BackendInfo> backend(const core::Multihash& id) const;

  // Idempotent. Stops taking work, answers queued requests kCancelled ("server stopping"),
  // stops running ones at their next stage and joins the workers. Call it from any thread
  // but a worker's before_stage hook.
  void stop();

  struct Core;

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace idn::serve
