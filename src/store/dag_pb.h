// dag-pb (codec 0x70): the protobuf node format UnixFS files and directories are stored in.
// Encoding is the spec's canonical form (Links, field 2, before Data, field 1; link fields
// Hash, Name, Tsize in order), so the same node always hashes to the same CID as in IPFS.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/cid.h"
#include "core/status.h"

namespace idn::store {

struct PbLink {
  core::Cid cid;
  std::optional<std::string> name;  // UnixFS: "" for file chunks, the entry name in directories
  std::optional<uint64_t> tsize;    // cumulative size of the linked DAG (block bytes)
};

struct PbNode {
  std::vector<PbLink> links;
  std::optional<Bytes> data;  // UnixFS Data message
};

// Canonical dag-pb bytes. Links are written in the order given (callers sort directory links
// with sort_links_by_name, as the spec's `prepare` step does).
Bytes encode_dag_pb(const PbNode& node);

// Strict decoding per the dag-pb spec: only fields 1 and 2 in PBNode (links first, at most one
// Data) and 1..3 in PBLink (in order, no duplicates, Hash required and a valid CID).
// Errors: Corruption naming what is wrong.
Result<PbNode> decode_dag_pb(ByteView block);

// Stable sort by the UTF-8 bytes of the name (missing name sorts as ""), as dag-pb requires.
void sort_links_by_name(std::vector<PbLink>& links);

}  // namespace idn::store
