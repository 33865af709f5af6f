#include "plot.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace idn::cli {
namespace {

std::string gp_quote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

}  // namespace

Status plot_png(const PlotSpec& spec, const std::filesystem::path& png) {
  auto base = png;
  base.replace_extension();
  auto data_path = base.string() + ".dat";
  auto script_path = base.string() + ".gp";
  {
    std::ofstream d(data_path);
    for (const auto& s : spec.series) {
      d << "# " << s.title << "\n";
      for (size_t i = 0; i < s.x.size(); ++i) d << s.x[i] << " " << s.y[i] << "\n";
      d << "\n\n";
    }
    if (!d) return Status::io_error("cannot write " + data_path);
  }
  {
    std::ofstream g(script_path);
    g << "set terminal pngcairo size 900,600 font 'sans,11'\n"
      << "set output " << gp_quote(png.string()) << "\n"
      << "set title " << gp_quote(spec.title) << "\n"
      << "set xlabel " << gp_quote(spec.xlabel) << "\n"
      << "set ylabel " << gp_quote(spec.ylabel) << "\n"
      << "set grid\nset key bottom right\n"
      << (spec.logx ? "set logscale x\n" : "") << (spec.logy ? "set logscale y\n" : "") << "plot ";
    for (size_t i = 0; i < spec.series.size(); ++i) {
      if (i) g << ", ";
      g << gp_quote(data_path) << " index " << i << " using 1:2 with "
        << (spec.series[i].lines ? "linespoints pt 7 ps 0.6" : "points pt 7 ps 1.8") << " title "
        << gp_quote(spec.series[i].title);
    }
    g << "\n";
    if (!g) return Status::io_error("cannot write " + script_path);
  }
  std::string cmd = "gnuplot " + gp_quote(script_path) + " 2>&1";
  int rc = std::system(cmd.c_str());
  if (rc != 0)
    return Status::unavailable("gnuplot failed (exit " + std::to_string(rc) +
                               "); install it with scripts/setup (package gnuplot-nox)");
  return Status::ok();
}

}  // namespace idn::cli
