// Shape-generic saved models without symbolic dimensions in the IR. Model::save traces the
// inference function at several stand-in sizes of each free dimension (the batch, and each
// k::None dimension of a sample) and prints each trace as IR text. When the texts are the same
// but for integer literals, and every literal that changes is a multilinear function of the
// free sizes with integer coefficients (c0 + c1*B + c2*T + c3*B*T), the function at any other
// size is the text with those literals recomputed: `specialise` writes it, ir::parse checks it.
// The formulas go in the saved model's sidecar, model.shapes (see write_shapes for the format).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/ir/types.h"

namespace kiln::detail {

// One axis of the model's inputs that a saved model takes at any size. Axis 0 is the batch,
// which every input shares (listed once, with input 0); another axis belongs to one input.
struct FreeDim {
  int64_t axis = 0;
  // Its size in model.kiln (the default specialisation).
  int64_t size = 0;
  // Which input (model.kiln's parameter) the axis is of.
  size_t input = 0;
};

// An integer literal of the IR text whose value depends on the free sizes.
struct VaryingToken {
  // Which digit run of the text it is (0: the first), counted by number_tokens.
  size_t position = 0;
  // The multilinear formula: coefficients[mask] multiplies the product of the sizes of the free
  // dimensions whose bits are set in mask (coefficients[0] is the constant).
  std::vector<int64_t> coefficients;
};

// How a saved model's function changes with its free dimensions.
struct ShapeFormula {
  std::vector<FreeDim> dims;  // empty: every shape fixed
  std::vector<VaryingToken> tokens;
  // Why the batch is fixed although the model's batch is not, for messages (empty otherwise).
  std::string note;
};

// A maximal run of decimal digits in IR text.
struct NumberToken {
  size_t begin = 0, end = 0;
};
// The digit runs of `text`, in order.
std::vector<NumberToken> number_tokens(std::string_view text);

// What generalise found out: the formula over the dimensions that are free, and for each
// dimension asked about that is not, why (a text naming the IR line that breaks the pattern).
struct Generalised {
  ShapeFormula formula;
  std::vector<std::pair<size_t, std::string>> not_free;  // index into the dims asked, reason
};

// Traces `trace(sizes)` (one size per dimension of `dims`, in order) at stand-in sizes and fits
// the formulas. `names` names the dimensions in reasons ("the batch", "dimension 1"). The texts
// must be deterministic. A trace that throws kiln::Error makes the dimensions it varied not free.
// `default_text` is the text at each dim's `size`; it must fit the formula too.
Generalised generalise(const std::function<std::string(std::span<const int64_t>)>& trace,
                       const std::vector<FreeDim>& dims, const std::vector<std::string>& names,
                       const std::string& default_text);

// `text` (the default specialisation) with every varying token recomputed for `sizes` (one per
// formula dim). ShapeError when a literal would become negative.
std::string specialise(std::string_view text, const ShapeFormula& formula,
                       std::span<const int64_t> sizes);

// The sidecar's text: "kiln-shapes 1", then "free AXIS SIZE" per free dim (of input 0; "free
// AXIS SIZE INPUT" for another input), "note TEXT" when there is a note, and "token POSITION C0
// C1 ..." per varying token (2^dims coefficients).
std::string write_shapes(const ShapeFormula& formula);
// Reads a sidecar and checks it against `text` (model.kiln) and the function's input types:
// ValueError naming `path` when it is malformed or does not match (token positions, formulas
// that do not give model.kiln's literals at the default sizes, axes outside the inputs, a free
// batch the inputs do not share).
ShapeFormula read_shapes(std::string_view sidecar, const std::string& path, std::string_view text,
                         std::span<const ir::TensorType> inputs);

}  // namespace kiln::detail
