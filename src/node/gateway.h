// The HTTP gateway (issue 20): IDN inference for any language with an HTTP client, on the
// node's HTTP endpoint (docs/openapi.json describes it):
//   GET  /idn/v1/services/{id}        the service descriptor and its current providers
//   POST /idn/v1/services/{id}/infer  a JSON or PNG/JPEG body (gateway/request.h) run through
//        a client session of this node (fan-out, finish, reroute) like `idn infer`; one JSON
//        answer, or with Accept: text/event-stream every improving answer as an event, then a
//        final one. A client that closes the connection finishes the session (peers get Cancel).
//   GET  /idn/v1/openapi.json         the OpenAPI description
// Bad requests get a 4xx with {"error":"<one line>"}.
// Threading: the routes run on the node's io thread, like everything of the node.
#pragma once

#include "node/http.h"

namespace idn::node {

class Node;

// Adds the gateway's routes to `http`; `node` must outlive the server.
void add_gateway_routes(HttpServer& http, Node& node);

}  // namespace idn::node
