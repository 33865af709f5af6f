// Line/scatter plots as PNG for the CLI (trade-off curves), drawn by gnuplot (gnuplot-nox,
// installed by scripts/setup) from a data file we write next to the image.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"

namespace idn::cli {

struct PlotSeries {
  std::string title;
  std::vector<double> x, y;
  bool lines = true;  // false: points only
};

struct PlotSpec {
  std::string title, xlabel, ylabel;
  std::vector<PlotSeries> series;
  bool logx = false, logy = false;  // log-scale axes (every value on them must be > 0)
};

Status plot_png(const PlotSpec& spec, const std::filesystem::path& png);

}  // namespace idn::cli
