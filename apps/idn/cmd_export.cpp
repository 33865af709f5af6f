// idn export onnx: a model package's stages and exit heads as ONNX graphs plus manifest.json
// (onnx/onnx_export.h), optionally published with the package: the ONNX directory is stored
// and pinned in the node's store and the package's service descriptor names its CID
// ("onnx":{"cid":...}), so a browser that knows the service ID fetches the ONNX form by CID.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "ise/model_host.h"
#include "ise/service_descriptor.h"
#include "onnx/ddnn_export.h"
#include "onnx/onnx_export.h"
#include "store/blockstore.h"
#include "store/importer.h"

namespace idn::cli {
namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string model_dir, out;
  bool publish = false;
  std::string data_dir = default_data_dir();
  std::string description;
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[N";
  for (int64_t d : shape) s += "," + std::to_string(d);
  return s + "]";
}

std::string values_text(const std::vector<onnx::GraphValue>& vs) {
  std::string s;
  for (const auto& v : vs) s += (s.empty() ? "" : ", ") + v.name + " " + shape_text(v.shape);
  return s;
}

int run_export_onnx(const ExportArgs& a) {
  const bool ddnn = onnx::is_ddnn_package(a.model_dir);
  if (ddnn && a.publish)
    return report(Status::unsupported(
        "--publish of a DDNN package's ONNX form: a DDNN is published per section (`idn ddnn "
        "publish`), whose descriptors do not name an ONNX CID yet; export without --publish"));
  auto ex =
      ddnn ? onnx::export_ddnn_onnx(a.model_dir, a.out) : onnx::export_onnx(a.model_dir, a.out);
  if (!ex.ok()) return report(ex.status());
  for (const auto& g : ex->graphs)
    std::printf("wrote %s  %zu bytes  %s -> %s\n", g.file.c_str(), g.bytes.size(),
                values_text(g.inputs).c_str(), values_text(g.outputs).c_str());
  std::printf("manifest %s\n", (fs::path(a.out) / onnx::kManifestFile).c_str());
  if (!a.publish) return 0;

  auto bs = store::Blockstore::open(fs::path(a.data_dir) / "store");
  if (!bs.ok()) return report(bs.status());
  std::vector<std::string> files{onnx::kManifestFile};
  for (const auto& g : ex->graphs) files.push_back(g.file);
  auto imported = store::import_directory_entries(a.out, files, **bs);
  if (!imported.ok()) return report(imported.status().with_context("import " + a.out));
  if (Status st = (*bs)->pin(imported->cid); !st.is_ok()) return report(st);
  auto pub = ise::store_publication(**bs, a.model_dir, a.description, imported->cid);
  if (!pub.ok()) return report(pub.status());
  if (Status st = ise::add_hosted(a.data_dir, pub->service_id); !st.is_ok()) return report(st);
  std::printf("onnx %s\nmodel %s\nservice %s\n", imported->cid.to_string().c_str(),
              pub->model_cid.to_string().c_str(), ise::service_id_text(pub->service_id).c_str());
  std::fprintf(stderr,
               "stored and pinned in %s with the package; its service descriptor names the ONNX "
               "CID; `idn node --data-dir %s` hosts and provides it\n",
               a.data_dir.c_str(), a.data_dir.c_str());
  return 0;
}

}  // namespace

void register_export(CLI::App& app) {
  auto* exp = app.add_subcommand("export", "Export a model package to another format");
  exp->require_subcommand(1);
  auto a = std::make_shared<ExportArgs>();
  auto* cmd = exp->add_subcommand(
      "onnx",
      "Write each stage and exit head of a model package as an ONNX graph (opset 13, batch "
      "dimension N) plus manifest.json (files, sha256s, input/output names and shapes, exit "
      "rule, model hash). Stage 0 takes the raw input (it applies the package's "
      "preprocessing); each exit outputs logits and probs = softmax(logits / temperature), the "
      "probabilities IDN's engine reports. A DDNN package (ddnn.json) becomes one graph per "
      "device section (8-bit pixels in; local scores and +-1 / packed features out), the local "
      "aggregator (MP, AP) and the cloud section, with a manifest of format idn-onnx-ddnn.");
  cmd->add_option("MODEL_DIR", a->model_dir, "Model package or DDNN package directory")->required();
  cmd->add_option("--out", a->out, "Output directory: new, empty, or a previous export's")
      ->required();
  cmd->add_flag("--publish", a->publish,
                "Also store and pin the ONNX directory and the package (as `idn publish` does) "
                "with a service descriptor that names the ONNX CID; prints the CIDs and the "
                "service ID");
  cmd->add_option("--data-dir", a->data_dir, "The node's data directory (with --publish)")
      ->capture_default_str();
  cmd->add_option("--description", a->description, "Service description (with --publish)");
  cmd->callback([a] { run_or_exit(run_export_onnx(*a)); });
}

}  // namespace idn::cli
