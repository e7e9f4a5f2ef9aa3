// The recurrent layers: SimpleRNN, LSTM, GRU over kiln::scan, and Bidirectional.
#include "kiln/frontend/keras/recurrent.h"

#include <fmt/format.h>

#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/index.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/scan.h"

namespace kiln::layers {

namespace {

// Column block g (of width `units`) of [batch, G·units].
Tensor gate(const Tensor& z, int64_t g, int64_t units) {
  return z.index({Slice(), Slice(g * units, (g + 1) * units)});
}

// x reversed along axis 1 (time).
Tensor reverse_time(const Tensor& x) {
  return x.index({Slice(), Slice(std::nullopt, std::nullopt, -1)});
}

}  // namespace

RNN::RNN(const std::string& kind, int64_t units, int64_t gates, int64_t states, RNNOptions options,
         const std::source_location& loc)
    : Layer(kind, options.name, options.input_shape),
      units_(units),
      gates_(gates),
      states_(states),
      options_(std::move(options)),
      activation_(activations::get(options_.activation, loc)),
      recurrent_activation_(activations::get(options_.recurrent_activation, loc)) {
  if (units <= 0) {
    detail::raise<ValueError>(kind, {}, fmt::format("units must be positive, got {}", units), loc);
  }
  // Unknown initializer names fail here, at the layer's line, not at its first call.
  initializers::get(options_.kernel_initializer, loc);
  initializers::get(options_.recurrent_initializer, loc);
  initializers::get(options_.bias_initializer, loc);
}

Shape RNN::bias_shape() const {
  return Shape{gates_ * units_};
}

initializers::Initializer RNN::bias_initializer() const {
  return initializers::get(options_.bias_initializer);
}

Tensor RNN::input_bias() const {
  return bias();
}

void RNN::build(const Shape& input_shape) {
  if (input_shape.rank() != 3) {
    detail::raise<ShapeError>(class_name(), {},
                              fmt::format("expects inputs of shape [batch, time, features], got {}",
                                          input_shape.to_string()),
                              std::source_location::current());
  }
  int64_t features = input_shape[2];
  add_weight("kernel", Shape{features, gates_ * units_},
             initializers::get(options_.kernel_initializer));
  add_weight("recurrent_kernel", Shape{units_, gates_ * units_},
             initializers::get(options_.recurrent_initializer));
  if (options_.use_bias) add_weight("bias", bias_shape(), bias_initializer());
}

Tensor RNN::call(const Tensor& x, bool training) {
  return call_outputs({x}, training)[0];
}

std::vector<Tensor> RNN::call_outputs(const std::vector<Tensor>& xs, bool) {
  const std::source_location here = std::source_location::current();
  if (xs.size() != 1) {
    detail::raise<ValueError>(class_name(), xs,
                              fmt::format("the layer takes one input, got {}", xs.size()), here);
  }
  Tensor x = xs[0];
  if (x.rank() != 3) {
    detail::raise<ShapeError>(class_name(), {x}, "expects inputs of shape [batch, time, features]",
                              here);
  }
  if (options_.go_backwards) x = reverse_time(x);
  const int64_t batch = x.shape()[0];
  // All steps' input projections at once, time-major for the scan: [time, batch, G·units].
  Tensor projected = matmul(x, kernel());
  if (options_.use_bias) projected = projected + input_bias();
  projected = transpose(projected, {1, 0, 2});
  std::vector<Tensor> init;
  {
    DeviceScope on(x.device());  // the zero states where the inputs are (a GPU's too)
    for (int64_t s = 0; s < states_; ++s)
      init.push_back(zeros({batch, units_}, x.dtype()));
  }
  ScanOptions options;
  options.name = name() + "_step";
  ScanResult r = scan(
      [this](std::span<const Tensor> states, std::span<const Tensor> step_x) {
        std::vector<Tensor> next = step(states, step_x[0]);
        return std::pair{next, std::vector<Tensor>{next[0]}};
      },
      init, {projected}, options);
  std::vector<Tensor> out;
  out.push_back(options_.return_sequences ? transpose(r.ys[0], {1, 0, 2}) : r.carries[0]);
  if (options_.return_state) out.insert(out.end(), r.carries.begin(), r.carries.end());
  return out;
}

SimpleRNN::SimpleRNN(int64_t units, RNNOptions options, std::source_location loc)
    : RNN("simple_rnn", units, 1, 1, std::move(options), loc) {}

std::vector<Tensor> SimpleRNN::step(std::span<const Tensor> states, const Tensor& projected) {
  return {activation_(projected + matmul(states[0], recurrent_kernel()))};
}

LSTM::LSTM(int64_t units, RNNOptions options, std::source_location loc)
    : RNN("lstm", units, 4, 2, std::move(options), loc) {}

initializers::Initializer LSTM::bias_initializer() const {
  if (!options_.unit_forget_bias) return RNN::bias_initializer();
  int64_t u = units_;
  initializers::Initializer base = RNN::bias_initializer();
  // Keras: the initializer's values for i, then ones for f, then its values for c and o.
  return [u, base](const Shape&, DType dtype) {
    Tensor first = base(Shape{u}, dtype), rest = base(Shape{2 * u}, dtype);
    return concat({first, ones({u}, dtype), rest}, 0);
  };
}

std::vector<Tensor> LSTM::step(std::span<const Tensor> states, const Tensor& projected) {
  const Tensor &h = states[0], &c = states[1];
  Tensor z = projected + matmul(h, recurrent_kernel());
  Tensor i = recurrent_activation_(gate(z, 0, units_));
  Tensor f = recurrent_activation_(gate(z, 1, units_));
  Tensor c_next = f * c + i * activation_(gate(z, 2, units_));
  Tensor o = recurrent_activation_(gate(z, 3, units_));
  return {o * activation_(c_next), c_next};
}

GRU::GRU(int64_t units, RNNOptions options, std::source_location loc)
    : RNN("gru", units, 3, 1, std::move(options), loc) {}

Shape GRU::bias_shape() const {
  return options_.reset_after ? Shape{2, 3 * units_} : Shape{3 * units_};
}

Tensor GRU::input_bias() const {
  return options_.reset_after ? bias().index({0}) : bias();
}

std::vector<Tensor> GRU::step(std::span<const Tensor> states, const Tensor& projected) {
  const Tensor& h = states[0];
  const int64_t u = units_;
  Tensor xz = gate(projected, 0, u), xr = gate(projected, 1, u), xh = gate(projected, 2, u);
  Tensor z, r, candidate;
  if (options_.reset_after) {
    Tensor inner = matmul(h, recurrent_kernel());
    if (options_.use_bias) inner = inner + bias().index({1});
    z = recurrent_activation_(xz + gate(inner, 0, u));
    r = recurrent_activation_(xr + gate(inner, 1, u));
    candidate = activation_(xh + r * gate(inner, 2, u));
  } else {
    Tensor u_zr = recurrent_kernel().index({Slice(), Slice(0, 2 * u)});
    Tensor u_h = recurrent_kernel().index({Slice(), Slice(2 * u, 3 * u)});
    Tensor inner = matmul(h, u_zr);
    z = recurrent_activation_(xz + gate(inner, 0, u));
    r = recurrent_activation_(xr + gate(inner, 1, u));
    candidate = activation_(xh + matmul(r * h, u_h));
  }
  return {z * h + (1.0 - z) * candidate};
}

Bidirectional::Bidirectional(std::shared_ptr<RNN> forward, std::shared_ptr<RNN> backward,
                             std::string merge_mode, std::string name,
                             const std::source_location& loc)
    : Wrapper("bidirectional", std::move(name), forward->declared_input_shape(),
              {forward, backward}),
      forward_(std::move(forward)),
      backward_(std::move(backward)),
      merge_mode_(std::move(merge_mode)) {
  if (merge_mode_ != "concat" && merge_mode_ != "sum" && merge_mode_ != "mul" &&
      merge_mode_ != "ave") {
    detail::raise<ValueError>(
        "Bidirectional", {},
        fmt::format("merge_mode must be concat, sum, mul or ave, got '{}'", merge_mode_), loc);
  }
  if (forward_->options().return_state) {
    detail::raise<ValueError>("Bidirectional", {},
                              "a wrapped layer with return_state is not supported yet", loc);
  }
}

Tensor Bidirectional::call(const Tensor& x, bool training) {
  Tensor f = (*forward_)(x, training);
  Tensor b = (*backward_)(x, training);
  // The backward layer's sequence is in its processing order: put it back in time order.
  if (backward_->options().return_sequences) b = reverse_time(b);
  if (merge_mode_ == "sum") return f + b;
  if (merge_mode_ == "mul") return f * b;
  if (merge_mode_ == "ave") return (f + b) * 0.5;
  return concat({f, b}, -1);
}

}  // namespace kiln::layers
