// JAX-style function transforms built on GradientTape:
//
//   auto poly = [](const k::Tensor& x) { return 10.f * x * x - 5.f * x + 4.f; };
//   k::Tensor d = k::grad(poly)(k::constant(2.f));                   // 35
//   auto [value, dx] = k::value_and_grad(poly)(k::constant(2.f));    // 34, 35
//   k::Tensor d2 = k::grad(k::grad(poly))(k::constant(2.f));         // 20
//   auto [dx, dy] = k::grad(f, {0, 1})(x, y);                        // std::vector<Tensor>
//
// The transformed function takes tensors (anything convertible to Tensor) and returns the
// gradient of f's result, which must be a floating scalar (as in JAX; differentiate a sum for
// more), with respect to the arguments chosen by index. Transforms compose, and work eagerly
// and inside kiln::function.
#pragma once

#include <array>
#include <cstddef>
#include <source_location>
#include <utility>
#include <vector>

#include "kiln/frontend/core/gradient_tape.h"
#include "kiln/frontend/core/tensor.h"

namespace kiln {

namespace detail {

// Checks that f's result is a floating scalar and the argnums are in range (ValueError,
// TypeError otherwise).
void check_grad_call(const Tensor& result, std::span<const int> argnums, size_t arity,
                     const char* transform, const std::source_location& loc);

template <class F, size_t N, size_t... I>
Tensor call_with(F& f, const std::array<Tensor, N>& args, std::index_sequence<I...>) {
  return f(args[I]...);
}

// Runs f on the arguments under a tape watching the chosen ones; returns f's result and the
// gradients (zeros for an argument the result does not depend on, as JAX).
template <class F, class... Args>
std::pair<Tensor, std::vector<Tensor>> value_and_grads(F& f, const std::vector<int>& argnums,
                                                       const char* transform,
                                                       const std::source_location& loc,
                                                       const Args&... args) {
  std::array<Tensor, sizeof...(Args)> tensors{Tensor(args)...};
  GradientTape tape;
  for (int i : argnums)
    if (i >= 0 && static_cast<size_t>(i) < tensors.size()) tape.watch(tensors[size_t(i)], loc);
  Tensor result = call_with(f, tensors, std::index_sequence_for<Args...>{});
  check_grad_call(result, argnums, tensors.size(), transform, loc);
  std::vector<Tensor> sources;
  for (int i : argnums)
    sources.push_back(tensors[size_t(i)]);
  std::vector<Tensor> grads = tape.gradient(result, std::span<const Tensor>(sources), Tensor(),
                                            UnconnectedGradients::zero, loc);
  return {result, grads};
}

}  // namespace detail

// The gradient of f with respect to argument `argnum`.
template <class F>
auto grad(F f, int argnum = 0, std::source_location loc = std::source_location::current()) {
  return [f = std::move(f), argnum, loc](const auto&... args) mutable -> Tensor {
    return detail::value_and_grads(f, {argnum}, "grad", loc, args...).second[0];
  };
}

// The gradients of f with respect to the arguments `argnums`, in that order.
template <class F>
auto grad(F f, std::vector<int> argnums,
          std::source_location loc = std::source_location::current()) {
  return [f = std::move(f), argnums = std::move(argnums), loc](const auto&... args) mutable {
    return detail::value_and_grads(f, argnums, "grad", loc, args...).second;
  };
}

// f's value and its gradient with respect to argument `argnum`.
template <class F>
auto value_and_grad(F f, int argnum = 0,
                    std::source_location loc = std::source_location::current()) {
  return [f = std::move(f), argnum, loc](const auto&... args) mutable {
    auto [value, grads] = detail::value_and_grads(f, {argnum}, "value_and_grad", loc, args...);
    return std::pair<Tensor, Tensor>(value, grads[0]);
  };
}

// f's value and its gradients with respect to the arguments `argnums`.
template <class F>
auto value_and_grad(F f, std::vector<int> argnums,
                    std::source_location loc = std::source_location::current()) {
  return [f = std::move(f), argnums = std::move(argnums), loc](const auto&... args) mutable {
    return detail::value_and_grads(f, argnums, "value_and_grad", loc, args...);
  };
}

}  // namespace kiln
