#include "node/gateway.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "client/session.h"
#include "gateway/openapi.h"
#include "gateway/request.h"
#include "ise/service_descriptor.h"
#include "node/model_host.h"
#include "node/node.h"
#include "routing/dht_routing.h"

namespace idn::node {

namespace {

using nlohmann::json;
using p2p::awaitable;

// Providers listed by GET /idn/v1/services/{id}.
constexpr size_t kProvidersListed = 16;

HttpResponse json_response(unsigned status, const json& j) {
  return {status, "application/json", j.dump() + "\n"};
}

// A 4xx/5xx answer: {"error":"<one line>"}.
HttpResponse error_response(unsigned status, std::string_view reason) {
  std::string line(reason);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return json_response(status, json{{"error", line}});
}

unsigned http_status_of(const Status& s) {
  switch (s.code()) {
    case Code::kInvalidArgument:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kTimeout:
      return 504;
    case Code::kUnavailable:
    case Code::kLimitExceeded:
      return 503;
    default:
      return 502;
  }
}

json event_json(const client::Event& ev) {
  json outputs = json::array();
  if (ev.output.dtype == core::DType::kF32) {
    for (float v : ev.output.f32()) outputs.push_back(v);
  }
  return json{{"class", ev.predicted},         {"confidence", ev.confidence},
              {"exit", ev.exit_index},         {"peer", ev.peer.to_string()},
              {"outputs", std::move(outputs)}, {"latency_ms", ev.latency.count() / 1000.0},
              {"final", ev.final_from_peer}};
}

// The service named by the path, with its descriptor (ours or fetched from its providers).
struct Service {
  core::Multihash id;
  ise::ServiceDescriptor descriptor;
};

awaitable<Result<Service>> find_service(Node& node, const HttpRequest& req) {
  auto id = ise::parse_service_id(req.params.at("id"));
  if (!id.ok()) co_return Status::invalid_argument("bad service ID: " + id.status().message());
  auto d = node.models().local_descriptor(*id);
  if (!d.ok()) d = co_await node.models().descriptor(*id);
  if (!d.ok()) {
    if (d.status().code() == Code::kNotFound)
      co_return Status::not_found("unknown service " + ise::service_id_text(*id) +
                                  ": no provider has its descriptor");
    co_return d.status();
  }
  co_return Service{*id, std::move(*d)};
}

// GCC 12 cannot build braced JSON initializers inside coroutines ("array used as initializer"):
// the bodies are built in plain functions.
json service_json(const Service& svc, const std::vector<routing::PeerInfo>& providers) {
  json list = json::array();
  for (const auto& p : providers) {
    json addrs = json::array();
    for (const auto& a : p.addrs) addrs.push_back(a.to_string());
    list.push_back(json{{"peer", p.id.to_string()}, {"addrs", std::move(addrs)}});
  }
  return json{{"service", ise::service_id_text(svc.id)},
              {"descriptor", ise::to_json(svc.descriptor)},
              {"providers", std::move(list)}};
}

std::string error_event(std::string_view why) {
  return json{{"error", std::string(why)}}.dump();
}

awaitable<void> get_service(Node& node, const HttpRequest& req, HttpExchange& ex) {
  auto svc = co_await find_service(node, req);
  if (!svc.ok()) {
    const HttpResponse refused =
        error_response(http_status_of(svc.status()), svc.status().message());
    co_await ex.respond(refused);
    co_return;
  }
  std::vector<routing::PeerInfo> providers;
  if (node.routing()) {
    DhtServiceRouting dht(node.io().get_executor(), *node.routing());
    auto found = co_await dht.find_providers(svc->id, kProvidersListed);
    if (found.ok()) providers = std::move(*found);
  }
  const HttpResponse answer = json_response(200, service_json(*svc, providers));
  co_await ex.respond(answer);
}

// The request's input and options from its body: JSON, or an image with options in the query.
Result<gateway::InferParams> infer_params(const HttpRequest& req, const Service& svc) {
  if (svc.descriptor.inputs.size() != 1)
    return Status::invalid_argument(fmt::format("service {} takes {} inputs; the gateway sends one",
                                                ise::service_id_text(svc.id),
                                                svc.descriptor.inputs.size()));
  const auto& input = svc.descriptor.inputs.front();
  std::string type = req.media_type();
  if (type == "application/json" || type.empty()) return gateway::parse_infer_json(req.body, input);
  if (type == "image/png" || type == "image/jpeg") {
    gateway::InferParams p;
    size_t q = req.target.find('?');
    if (q != std::string::npos)
      IDN_RETURN_IF_ERROR(
          gateway::parse_infer_query(std::string_view(req.target).substr(q + 1), p));
    IDN_ASSIGN_OR_RETURN(p.input, gateway::decode_image_input(req.body, type, input));
    return p;
  }
  return Status::unsupported(
      fmt::format("unsupported content type \"{}\": send application/json, image/png or image/jpeg",
                  type.substr(0, 64)));
}

awaitable<void> infer(Node& node, const HttpRequest& req, HttpExchange& ex) {
  auto svc = co_await find_service(node, req);
  if (!svc.ok()) {
    const HttpResponse refused =
        error_response(http_status_of(svc.status()), svc.status().message());
    co_await ex.respond(refused);
    co_return;
  }
  auto params = infer_params(req, *svc);
  if (!params.ok()) {
    unsigned status = params.status().code() == Code::kUnsupported ? 415 : 400;
    const HttpResponse refused = error_response(status, params.status().message());
    co_await ex.respond(refused);
    co_return;
  }
  client::SessionOptions opts;
  opts.fanout = params->fanout;
  opts.deadline = params->deadline;
  if (!svc->descriptor.outputs.empty()) opts.output_shape = svc->descriptor.outputs.front().shape;
  auto session = node.session(svc->id, std::move(opts));
  auto stream = session->infer(std::move(params->input));
  // Nobody waits for the answer any more: the session cancels the peers' work.
  ex.on_close([weak = std::weak_ptr<client::InferStream>(stream)] {
    if (auto s = weak.lock()) s->finish();
  });
  const bool events = req.accepts_event_stream();
  if (events && !(co_await ex.start_events()).is_ok()) {
    stream->finish();
    co_return;
  }
  while (auto ev = co_await stream->next()) {
    if (!events) continue;
    const std::string data = event_json(*ev).dump();
    if (!(co_await ex.send_event("progress", data)).is_ok()) {
      stream->finish();
      co_return;
    }
  }
  const client::Summary& sum = stream->summary();
  if (ex.closed()) co_return;
  // Timeout keeps the best answer so far: it is still an answer, marked incomplete.
  if (sum.best && (sum.status.is_ok() || sum.status.code() == Code::kTimeout)) {
    json j = event_json(*sum.best);
    j["complete"] = sum.status.is_ok();
    const std::string data = j.dump();
    const HttpResponse answer = json_response(200, j);
    if (events)
      co_await ex.send_event("final", data);
    else
      co_await ex.respond(answer);
    co_return;
  }
  std::string why = sum.status.message();
  // The service is known (we have its descriptor): no provider now is a 503, not a 404.
  unsigned status = sum.status.code() == Code::kNotFound ? 503 : http_status_of(sum.status);
  const std::string data = error_event(why);
  const HttpResponse refused = error_response(status, why);
  if (events)
    co_await ex.send_event("error", data);
  else
    co_await ex.respond(refused);
}

}  // namespace

void add_gateway_routes(HttpServer& http, Node& node) {
  http.route("GET", "/idn/v1/services/{id}", [&node](const HttpRequest& req, HttpExchange& ex) {
    return get_service(node, req, ex);
  });
  http.route(
      "POST", "/idn/v1/services/{id}/infer",
      [&node](const HttpRequest& req, HttpExchange& ex) { return infer(node, req, ex); },
      gateway::kMaxInferBody);
  http.route("/idn/v1/openapi.json", [] {
    return HttpResponse{200, "application/json", std::string(gateway::openapi_json())};
  });
}

}  // namespace idn::node
