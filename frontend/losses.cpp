#include "kiln/frontend/losses.h"

#include <fmt/format.h>

#include "kiln/frontend/apply.h"
#include "kiln/frontend/ops.h"

namespace kiln::losses {

namespace {

// Keras's backend epsilon, the clip margin of the probability forms.
constexpr double kEpsilon = 1e-7;

std::string op_name(const char* loss) {
  return fmt::format("losses.{}", loss);
}

void check_defined(const char* loss, const Tensor& y_true, const Tensor& y_pred, const Loc& loc) {
  if (!y_true.defined() || !y_pred.defined()) {
    detail::raise<ValueError>(op_name(loss), {}, "y_true and y_pred must be defined tensors", loc);
  }
  if (!ir::is_floating(y_pred.dtype())) {
    detail::raise<TypeError>(op_name(loss), {y_true, y_pred},
                             fmt::format("y_pred must be floating (f32 or f64), got {}",
                                         ir::dtype_long_name(y_pred.dtype())),
                             loc);
  }
}

// y_true cast to y_pred's dtype, after checking that the shapes agree.
Tensor labels_like(const char* loss, const Tensor& y_true, const Tensor& y_pred, const Loc& loc) {
  check_defined(loss, y_true, y_pred, loc);
  if (y_true.shape() != y_pred.shape()) {
    detail::raise<ShapeError>(op_name(loss), {y_true, y_pred},
                              fmt::format("y_true has shape {} but y_pred has shape {}; they must "
                                          "be equal",
                                          y_true.shape().to_string(), y_pred.shape().to_string()),
                              loc);
  }
  return cast(y_true, y_pred.dtype(), loc);
}

Tensor clip(const Tensor& p, const Loc& loc) {
  return minimum(maximum(p, kEpsilon, loc), 1.0 - kEpsilon, loc);
}

void check_smoothing(const char* loss, double label_smoothing, const Loc& loc) {
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
    detail::raise<ValueError>(
        op_name(loss), {},
        fmt::format("label_smoothing must be in [0, 1], got {}", label_smoothing), loc);
  }
}

}  // namespace

Tensor mean_squared_error(const Tensor& y_true, const Tensor& y_pred, Loc loc) {
  Tensor y = labels_like("mean_squared_error", y_true, y_pred, loc);
  return reduce_mean(square(y_pred - y, loc), -1, false, loc);
}

Tensor mean_absolute_error(const Tensor& y_true, const Tensor& y_pred, Loc loc) {
  Tensor y = labels_like("mean_absolute_error", y_true, y_pred, loc);
  return reduce_mean(abs(y_pred - y, loc), -1, false, loc);
}

Tensor binary_crossentropy(const Tensor& y_true, const Tensor& y_pred, bool from_logits,
                           double label_smoothing, Loc loc) {
  check_smoothing("binary_crossentropy", label_smoothing, loc);
  Tensor y = labels_like("binary_crossentropy", y_true, y_pred, loc);
  if (label_smoothing > 0) y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing;
  Tensor per_element;
  if (from_logits) {
    // max(x, 0) − x·y + log(1 + e^−|x|): never overflows.
    Tensor x = y_pred;
    per_element = relu(x, loc) - x * y + softplus(-abs(x, loc), loc);
  } else {
    Tensor p = clip(y_pred, loc);
    per_element = -(y * log(p, loc) + (1.0 - y) * log(1.0 - p, loc));
  }
  return reduce_mean(per_element, -1, false, loc);
}

Tensor categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred, bool from_logits,
                                double label_smoothing, int64_t axis, Loc loc) {
  check_smoothing("categorical_crossentropy", label_smoothing, loc);
  Tensor y = labels_like("categorical_crossentropy", y_true, y_pred, loc);
  if (y_pred.rank() == 0) {
    detail::raise<ShapeError>(op_name("categorical_crossentropy"), {y_true, y_pred},
                              "y_pred needs a class axis (rank >= 1)", loc);
  }
  int64_t a = ir::normalize_axis(axis, y_pred.rank());
  if (label_smoothing > 0) {
    double classes = static_cast<double>(y_pred.shape()[a]);
    y = y * (1.0 - label_smoothing) + label_smoothing / classes;
  }
  Tensor log_p;
  if (from_logits) {
    log_p = log_softmax(y_pred, a, loc);
  } else {
    log_p = log(clip(y_pred / reduce_sum(y_pred, a, true, loc), loc), loc);
  }
  return -reduce_sum(y * log_p, a, false, loc);
}

