#include "core/denormals.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace idn::core {

#if defined(__SSE__)
DenormalsAreZero::DenormalsAreZero() : saved_(_mm_getcsr()) {
  _mm_setcsr(saved_ | 0x8040u);  // FTZ (bit 15): results; DAZ (bit 6): inputs
}
DenormalsAreZero::~DenormalsAreZero() {
  _mm_setcsr(saved_);
}
#else
DenormalsAreZero::DenormalsAreZero() = default;
DenormalsAreZero::~DenormalsAreZero() = default;
#endif

}  // namespace idn::core
