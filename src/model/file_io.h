// Whole-file reads and crash-safe whole-file writes for package files (model.json, weights):
// a reader never sees a half-written file, because writes go to a temp file that is renamed.
#pragma once

#include <cstdint>
#include <filesystem>

#include "core/bytes.h"
#include "core/status.h"

namespace idn::model {

// Reads the whole file. NotFound names the path; LimitExceeded if it is larger than max_bytes.
Result<Bytes> read_file(const std::filesystem::path& path, uint64_t max_bytes = uint64_t{1} << 34);

// Writes `data` to `<path>.tmp.<pid>.<n>`, fsyncs it, renames it over `path`, then fsyncs the
// directory so the rename itself survives a crash.
Status write_file_atomic(const std::filesystem::path& path, ByteView data);

}  // namespace idn::model
