// Keras-style losses (keras.losses), built from ordinary ops so they run eagerly and in
// kiln::function and can be differentiated.
//
//   k::Tensor per_sample = k::losses::binary_crossentropy(y, p);          // mean over last axis
//   k::losses::SparseCategoricalCrossentropy loss_fn(/*from_logits=*/true);
//   k::Tensor loss = loss_fn(labels, logits);                              // mean over the batch
//
// The functions return the per-sample loss, reduced over the last axis as Keras does (the result
// has y_pred's shape without its last axis). Labels are cast to y_pred's dtype. The logits forms
// are computed stably (softplus and log-softmax forms: finite for logits of any size); the
// probability forms clip predictions to [1e-7, 1 − 1e-7] as Keras does.
#pragma once

#include <concepts>
#include <cstdint>
#include <map>
#include <memory>
#include <source_location>
#include <string>
#include <string_view>

#include "kiln/frontend/core/tensor.h"

namespace kiln::losses {

using Loc = std::source_location;

// Every function checks its arguments first: TypeError if y_pred is not floating, ShapeError if
// the shapes do not fit (both shapes in the message), errors named "losses.<function>".
//
// mean((y_pred − y_true)², axis=−1). As in Keras, when the ranks differ by one and the longer
// shape ends in 1, that dimension is squeezed (or the rank-1 side gets a trailing 1: labels of
// shape (n,) against predictions (n, 1)); the shapes must then be equal (Keras would broadcast).
Tensor mean_squared_error(const Tensor& y_true, const Tensor& y_pred, Loc loc = Loc::current());
// mean(|y_pred − y_true|, axis=−1); shapes as for mean_squared_error.
Tensor mean_absolute_error(const Tensor& y_true, const Tensor& y_pred, Loc loc = Loc::current());
// −mean(y·log p + (1−y)·log(1−p), axis=−1), p clipped to [1e-7, 1 − 1e-7]; with from_logits,
// y_pred holds logits x and the terms are max(x, 0) − x·y + log(1 + e^−|x|). Label smoothing s
// (in [0, 1], ValueError otherwise) replaces y with y·(1−s) + s/2. Shapes as for
// mean_squared_error.
Tensor binary_crossentropy(const Tensor& y_true, const Tensor& y_pred, bool from_logits = false,
                           double label_smoothing = 0.0, Loc loc = Loc::current());
// −Σ y·log p over `axis` (y_pred normalized to sum to one along it first); with from_logits,
// −Σ y·log_softmax(y_pred). Label smoothing s replaces y with y·(1−s) + s/classes, classes being
// the size of `axis` (Keras uses the last dim whatever the axis). y_true and y_pred must have the
// same shape; `axis` out of range is a ShapeError.
Tensor categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred,
                                bool from_logits = false, double label_smoothing = 0.0,
                                int64_t axis = -1, Loc loc = Loc::current());
// categorical_crossentropy with integer class ids as labels (y_pred's shape without the class
// axis, or with a trailing size-1 dimension; float labels holding integers are accepted). An id
// outside [0, classes) is an IndexError when the labels are concrete; traced code cannot check
// them and such a sample contributes 0 (its one-hot row is all zeros). Bool labels: TypeError.
Tensor sparse_categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred,
                                       bool from_logits = false, int64_t axis = -1,
                                       Loc loc = Loc::current());

// How a loss object turns per-sample losses into the value it returns.
enum class Reduction {
  none,                 // the per-sample losses
  sum,                  // their sum
  sum_over_batch_size,  // their sum divided by their number (Keras's default)
};

// "none", "sum", "sum_over_batch_size".
std::string_view reduction_name(Reduction reduction);

// Weights `per_sample` by `sample_weight` (when defined) and reduces it. The weight is cast to the
// losses' dtype, trailing size-1 dims the losses lack are dropped, and it is aligned with the
// losses from the front (weights of shape (batch,) scale every loss of a sample, as in TensorFlow
// Keras); ShapeError if it then does not broadcast. sum_over_batch_size divides the sum by the
// number of elements of the weighted losses (0 for none).
Tensor reduce_loss(const Tensor& per_sample, Reduction reduction,
                   const Tensor& sample_weight = Tensor(), Loc loc = Loc::current());

