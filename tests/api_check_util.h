// Compile-time checks that Kiln's own declarations of a C library's API (runtime/cuda/*_api.h)
// match the library's header: ours_t<T> spells a header type the way Kiln declares it, through
// pointers, const and function types; each check file says, with KILN_OURS, how its enums and
// handle structs map.
#pragma once

namespace kiln::testing::api_check {

template <class T>
struct Ours {
  using type = T;
};
template <class T>
using ours_t = typename Ours<T>::type;
template <class T>
struct Ours<T*> {
  using type = ours_t<T>*;
};
template <class T>
struct Ours<const T> {
  using type = const ours_t<T>;
};
template <class R, class... Args>
struct Ours<R(Args...)> {
  using type = ours_t<R>(ours_t<Args>...);
};

}  // namespace kiln::testing::api_check

// The header's type `theirs` is Kiln's `ours` (at namespace scope, outside any namespace).
#define KILN_OURS(theirs, ours)                   \
  template <>                                     \
  struct kiln::testing::api_check::Ours<theirs> { \
    using type = ours;                            \
  };
