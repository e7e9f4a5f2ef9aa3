// Keras-style optimizers (SGD, RMSprop, Adam, Adagrad) and learning-rate schedules, with the
// update rules and default hyper-parameters of Keras 3 (keras.optimizers, TF >= 2.11).
//
//   k::Variable w(k::constant({1.f, -2.f}), "w");
//   k::optimizers::Adam opt(k::optimizers::ExponentialDecay(1e-2, 100, 0.9));
//   opt.apply_gradients({{grad, w}});
//
// Every update goes through Variable::assign/assign_add/assign_sub with tensor ops, so an
// optimizer works eagerly (the variables change at once) and inside a kiln::function (the
// updates become updates of the compiled function; slots made on the first trace are captured
// like any other variable; capture the trained variables in the traced body rather than passing
// them as Variable arguments, since slots belong to the variable seen at trace time). An
// optimizer is a handle: copies share the iteration count and the slots, as Python references to
// one Keras optimizer do. Not synchronized across threads.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/core/variable.h"

namespace kiln::optimizers {

// A learning rate that depends on the optimizer's step (keras.optimizers.schedules).
class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  // The learning rate at `step` (a 0-d float tensor, f32 or f64, symbolic inside a trace), as a
  // 0-d tensor of the step's dtype. Implementations use tensor ops only.
  virtual Tensor operator()(const Tensor& step) const = 0;
  virtual std::string name() const { return "LearningRateSchedule"; }
};

// lr0 · decay_rate^(step / decay_steps), the exponent floored when `staircase`.
class ExponentialDecay : public LearningRateSchedule {
 public:
  // ValueError unless decay_steps > 0 and initial_learning_rate >= 0.
  ExponentialDecay(double initial_learning_rate, int64_t decay_steps, double decay_rate,
                   bool staircase = false, Loc loc = Loc::current());
  Tensor operator()(const Tensor& step) const override;
  std::string name() const override { return "ExponentialDecay"; }

 private:
  double initial_learning_rate_;
  int64_t decay_steps_;
  double decay_rate_;
  bool staircase_;
};

// values[0] for step <= boundaries[0], values[i] for boundaries[i-1] < step <= boundaries[i],
// values[n] past the last boundary.
class PiecewiseConstantDecay : public LearningRateSchedule {
 public:
  // ValueError unless values.size() == boundaries.size() + 1 and boundaries are non-decreasing.
  PiecewiseConstantDecay(std::vector<double> boundaries, std::vector<double> values,
                         Loc loc = Loc::current());
  Tensor operator()(const Tensor& step) const override;
  std::string name() const override { return "PiecewiseConstantDecay"; }

 private:
  std::vector<double> boundaries_;
  std::vector<double> values_;
};

// An optimizer's learning rate: a constant or a schedule. Converts implicitly from a number,
// from a shared_ptr to a schedule, and from a schedule object (copied into a shared_ptr).
class LearningRate {
 public:
  LearningRate(double value) : value_(value) {}
  template <class S>
  requires std::derived_from<S, LearningRateSchedule> LearningRate(std::shared_ptr<S> schedule)
      : schedule_(std::move(schedule)) {}
  template <class S>
  requires std::derived_from<std::remove_cvref_t<S>, LearningRateSchedule> LearningRate(
      S&& schedule)
      : schedule_(std::make_shared<std::remove_cvref_t<S>>(std::forward<S>(schedule))) {}

  bool is_schedule() const { return schedule_ != nullptr; }
  // The constant learning rate (meaningless for a schedule).
  double value() const { return value_; }
  // The schedule, or nullptr for a constant.
  const std::shared_ptr<LearningRateSchedule>& schedule() const { return schedule_; }
  // The learning rate at `step` (a 0-d f32 or f64 tensor), in the step's dtype.
  Tensor at(const Tensor& step) const;

 private:
  double value_ = 0.0;
  std::shared_ptr<LearningRateSchedule> schedule_;
};

// Base of every optimizer (keras.optimizers.Optimizer). Subclasses make their slot variables in
// create_slots() and update one variable in update_step().
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // Applies one step: each gradient updates its variable (an undefined gradient skips it, as
  // Keras skips None), then iterations() goes up by one. A gradient whose dtype or shape differs
  // from its variable's throws TypeError / ShapeError naming the variable; nothing is updated
  // then.
  void apply_gradients(const std::vector<std::pair<Tensor, Variable>>& grads_and_vars,
                       Loc loc = Loc::current());
  // The same with gradients and variables in two lists of equal length (ValueError otherwise).
  void apply_gradients(const std::vector<Tensor>& grads, const std::vector<Variable>& vars,
                       Loc loc = Loc::current());

  // Computes the gradients of `loss()` with respect to `vars` with a GradientTape and applies
  // them (keras's minimize); returns the loss.
  Tensor minimize(const std::function<Tensor()>& loss, const std::vector<Variable>& vars,
                  Loc loc = Loc::current());

  // The number of steps applied so far: an i64 0-d non-trainable Variable named "iteration".
  Variable iterations() const;
  // The learning rate for the next step as a 0-d f32 tensor (a schedule evaluated at iterations).
  Tensor learning_rate() const;
  // iterations() first, then every slot variable in creation order.
  std::vector<Variable> variables() const;
  const std::string& name() const;
  // A new handle of the same type sharing this optimizer's state (for holding it polymorphically).
  virtual std::shared_ptr<Optimizer> clone() const = 0;

 protected:
  // ValueError (raised as `name`) for a negative or NaN constant learning rate.
  Optimizer(std::string name, LearningRate learning_rate, Loc loc);

  // The slot variables for `var`, made once, the first time `var` gets a gradient (possibly
  // during a trace, so make them with make_slot, never with k::zeros or the Variable ctor).
  virtual std::vector<Variable> create_slots(const Variable& var) {
    (void)var;
    return {};
  }
  // Updates `var` with `grad` (both of the variable's dtype and shape); `lr` is the learning rate
  // for this step as a 0-d tensor of the variable's dtype.
  virtual void update_step(const Tensor& grad, Variable& var, const Tensor& lr) = 0;

  // The slots create_slots() made for `var`.
  const std::vector<Variable>& slots(const Variable& var) const;
  // A non-trainable variable like `var` filled with `value`, named "<var>_<slot_name>".
  static Variable make_slot(const Variable& var, const std::string& slot_name, double value = 0.0);
  // iterations() as a 0-d tensor of `dtype` (the step count before this update).
  Tensor iterations_as(DType dtype) const;
  // ValueError (raised as this optimizer's name) unless lo <= value <= hi (or < hi if !closed).
  static void check_range(const std::string& optimizer, const char* what, double value, double lo,
                          double hi, bool closed_above, const Loc& loc);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Gradient descent with optional (Nesterov) momentum (keras.optimizers.SGD). momentum 0:
