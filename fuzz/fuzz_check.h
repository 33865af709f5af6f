// CHECK(cond) for the fuzz targets: a property that must hold for every input. A failure
// aborts, which libFuzzer reports as a crash with the input that caused it.
#pragma once

#include <cstdlib>

#define CHECK(cond)            \
  do {                         \
    if (!(cond)) std::abort(); \
  } while (0)