// Base of the loss objects (keras.losses.Loss).
class Loss {
 public:
  Loss(std::string name, Reduction reduction) : name_(std::move(name)), reduction_(reduction) {}
  virtual ~Loss() = default;

  // The reduced, weighted loss.
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred,
                    const Tensor& sample_weight = Tensor(), Loc loc = Loc::current()) const;
  // The per-sample losses.
  virtual Tensor call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const = 0;
  // Keras's get_config(), as text: "name", "reduction" and the constructor's other arguments
  // (from_config makes the loss back).
  virtual std::map<std::string, std::string> get_config() const;

  const std::string& name() const { return name_; }
  Reduction reduction() const { return reduction_; }

 private:
  std::string name_;
  Reduction reduction_;
};

class MeanSquaredError : public Loss {
 public:
  explicit MeanSquaredError(Reduction reduction = Reduction::sum_over_batch_size)
      : Loss("mean_squared_error", reduction) {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const override;
};

class MeanAbsoluteError : public Loss {
 public:
  explicit MeanAbsoluteError(Reduction reduction = Reduction::sum_over_batch_size)
      : Loss("mean_absolute_error", reduction) {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const override;
};

class BinaryCrossentropy : public Loss {
 public:
  explicit BinaryCrossentropy(bool from_logits = false, double label_smoothing = 0.0,
                              Reduction reduction = Reduction::sum_over_batch_size)
      : Loss("binary_crossentropy", reduction),
        from_logits_(from_logits),
        label_smoothing_(label_smoothing) {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const override;
  std::map<std::string, std::string> get_config() const override;

 private:
  bool from_logits_;
  double label_smoothing_;
};

class CategoricalCrossentropy : public Loss {
 public:
  explicit CategoricalCrossentropy(bool from_logits = false, double label_smoothing = 0.0,
                                   int64_t axis = -1,
                                   Reduction reduction = Reduction::sum_over_batch_size)
      : Loss("categorical_crossentropy", reduction),
        from_logits_(from_logits),
        label_smoothing_(label_smoothing),
        axis_(axis) {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const override;
  std::map<std::string, std::string> get_config() const override;

 private:
  bool from_logits_;
  double label_smoothing_;
  int64_t axis_;
};

class SparseCategoricalCrossentropy : public Loss {
 public:
  explicit SparseCategoricalCrossentropy(bool from_logits = false,
                                         Reduction reduction = Reduction::sum_over_batch_size)
      : Loss("sparse_categorical_crossentropy", reduction), from_logits_(from_logits) {}
  Tensor call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const override;
  std::map<std::string, std::string> get_config() const override;

 private:
  bool from_logits_;
};

// A loss as compile() takes it: a loss object or a Keras name ("sparse_categorical_crossentropy").
class LossSpec {
 public:
  template <class L>
  requires std::derived_from<L, Loss> LossSpec(const L& loss)  // NOLINT: implicit
      : loss_(std::make_shared<L>(loss)) {}
  LossSpec(const char* name) : name_(name) {}             // NOLINT: implicit
  LossSpec(std::string name) : name_(std::move(name)) {}  // NOLINT: implicit
  // The loss object; made by get() from a name (ValueError for an unknown one).
  std::shared_ptr<Loss> resolve(Loc loc = Loc::current()) const;

 private:
  std::shared_ptr<Loss> loss_;
  std::string name_;
};

// A loss object by Keras name, with Keras's defaults: "mean_squared_error" ("mse",
// "MeanSquaredError"), "mean_absolute_error" ("mae", "MeanAbsoluteError"), "binary_crossentropy",
// "categorical_crossentropy", "sparse_categorical_crossentropy" (or their class names).
// ValueError listing the known names otherwise.
std::shared_ptr<Loss> get(const std::string& name, Loc loc = Loc::current());
// The loss a get_config() described; ValueError for an unknown name or a malformed value.
std::shared_ptr<Loss> from_config(const std::map<std::string, std::string>& config,
                                  Loc loc = Loc::current());

}  // namespace kiln::losses
