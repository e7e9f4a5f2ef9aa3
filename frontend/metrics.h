// The metrics compile() accepts by name, and the counting they share between Model's compiled
// steps and SavedModel::evaluate.
#pragma once

#include <source_location>
#include <string>
#include <vector>

#include "kiln/frontend/tensor.h"
#include "kiln/ir/types.h"

namespace kiln::metrics {

// Throws ValueError naming the known metrics ("accuracy", "acc") for any other name; returns
// whether accuracy was asked for.
bool parse_names(const std::vector<std::string>& names, const char* what,
                 const std::source_location& loc);

// The number of correct predictions in a batch as an f32 0-d tensor, "accuracy" resolved from
// the shapes as Keras does: class ids per sample (y has one axis fewer than pred, or a trailing
// 1 against several classes) → sparse; one output unit → binary (threshold 0.5); otherwise
// one-hot labels → categorical. Runs eagerly or traced.
Tensor correct_count(const Tensor& y, const Tensor& pred);

// Whether labels of shape y are class ids for predictions of shape pred (the sparse case above).
bool sparse_labels(const Shape& y, const Shape& pred);

}  // namespace kiln::metrics
