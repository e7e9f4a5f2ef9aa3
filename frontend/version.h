// Kiln's version. CMake reads the numbers from this file, so it is the one place they live.
#pragma once

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0

namespace kiln {

// The version of the libkiln in use, "MAJOR.MINOR.PATCH" (may differ from the macros above if
// a program was compiled against other headers than the library it runs with).
const char* version();

}  // namespace kiln
