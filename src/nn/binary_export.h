// Exports a device section built from binary ConvP / FC blocks (nn/binary_blocks.h) to the
// bit-packed on-device form (ondevice/section.h): weight signs packed, each batch norm + sign
// folded into a threshold by evaluating the block's own eval-mode batch norm on every integer
// pre-activation. Reads the modules only; call from the thread that owns them.
#pragma once

#include <variant>
#include <vector>

#include "core/status.h"
#include "nn/binary_blocks.h"
#include "ondevice/section.h"

namespace idn::nn {

using SectionBlock = std::variant<ConvP, Fc>;

// `blocks` run in order on an input of `input` shape; only the last may be an FC block without
// activation (its scores). Every block must have binary weights. With InputKind::kPixels the
// torch blocks must see pixel values 0..255 as floats (then every sum is an exact integer and
// the packed section equals the blocks in eval mode bit for bit); with kBits, +-1 values.
Result<ondevice::Section> export_section(const std::vector<SectionBlock>& blocks,
                                         ondevice::InputKind kind, ondevice::Shape input);

}  // namespace idn::nn
