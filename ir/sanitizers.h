// Whether this build runs under AddressSanitizer, decided once for the library and its tests:
// gcc defines __SANITIZE_ADDRESS__ and clang answers __has_feature(address_sanitizer) for
// -fsanitize=address (cmake/sanitizers.cmake's KILN_SANITIZE defines nothing of its own).
#pragma once

namespace kiln::ir {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

}  // namespace kiln::ir