Tensor sparse_categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred, bool from_logits,
                                       int64_t axis, Loc loc) {
  const char* loss = "sparse_categorical_crossentropy";
  check_defined(loss, y_true, y_pred, loc);
  if (y_pred.rank() == 0) {
    detail::raise<ShapeError>(op_name(loss), {y_true, y_pred},
                              "y_pred needs a class axis (rank >= 1)", loc);
  }
  int64_t a = ir::normalize_axis(axis, y_pred.rank());
  std::vector<int64_t> want = y_pred.shape().dims();
  int64_t classes = want[static_cast<size_t>(a)];
  want.erase(want.begin() + a);
  Tensor labels = y_true;
  if (labels.rank() == y_pred.rank() && labels.shape().dims().back() == 1)
    labels = squeeze(labels, -1, loc);
  if (labels.shape() != Shape(want)) {
    detail::raise<ShapeError>(
        op_name(loss), {y_true, y_pred},
        fmt::format("y_true must hold one class id per sample, shape {} (y_pred's shape without "
                    "axis {}), got {}",
                    Shape(want).to_string(), a, y_true.shape().to_string()),
        loc);
  }
  if (labels.dtype() == DType::boolean) {
    detail::raise<TypeError>(op_name(loss), {y_true, y_pred},
                             "y_true must hold integer class ids, got bool", loc);
  }
  if (labels.dtype() != DType::i32 && labels.dtype() != DType::i64)
    labels = cast(labels, DType::i64, loc);
  if (!labels.is_symbolic()) {
    const ir::HostTensor& ids = labels.host();
    for (int64_t i = 0; i < ids.num_elements(); ++i) {
      auto id = static_cast<int64_t>(ids.element_as_double(i));
      if (id < 0 || id >= classes) {
        detail::raise<IndexError>(
            op_name(loss), {y_true, y_pred},
            fmt::format("label {} at position {} is outside [0, {})", id, i, classes), loc);
      }
    }
  }
  Tensor hot = one_hot(labels, classes, 1.0, 0.0, a, y_pred.dtype(), loc);
  Tensor log_p = from_logits ? log_softmax(y_pred, a, loc)
                             : log(clip(y_pred / reduce_sum(y_pred, a, true, loc), loc), loc);
  return -reduce_sum(hot * log_p, a, false, loc);
}

Tensor reduce_loss(const Tensor& per_sample, Reduction reduction, const Tensor& sample_weight,
                   Loc loc) {
  Tensor losses = per_sample;
  if (sample_weight.defined()) {
    Tensor w = cast(sample_weight, per_sample.dtype(), loc);
    while (w.rank() > losses.rank() && w.shape().dims().back() == 1)
      w = squeeze(w, -1, loc);
    while (w.rank() < losses.rank())
      w = expand_dims(w, -1, loc);
    try {
      ir::broadcast_shapes(w.shape(), losses.shape());
    } catch (Error&) {
      detail::raise<ShapeError>(
          "losses.reduce_loss", {per_sample, sample_weight},
          fmt::format("sample_weight of shape {} does not broadcast against "
                      "the per-sample losses of shape {}",
                      sample_weight.shape().to_string(), per_sample.shape().to_string()),
          loc);
    }
    losses = broadcast_to(losses * w, ir::broadcast_shapes(w.shape(), losses.shape()), loc);
  }
  switch (reduction) {
    case Reduction::none:
      return losses;
    case Reduction::sum:
      return reduce_sum(losses, {}, false, loc);
    case Reduction::sum_over_batch_size:
      if (losses.size() == 0) return zeros({}, losses.dtype(), loc);
      return reduce_mean(losses, {}, false, loc);
  }
  return losses;
}

Tensor Loss::operator()(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight,
                        Loc loc) const {
  return reduce_loss(call(y_true, y_pred, loc), reduction_, sample_weight, loc);
}

Tensor MeanSquaredError::call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const {
  return mean_squared_error(y_true, y_pred, loc);
}

Tensor MeanAbsoluteError::call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const {
  return mean_absolute_error(y_true, y_pred, loc);
}

Tensor BinaryCrossentropy::call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const {
  return binary_crossentropy(y_true, y_pred, from_logits_, label_smoothing_, loc);
}

Tensor CategoricalCrossentropy::call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const {
  return categorical_crossentropy(y_true, y_pred, from_logits_, label_smoothing_, axis_, loc);
}

Tensor SparseCategoricalCrossentropy::call(const Tensor& y_true, const Tensor& y_pred,
                                           Loc loc) const {
  return sparse_categorical_crossentropy(y_true, y_pred, from_logits_, -1, loc);
}

}  // namespace kiln::losses
