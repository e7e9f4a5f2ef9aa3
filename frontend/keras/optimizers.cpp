// Keras 3 optimizers and learning-rate schedules, written with Kiln's own tensor ops so that the
// same code runs eagerly and inside a kiln::function trace.
#include "kiln/frontend/keras/optimizers.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <map>
#include <unordered_map>

#include "kiln/frontend/core/gradient_tape.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/ir/dot.h"

namespace kiln::optimizers {

namespace {

bool is_float(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f64;
}

}  // namespace

// Schedules. Plain numbers next to the step tensor take its dtype, so a schedule computes in f32
// for f32 variables and in f64 for f64 ones.

ExponentialDecay::ExponentialDecay(double initial_learning_rate, int64_t decay_steps,
                                   double decay_rate, bool staircase, Loc loc)
    : initial_learning_rate_(initial_learning_rate),
      decay_steps_(decay_steps),
      decay_rate_(decay_rate),
      staircase_(staircase) {
  if (decay_steps <= 0) {
    detail::raise<ValueError>("ExponentialDecay", {},
                              fmt::format("decay_steps must be positive, got {}", decay_steps),
                              loc);
  }
  if (!(initial_learning_rate >= 0) || !std::isfinite(initial_learning_rate)) {
    detail::raise<ValueError>(
        "ExponentialDecay", {},
        fmt::format("initial_learning_rate must be >= 0, got {}", initial_learning_rate), loc);
  }
}

Tensor ExponentialDecay::operator()(const Tensor& step) const {
  Tensor p = step / static_cast<double>(decay_steps_);
  if (staircase_) p = floor(p);
  return initial_learning_rate_ * pow(decay_rate_, p);
}

PiecewiseConstantDecay::PiecewiseConstantDecay(std::vector<double> boundaries,
                                               std::vector<double> values, Loc loc)
    : boundaries_(std::move(boundaries)), values_(std::move(values)) {
  if (values_.size() != boundaries_.size() + 1) {
    detail::raise<ValueError>(
        "PiecewiseConstantDecay", {},
        fmt::format("values must have one more element than boundaries, got {} boundaries and "
                    "{} values",
                    boundaries_.size(), values_.size()),
        loc);
  }
  for (size_t i = 1; i < boundaries_.size(); ++i) {
    if (!(boundaries_[i - 1] <= boundaries_[i])) {
      detail::raise<ValueError>("PiecewiseConstantDecay", {},
                                fmt::format("boundaries must be non-decreasing, got {} before {}",
                                            boundaries_[i - 1], boundaries_[i]),
                                loc);
    }
  }
}

Tensor PiecewiseConstantDecay::operator()(const Tensor& step) const {
  // From the last interval down: each boundary b_i picks values[i] for step <= b_i.
  Tensor lr = constant(values_.back(), step.dtype());
  for (size_t i = boundaries_.size(); i-- > 0;)
    lr = where(less_equal(step, boundaries_[i]), constant(values_[i], step.dtype()), lr);
  return lr;
}

Tensor LearningRate::at(const Tensor& step) const {
  if (!schedule_) return constant(value_, step.dtype());
  Tensor lr = (*schedule_)(step);
  if (!lr.defined() || lr.size() != 1) {
    throw ValueError(fmt::format("learning-rate schedule '{}' must return a one-element tensor",
                                 schedule_->name()));
  }
  if (lr.rank() != 0) lr = reshape(lr, Shape{});
  return lr.dtype() == step.dtype() ? lr : cast(lr, step.dtype());
}

// Optimizer.

struct Optimizer::State {
  std::string name;
  LearningRate learning_rate;
  Variable iterations;
  // Every variable seen so far, with its slots; holding the variables keeps their identity keys
  // from being reused by a new variable at the same address.
  std::vector<Variable> seen;
  std::vector<std::vector<Variable>> slots;
  std::unordered_map<const void*, size_t> index;
};

Optimizer::Optimizer(std::string name, LearningRate learning_rate, Loc loc)
    : state_(std::make_shared<State>(
          State{std::move(name), std::move(learning_rate), {}, {}, {}, {}})) {
  const LearningRate& lr = state_->learning_rate;
  if (!lr.is_schedule() && (!(lr.value() >= 0) || !std::isfinite(lr.value()))) {
    detail::raise<ValueError>(state_->name, {},
                              fmt::format("learning_rate must be >= 0, got {}", lr.value()), loc);
  }
  // Made directly from a host tensor: an optimizer may be built while a trace is active.
  state_->iterations =
      detail::VariableAccess::create(ir::HostTensor::scalar<int64_t>(0), "iteration", false);
}

Tensor Optimizer::minimize(const std::function<Tensor()>& loss, const std::vector<Variable>& vars,
                           Loc loc) {
  GradientTape tape;
  for (const Variable& v : vars)
    tape.watch(v, loc);
  Tensor value = loss();
  apply_gradients(tape.gradient(value, std::span<const Variable>(vars), Tensor(),
                                UnconnectedGradients::none, loc),
                  vars, loc);
  return value;
}

void Optimizer::apply_gradients(const std::vector<Tensor>& grads, const std::vector<Variable>& vars,
                                Loc loc) {
  if (grads.size() != vars.size()) {
    detail::raise<ValueError>(
        "apply_gradients", {},
        fmt::format("{}: got {} gradients for {} variables; pass one gradient per variable",
                    state_->name, grads.size(), vars.size()),
        loc);
  }
  std::vector<std::pair<Tensor, Variable>> pairs;
  pairs.reserve(grads.size());
  for (size_t i = 0; i < grads.size(); ++i)
    pairs.emplace_back(grads[i], vars[i]);
  apply_gradients(pairs, loc);
}

void Optimizer::apply_gradients(const std::vector<std::pair<Tensor, Variable>>& grads_and_vars,
                                Loc loc) {
  // An empty list is a no-op, as in Keras.
  if (grads_and_vars.empty()) return;
  // Check everything before updating anything, so a bad pair leaves no half-applied step.
  std::vector<std::pair<Tensor, Variable>> todo;
  std::string skipped;
  for (size_t i = 0; i < grads_and_vars.size(); ++i) {
    const auto& [grad, var] = grads_and_vars[i];
    if (!var.defined()) {
      detail::raise<ValueError>(
          "apply_gradients", {},
          fmt::format("{}: variable {} of the list is undefined", state_->name, i), loc);
    }
    if (!grad.defined()) {
      skipped += fmt::format("{}'{}'", skipped.empty() ? "" : ", ", var.name());
      continue;
    }
    if (!is_float(var.dtype())) {
      detail::raise<TypeError>(
          "apply_gradients", {grad},
          fmt::format("{}: Variable '{}' is {}; optimizers update only f32 and f64 variables",
                      state_->name, var.name(), var.type().to_string()),
          loc);
    }
    if (grad.dtype() != var.dtype()) {
      detail::raise<TypeError>(
          "apply_gradients", {grad},
          fmt::format("{}: the gradient for Variable '{}' is {}, but the variable is {}",
                      state_->name, var.name(), grad.type().to_string(), var.type().to_string()),
          loc);
    }
    if (grad.shape() != var.shape()) {
      detail::raise<ShapeError>(
          "apply_gradients", {grad},
          fmt::format("{}: the gradient for Variable '{}' is {}, but the variable is {}",
                      state_->name, var.name(), grad.type().to_string(), var.type().to_string()),
          loc);
    }
    todo.emplace_back(grad, var);
  }
  if (todo.empty()) {
    detail::raise<ValueError>(
        "apply_gradients", {},
        fmt::format("{}: no gradients provided for any variable ({})", state_->name, skipped), loc);
  }

  // One scope for every optimizer's nodes, which graph dumps colour (ir/dot.h).
  kiln::name_scope optimizer_scope(ir::kOptimizerScope);
  kiln::name_scope scope(state_->name);
  // The learning rate once per step and dtype, computed in that dtype.
  std::map<DType, Tensor> lrs;
  for (auto& [grad, var] : todo) {
    const void* key = detail::VariableAccess::identity(var);
    if (!state_->index.count(key)) {
      std::vector<Variable> made = create_slots(var);
      state_->index.emplace(key, state_->seen.size());
      state_->seen.push_back(var);
      state_->slots.push_back(std::move(made));
    }
    auto it = lrs.find(var.dtype());
    if (it == lrs.end())
      it = lrs.emplace(var.dtype(), state_->learning_rate.at(iterations_as(var.dtype()))).first;
    update_step(grad, var, it->second);
  }
  // After the updates, as Keras: update_step sees the count of steps applied before this one.
  // The counter lives on the host (a 0-d operand goes along to any device): its increment too,
  // under a GPU DeviceScope.
  DeviceScope on_host(Device::cpu());
  state_->iterations.assign_add(constant(int64_t{1}, DType::i64));
}

Variable Optimizer::iterations() const {
  return state_->iterations;
}

Tensor Optimizer::learning_rate() const {
  return state_->learning_rate.at(iterations_as(DType::f32));
}

std::vector<Variable> Optimizer::variables() const {
  std::vector<Variable> all{state_->iterations};
  for (const auto& slots : state_->slots)
    all.insert(all.end(), slots.begin(), slots.end());
  return all;
}

const std::string& Optimizer::name() const {
  return state_->name;
}

const std::vector<Variable>& Optimizer::slots(const Variable& var) const {
  auto it = state_->index.find(detail::VariableAccess::identity(var));
  KILN_CHECK(it != state_->index.end(), "optimizer slots asked for a variable never seen");
  return state_->slots[it->second];
}

Variable Optimizer::make_slot(const Variable& var, const std::string& slot_name, double value) {
  ir::HostTensor init(var.type());  // zero-filled
  if (value != 0.0) {
    ir::visit_dtype(var.dtype(), [&](auto zero) {
      using T = decltype(zero);
      if constexpr (std::is_floating_point_v<T>) {
        for (T& x : init.values<T>())
          x = static_cast<T>(value);
      }
    });
  }
  // On the variable's device, as its updates run there.
  return detail::VariableAccess::create(
      std::move(init), fmt::format("{}_{}", var.name(), slot_name), false, var.device());
}

Tensor Optimizer::iterations_as(DType dtype) const {
  return cast(state_->iterations.value(), dtype);
}

void Optimizer::check_range(const std::string& optimizer, const char* what, double value, double lo,
                            double hi, bool closed_above, const Loc& loc) {
  bool ok = value >= lo && (closed_above ? value <= hi : value < hi);
  if (!ok) {
    detail::raise<ValueError>(optimizer, {},
                              fmt::format("{} must be in [{}, {}{}, got {}", what, lo, hi,
                                          closed_above ? "]" : ")", value),
                              loc);
  }
}

namespace {
constexpr double kInf = HUGE_VAL;
}  // namespace

// SGD.

SGD::SGD(LearningRate learning_rate, double momentum, bool nesterov, Loc loc)
    : Optimizer("SGD", std::move(learning_rate), loc), momentum_(momentum), nesterov_(nesterov) {
  check_range(name(), "momentum", momentum, 0, 1, true, loc);
}

std::vector<Variable> SGD::create_slots(const Variable& var) {
  if (momentum_ == 0) return {};
  return {make_slot(var, "momentum")};
}

void SGD::update_step(const Tensor& grad, Variable& var, const Tensor& lr) {
  if (momentum_ == 0) {
    var.assign_sub(grad * lr);
    return;
  }
  Variable m = slots(var)[0];
  m.assign(m * momentum_ - grad * lr);
  if (nesterov_)
    var.assign_add(m * momentum_ - grad * lr);
  else
    var.assign_add(m);
}

// RMSprop.

RMSprop::RMSprop(LearningRate learning_rate, double rho, double momentum, double epsilon,
                 bool centered, Loc loc)
    : Optimizer("rmsprop", std::move(learning_rate), loc),
      rho_(rho),
      momentum_(momentum),
      epsilon_(epsilon),
      centered_(centered) {
  check_range(name(), "rho", rho, 0, 1, true, loc);
  check_range(name(), "momentum", momentum, 0, 1, true, loc);
  check_range(name(), "epsilon", epsilon, 0, kInf, false, loc);
}

std::vector<Variable> RMSprop::create_slots(const Variable& var) {
  std::vector<Variable> made{make_slot(var, "velocity")};
  if (momentum_ > 0) made.push_back(make_slot(var, "momentum"));
  if (centered_) made.push_back(make_slot(var, "average_gradient"));
  return made;
}

void RMSprop::update_step(const Tensor& grad, Variable& var, const Tensor& lr) {
  const std::vector<Variable>& s = slots(var);
  Variable velocity = s[0];
  velocity.assign(rho_ * velocity + (1 - rho_) * square(grad));
  // Keras 3 puts epsilon inside the square root: sqrt(velocity [- average²] + epsilon).
  Tensor denominator;
  if (centered_) {
    Variable average = s.back();
    average.assign(rho_ * average + (1 - rho_) * grad);
    denominator = velocity - square(average) + epsilon_;
  } else {
    denominator = velocity + epsilon_;
  }
  Tensor increment = lr * grad / sqrt(denominator);
  if (momentum_ > 0) {
    Variable mom = s[1];
    mom.assign(momentum_ * mom + increment);
    var.assign_sub(mom);
  } else {
    var.assign_sub(increment);
  }
}

// Adam.

Adam::Adam(LearningRate learning_rate, double beta_1, double beta_2, double epsilon, bool amsgrad,
           Loc loc)
    : Optimizer("adam", std::move(learning_rate), loc),
      beta_1_(beta_1),
      beta_2_(beta_2),
      epsilon_(epsilon),
      amsgrad_(amsgrad) {
  check_range(name(), "beta_1", beta_1, 0, 1, false, loc);
  check_range(name(), "beta_2", beta_2, 0, 1, false, loc);
  check_range(name(), "epsilon", epsilon, 0, kInf, false, loc);
}

std::vector<Variable> Adam::create_slots(const Variable& var) {
  std::vector<Variable> made{make_slot(var, "momentum"), make_slot(var, "velocity")};
  if (amsgrad_) made.push_back(make_slot(var, "velocity_hat"));
  return made;
}

void Adam::update_step(const Tensor& grad, Variable& var, const Tensor& lr) {
  const std::vector<Variable>& s = slots(var);
  Variable m = s[0];
  Variable v = s[1];
  Tensor t = iterations_as(var.dtype()) + 1;
  Tensor alpha = lr * sqrt(1 - pow(beta_2_, t)) / (1 - pow(beta_1_, t));
  m.assign_add((grad - m) * (1 - beta_1_));
  v.assign_add((square(grad) - v) * (1 - beta_2_));
  Tensor second = v;
  if (amsgrad_) {
    Variable v_hat = s[2];
    v_hat.assign(maximum(v_hat, v));
    second = v_hat;
  }
  var.assign_sub(m * alpha / (sqrt(second) + epsilon_));
}

// Adagrad.

Adagrad::Adagrad(LearningRate learning_rate, double initial_accumulator_value, double epsilon,
                 Loc loc)
    : Optimizer("adagrad", std::move(learning_rate), loc),
      initial_accumulator_value_(initial_accumulator_value),
      epsilon_(epsilon) {
  check_range(name(), "initial_accumulator_value", initial_accumulator_value, 0, kInf, false, loc);
  check_range(name(), "epsilon", epsilon, 0, kInf, false, loc);
}

std::vector<Variable> Adagrad::create_slots(const Variable& var) {
  return {make_slot(var, "accumulator", initial_accumulator_value_)};
}

void Adagrad::update_step(const Tensor& grad, Variable& var, const Tensor& lr) {
  Variable accumulator = slots(var)[0];
  accumulator.assign_add(square(grad));
  var.assign_sub(lr * grad / sqrt(accumulator + epsilon_));
}

std::shared_ptr<Optimizer> OptimizerSpec::resolve(Loc loc) const {
  return optimizer_ ? optimizer_ : get(name_, loc);
}

std::shared_ptr<Optimizer> get(const std::string& name, Loc loc) {
  std::string lower;
  for (char c : name)
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "sgd") return std::make_shared<SGD>();
  if (lower == "rmsprop") return std::make_shared<RMSprop>();
  if (lower == "adam") return std::make_shared<Adam>();
  if (lower == "adagrad") return std::make_shared<Adagrad>();
  detail::raise<ValueError>(
      "optimizers.get", {},
      fmt::format("unknown optimizer '{}'; known: sgd, rmsprop, adam, adagrad", name), loc);
}

}  // namespace kiln::optimizers