// var -= lr·g; otherwise m = momentum·m − lr·g and var += nesterov ? momentum·m − lr·g : m.
class SGD : public Optimizer {
 public:
  // ValueError for lr < 0 or momentum outside [0, 1].
  SGD(LearningRate learning_rate = 0.01, double momentum = 0.0, bool nesterov = false,
      Loc loc = Loc::current());
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<SGD>(*this); }

 protected:
  std::vector<Variable> create_slots(const Variable& var) override;
  void update_step(const Tensor& grad, Variable& var, const Tensor& lr) override;

 private:
  double momentum_;
  bool nesterov_;
};

// RMSprop (keras.optimizers.RMSprop): v = rho·v + (1−rho)·g²; centered also keeps
// a = rho·a + (1−rho)·g and uses v − a²; step = lr·g / sqrt(v [− a²] + epsilon) (epsilon inside
// the square root, as Keras 3); with momentum, mom = momentum·mom + step and var -= mom.
class RMSprop : public Optimizer {
 public:
  // ValueError for lr < 0, rho or momentum outside [0, 1], or epsilon < 0.
  RMSprop(LearningRate learning_rate = 0.001, double rho = 0.9, double momentum = 0.0,
          double epsilon = 1e-7, bool centered = false, Loc loc = Loc::current());
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<RMSprop>(*this); }

 protected:
  std::vector<Variable> create_slots(const Variable& var) override;
  void update_step(const Tensor& grad, Variable& var, const Tensor& lr) override;

 private:
  double rho_;
  double momentum_;
  double epsilon_;
  bool centered_;
};

// Adam (keras.optimizers.Adam): t = iterations + 1, alpha = lr·sqrt(1−beta_2^t)/(1−beta_1^t),
// m += (g−m)(1−beta_1), v += (g²−v)(1−beta_2), var -= m·alpha / (sqrt(v) + epsilon); amsgrad
// uses v_hat = max(v_hat, v) in place of v.
class Adam : public Optimizer {
 public:
  // ValueError for lr < 0, a beta outside [0, 1), or epsilon < 0.
  Adam(LearningRate learning_rate = 0.001, double beta_1 = 0.9, double beta_2 = 0.999,
       double epsilon = 1e-7, bool amsgrad = false, Loc loc = Loc::current());
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<Adam>(*this); }

 protected:
  std::vector<Variable> create_slots(const Variable& var) override;
  void update_step(const Tensor& grad, Variable& var, const Tensor& lr) override;

 private:
  double beta_1_;
  double beta_2_;
  double epsilon_;
  bool amsgrad_;
};

// Adagrad (keras.optimizers.Adagrad): acc starts at initial_accumulator_value, acc += g²,
// var -= lr·g / sqrt(acc + epsilon).
class Adagrad : public Optimizer {
 public:
  // ValueError for lr < 0, initial_accumulator_value < 0 or epsilon < 0.
  Adagrad(LearningRate learning_rate = 0.001, double initial_accumulator_value = 0.1,
          double epsilon = 1e-7, Loc loc = Loc::current());
  std::shared_ptr<Optimizer> clone() const override { return std::make_shared<Adagrad>(*this); }

 protected:
  std::vector<Variable> create_slots(const Variable& var) override;
  void update_step(const Tensor& grad, Variable& var, const Tensor& lr) override;

 private:
  double initial_accumulator_value_;
  double epsilon_;
};

// An optimizer as compile() takes it: an optimizer object (its state shared, as a handle) or a
// Keras name ("adam").
class OptimizerSpec {
 public:
  template <class O>
  requires std::derived_from<O, Optimizer> OptimizerSpec(const O& optimizer)  // NOLINT: implicit
      : optimizer_(optimizer.clone()) {}
  OptimizerSpec(const char* name) : name_(name) {}             // NOLINT: implicit
  OptimizerSpec(std::string name) : name_(std::move(name)) {}  // NOLINT: implicit
  // The optimizer; made by get() from a name (ValueError for an unknown one).
  std::shared_ptr<Optimizer> resolve(Loc loc = Loc::current()) const;

 private:
  std::shared_ptr<Optimizer> optimizer_;
  std::string name_;
};

// A new optimizer by Keras name, with Keras's default hyper-parameters: "sgd", "rmsprop",
// "adam", "adagrad" (any case: "Adam", "RMSprop"). ValueError listing the known names otherwise.
std::shared_ptr<Optimizer> get(const std::string& name, Loc loc = Loc::current());

}  // namespace kiln::optimizers
