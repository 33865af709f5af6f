// The node's own web page (src/node/web/index.html, built into the binary): served at / on the
// HTTP address. It shows the node's peers, services and metrics and runs a live demo through
// the gateway. Thread-safe.
#pragma once

#include <string_view>

namespace idn::node {

std::string_view node_page_html();

}  // namespace idn::node
