// The IR text form: prints a Function so that ir::parse reads it back to the same text.
//
//   func @poly(%x: f32[4], %w: f32[2,2]) -> (f32[4], f32[2,2]) {
//     %0 = mul(%x, %x) : f32[4]
//     %1 = constant() {value = dense<f32[]: 10.0>} : f32[]
//     %2 = mul(%0, %1) : f32[4]  scope "dense_1/matmul"
//     %3, %4 = split(%x) {axis = 0, sizes = [2, 2]} : f32[2], f32[2]
//     %5 = add(%w, %w) : f32[2,2]  scope "s" loc "file.cpp":12:5
//     return %2, %5
//     update %w = %5
//   }
//
// A function-valued attribute (a scan's `body`) is not printed inside `{...}`: it follows its
// node's line, indented, as `NAME func @f(...) -> ... {...}`, its nodes able to name only its own
// parameters:
//
//     %6, %7 = scan(%h0, %xs) {carries = 1, length = 3, reverse = false, ...} : f32[2], f32[3,2]
//       body func @step(%h: f32[2], %x: f32[2]) -> (f32[2], f32[2]) {
//         %0 = add(%h, %x) : f32[2]
//         return %0, %0
//       }
//
// Node results are numbered %0, %1, ... in order; parameters keep their names (a name that is
// not a plain identifier is quoted, a repeated one gets a ".N" suffix).
#pragma once

#include <string>

#include "kiln/ir/function.h"

namespace kiln::ir {

struct PrintOptions {
  // Print each node's source location (`loc "file.cpp":12:5`) where it is known.
  bool locations = false;
};

// The whole function as IR text, ending in a newline.
std::string print(const Function& function, const PrintOptions& options = {});
// One node's line (without indentation or newline), with operands named as print() names them;
// for error messages. Values that are not in `function` print as %<undefined>.
std::string print_node(const Function& function, const Node& node,
                       const PrintOptions& options = {});

// The name print() gives `value` (%x, %3), or %<undefined> if it is not in `function`.
std::string print_value(const Function& function, const Value* value);

}  // namespace kiln::ir
