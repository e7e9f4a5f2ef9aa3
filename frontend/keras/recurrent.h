// Keras's recurrent layers (keras.layers.SimpleRNN, LSTM, GRU, Bidirectional) on kiln::scan:
// the recurrence is one `scan` op in the IR, whatever the sequence's length, and its gradient a
// reverse scan.
//
//   k::Sequential series({L::LSTM(64, {.return_sequences = true, .input_shape = {k::None, 1}}),
//                         L::LSTM(64), L::Dense(1)});
//
// Inputs are [batch, time, features]. Weights as Keras's, so Keras weight files load: `kernel`
// [features, G·units], `recurrent_kernel` [units, G·units], `bias` [G·units] (GRU with
// reset_after: [2, 3·units]), with gate blocks in Keras's order (LSTM i, f, c, o; GRU z, r, h).
#pragma once

#include <cstdint>
#include <memory>
#include <source_location>
#include <string>
#include <vector>

#include "kiln/frontend/keras/layers.h"

namespace kiln::layers {

// The recurrent layers' keyword arguments, with Keras's defaults; the ones a layer does not have
// (unit_forget_bias outside LSTM, reset_after outside GRU, recurrent_activation for SimpleRNN)
// are ignored.
struct RNNOptions {
  std::string activation = "tanh";
  std::string recurrent_activation = "sigmoid";
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string recurrent_initializer = "orthogonal";
  std::string bias_initializer = "zeros";
  // LSTM: the forget gate's bias starts at one.
  bool unit_forget_bias = true;
  // The whole sequence of outputs [batch, time, units] instead of the last [batch, units].
  bool return_sequences = false;
  // The final states too: outputs() / apply() give [output, h] (LSTM: [output, h, c]).
  bool return_state = false;
  // Processes the sequence backwards; a returned sequence is in processing order, as Keras's.
  bool go_backwards = false;
  // GRU: the reset gate applies after the recurrent matmul (Keras 2+'s default, cuDNN's form).
  bool reset_after = true;
  InputShape input_shape = {};
  std::string name = "";
};

// What SimpleRNN, LSTM and GRU share: weights, the hoisted input projection x·W + b over all
// steps at once, the scan over time, and the return options.
class RNN : public Layer {
 public:
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  std::vector<Tensor> call_outputs(const std::vector<Tensor>& xs, bool training) override;
  int64_t units() const { return units_; }
  const RNNOptions& options() const { return options_; }

 protected:
  RNN(const std::string& kind, int64_t units, int64_t gates, int64_t states, RNNOptions options,
      const std::source_location& loc);
  // One step: the states before (h, or h and c) and this step's input projection
  // [batch, G·units] to the states after; the output is the new h.
  virtual std::vector<Tensor> step(std::span<const Tensor> states, const Tensor& projected) = 0;
  // The bias's shape and initial value.
  virtual Shape bias_shape() const;
  virtual initializers::Initializer bias_initializer() const;
  // The input projection's bias (GRU reset_after: its row 0).
  virtual Tensor input_bias() const;

  // The weights, from the layer's shared state (a handle copied before build has no members
  // set by it).
  Tensor kernel() const { return weights().at(0).value(); }
  Tensor recurrent_kernel() const { return weights().at(1).value(); }
  Tensor bias() const { return weights().at(2).value(); }

  int64_t units_, gates_, states_;
  RNNOptions options_;
  activations::Activation activation_, recurrent_activation_;
};

// h = activation(x·W + h·U + b).
class SimpleRNN : public RNN {
 public:
  explicit SimpleRNN(int64_t units, RNNOptions options = {},
                     std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(SimpleRNN)

 protected:
  std::vector<Tensor> step(std::span<const Tensor> states, const Tensor& projected) override;
};

// Long short-term memory: z = x·W + h·U + b split into gates i, f, c̃, o;
// c = σ(f)·c + σ(i)·tanh(c̃), h = σ(o)·tanh(c) (activation and recurrent_activation in the
// places of tanh and σ).
class LSTM : public RNN {
 public:
  explicit LSTM(int64_t units, RNNOptions options = {},
                std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(LSTM)

 protected:
  std::vector<Tensor> step(std::span<const Tensor> states, const Tensor& projected) override;
  initializers::Initializer bias_initializer() const override;
};

// Gated recurrent unit, gates z (update), r (reset), h̃: h = z·h + (1 − z)·h̃, with
// h̃ = tanh(x·W_h + b_h + r·(h·U_h + b'_h)) when reset_after (bias [2, 3·units]), else
// tanh(x·W_h + (r·h)·U_h + b_h).
class GRU : public RNN {
 public:
  explicit GRU(int64_t units, RNNOptions options = {},
               std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(GRU)

 protected:
  std::vector<Tensor> step(std::span<const Tensor> states, const Tensor& projected) override;
  Shape bias_shape() const override;
  Tensor input_bias() const override;
};

// Runs a recurrent layer forwards and a copy of it (its own weights) backwards, and merges the
// two outputs: merge_mode "concat" (default), "sum", "mul" or "ave". A backward sequence is put
// back in time order before merging, as Keras does.
class Bidirectional : public Wrapper {
 public:
  template <class R>
  requires std::derived_from<R, RNN>
  explicit Bidirectional(const R& layer, std::string merge_mode = "concat", std::string name = "",
                         std::source_location loc = std::source_location::current())
      : Bidirectional(std::make_shared<R>(layer), make_backward<R>(layer), std::move(merge_mode),
                      std::move(name), loc) {}
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(Bidirectional)
  const std::shared_ptr<RNN>& forward_layer() const { return forward_; }
  const std::shared_ptr<RNN>& backward_layer() const { return backward_; }

 private:
  template <class R>
  static std::shared_ptr<RNN> make_backward(const R& layer) {
    RNNOptions o = layer.options();
    o.go_backwards = !o.go_backwards;
    o.name = "backward_" + layer.name();
    o.input_shape = {};
    return std::make_shared<R>(layer.units(), o);
  }
  Bidirectional(std::shared_ptr<RNN> forward, std::shared_ptr<RNN> backward, std::string merge_mode,
                std::string name, const std::source_location& loc);
  std::shared_ptr<RNN> forward_, backward_;
  std::string merge_mode_;
};

}  // namespace kiln::layers
