// A hosted service that is not an engine::Engine package (a DDNN section: a device's packed
// on-device form, the cloud section): it turns one InferRequest into the progress to send.
// InferServer::add_handler hosts it beside the engine-backed services; the server keeps doing
// what it does for every request (service lookup, admission, validation before running,
// deadlines, the WorkSink's WorkDone and the stats), and calls the handler where it would run
// an engine. Torch-free interface: node/ registers handlers.
//
// Threading: the server calls validate() and run() on its io executor, one call at a time, in
// the turn that read the request. run() must therefore be quick (a DDNN section takes
// microseconds on a device, about a millisecond in the cloud); a handler never blocks on I/O.
#pragma once

#include <vector>

#include "core/status.h"
#include "protocol/messages.h"

namespace idn::serve {

class Handler {
 public:
  virtual ~Handler() = default;
  // Whether the request fits this service (inputs, views, sample, stages). An error is
  // answered kInvalidRequest with its message; nothing runs.
  virtual Status validate(const protocol::InferRequest& req) const = 0;
  // The answers for a valid request, in order, the last one final; each error-free, with
  // cumulative operations (the last one's is what the WorkSink hears). An error Status is
  // answered kInternal.
  virtual Result<std::vector<protocol::InferProgress>> run(const protocol::InferRequest& req) = 0;
};

}  // namespace idn::serve
