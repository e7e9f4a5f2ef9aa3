// Whether this build runs under AddressSanitizer or ThreadSanitizer, decided once for the library
// and its tests: gcc defines __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__ and clang answers
// __has_feature(address_sanitizer / thread_sanitizer) (cmake/sanitizers.cmake's KILN_SANITIZE
// defines nothing of its own).
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

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif

}  // namespace kiln::ir
