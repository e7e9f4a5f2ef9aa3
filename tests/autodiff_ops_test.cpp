// Finite-difference checks of every gradient rule except conv2d and the pools
// (autodiff_conv_test.cpp), on the IR directly. Shapes include broadcasting.
#include <catch2/catch.hpp>

#include "grad_check_util.h"

using namespace kiln::testing;
using kiln::ir::HostTensor;
using kiln::ir::Shape;

TEST_CASE("gradient of mul with broadcasting", "[autodiff]") {
  check_gradients(R"(func @f(%a: f64[2,3], %b: f64[3]) -> f64[2,3] {
  %0 = mul(%a, %b) : f64[2,3]
  return %0
})",
                  {random_f64({2, 3}, 1), random_f64({3}, 2)});
}
