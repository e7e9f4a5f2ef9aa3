// Hands the helpers kiln_prebuild_helpers compiled when Kiln was built (blob.S.in embeds them) to
// codegen's HelperObjects when libkiln loads. Part of libkiln only, not of the generator.
#include <string_view>

#include "kiln/codegen/helper_objects.h"

extern "C" const char kiln_prebuilt_helpers_begin[];
extern "C" const char kiln_prebuilt_helpers_end[];

namespace {

// A blob that does not parse (it cannot, unless the build went wrong) adds nothing: Kiln then
// compiles every helper, as it does on a CPU the blob was not made for.
[[maybe_unused]] const bool registered = kiln::codegen::HelperObjects::get().add_prebuilt(
    std::string_view(kiln_prebuilt_helpers_begin,
                     static_cast<size_t>(kiln_prebuilt_helpers_end - kiln_prebuilt_helpers_begin)));

}  // namespace
