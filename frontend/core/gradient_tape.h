// kiln::GradientTape: reverse-mode gradients of eager or traced code, like tf.GradientTape.
//
//   k::Variable x(5.0f);
//   k::GradientTape tape;                    // records from here until it is destroyed
//   k::Tensor y = 10.f * x * x - 5.f * x + 4.f;
//   k::Tensor dy_dx = tape.gradient(y, x);   // 95
//
// While a tape lives, every op whose operands it is tracking is recorded into an ir::Function;
// it tracks the tensors it was told to watch(), the trainable Variables read while it records
// (watch_accessed_variables), and everything computed from those. gradient() runs the autodiff
// pass (passes/autodiff.h) on that function and replays the gradient nodes through the ordinary
// op path: eagerly they run at once (and an enclosing tape records them, which is how higher
// derivatives work); inside kiln::function they become part of the traced graph and are
// compiled with it. A tape belongs to the thread that made it.
#pragma once

#include <initializer_list>
#include <memory>
#include <source_location>
#include <span>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/core/variable.h"
#include "kiln/ir/attrs.h"
#include "kiln/ir/op.h"

namespace kiln::ir {
class Function;
}  // namespace kiln::ir

namespace kiln {

// What gradient() returns for a source the target does not depend on.
enum class UnconnectedGradients {
  none,  // an undefined Tensor (TensorFlow's None)
  zero,  // zeros of the source's shape and dtype
};

// Something to differentiate with respect to: a Tensor or a Variable.
class Source {
 public:
  Source(const Tensor& tensor) : tensor_(tensor) {}          // NOLINT: implicit by design
  Source(const Variable& variable) : variable_(variable) {}  // NOLINT: implicit by design

  bool is_variable() const { return variable_.defined(); }
  const Tensor& tensor() const { return tensor_; }
  const Variable& variable() const { return variable_; }

 private:
  Tensor tensor_;
  Variable variable_;
};

class GradientTape {
 public:
  // Starts recording. A persistent tape allows several gradient() calls.
  explicit GradientTape(bool persistent = false, bool watch_accessed_variables = true);
  ~GradientTape();
  GradientTape(const GradientTape&) = delete;
  GradientTape& operator=(const GradientTape&) = delete;

  // Tracks `t` (and what is computed from it from now on) as a source.
  void watch(const Tensor& t, std::source_location loc = std::source_location::current());
  // Tracks every later read of `v`, trainable or not.
  void watch(const Variable& v, std::source_location loc = std::source_location::current());

  // The gradient of `target` with respect to `source`: the gradient of reduce_sum(target) for a
  // non-scalar target, or of Σ output_gradient·target when `output_gradient` (target's shape
  // and dtype) is given. A source the tape saw but the target does not depend on (or depends on
  // only through integer values) gives `unconnected`; a source the tape never saw is a
  // ValueError. A non-persistent tape allows one call.
  Tensor gradient(const Tensor& target, const Source& source,
                  const Tensor& output_gradient = Tensor(),
                  UnconnectedGradients unconnected = UnconnectedGradients::none,
                  std::source_location loc = std::source_location::current());
  // The gradients with respect to several sources, in order.
  std::vector<Tensor> gradient(const Tensor& target, std::initializer_list<Source> sources,
                               const Tensor& output_gradient = Tensor(),
                               UnconnectedGradients unconnected = UnconnectedGradients::none,
                               std::source_location loc = std::source_location::current());
  std::vector<Tensor> gradient(const Tensor& target, std::span<const Source> sources,
                               const Tensor& output_gradient = Tensor(),
                               UnconnectedGradients unconnected = UnconnectedGradients::none,
                               std::source_location loc = std::source_location::current());
  std::vector<Tensor> gradient(const Tensor& target, std::span<const Variable> sources,
                               const Tensor& output_gradient = Tensor(),
                               UnconnectedGradients unconnected = UnconnectedGradients::none,
                               std::source_location loc = std::source_location::current());
  std::vector<Tensor> gradient(const Tensor& target, std::span<const Tensor> sources,
                               const Tensor& output_gradient = Tensor(),
                               UnconnectedGradients unconnected = UnconnectedGradients::none,
                               std::source_location loc = std::source_location::current());

  // The variables this tape watches, in the order it first saw them.
  std::vector<Variable> watched_variables() const;
  // Stops or resumes recording (ops run while stopped are not differentiated through).
  void stop_recording();
  void resume_recording();
  // Forgets everything recorded so far (the tape keeps recording).
  void reset();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// While one lives, no tape on this thread records (tf.stop_gradient for a whole block).
class StopRecording {
 public:
  [[nodiscard]] StopRecording();
  ~StopRecording();
  StopRecording(const StopRecording&) = delete;
  StopRecording& operator=(const StopRecording&) = delete;
};

// The value of `x` with no gradient flowing back through it.
Tensor stop_gradient(const Tensor& x, std::source_location loc = std::source_location::current());

namespace detail {
// True when some tape on this thread is recording (the op path's fast check).
bool tapes_recording();
// Records an applied op on every recording tape that tracks one of its operands.
void record_on_tapes(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
                     std::span<const Tensor> outputs, const std::source_location& loc);
// Lets the recording tapes watch a Variable read (`value` is what the read returned).
void record_variable_read(const Variable& v, const Tensor& value);
// Records a call of a compiled function on every recording tape that tracks one of its
// parameters' values (`params`, one per parameter of `graph`): the tape takes in `graph`'s nodes,
// and `results` (the values of its first outputs) become their outputs. The values inside the
// call are computed again when a gradient needs them.
void record_call_on_tapes(const ir::Function& graph, std::span<const Tensor> params,
                          std::span<const Tensor> results);
}  // namespace detail

}  // namespace kiln
