#include "kiln/frontend/keras/layers.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>

#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/trace.h"

namespace kiln {

namespace {

std::atomic<uint64_t>& next_seed() {
  static std::atomic<uint64_t> seed{0};
  return seed;
}

uint64_t seed_or_next(std::optional<uint64_t> seed) {
  return seed ? *seed : next_seed().fetch_add(1) * 0x9E3779B97F4A7C15ull + 1;
}

}  // namespace

uint64_t detail::layer_seed(std::optional<uint64_t> seed) {
  return seed_or_next(seed);
}

namespace {

// Keras's fans: a dense kernel [in, out]; a conv kernel [kh, kw, in, out] counts the window.
std::pair<double, double> fans(const Shape& shape) {
  if (shape.rank() < 1) return {1, 1};
  if (shape.rank() == 1) return {double(shape[0]), double(shape[0])};
  double receptive = 1;
  for (int64_t i = 0; i + 2 < shape.rank(); ++i)
    receptive *= double(shape[i]);
  return {double(shape[shape.rank() - 2]) * receptive, double(shape[shape.rank() - 1]) * receptive};
}

initializers::Initializer scaled_uniform(double (*limit)(double, double),
                                         std::optional<uint64_t> seed) {
  uint64_t s = seed_or_next(seed);
  return [limit, s](const Shape& shape, DType dtype) {
    auto [in, out] = fans(shape);
    double l = limit(in, out);
    return random_uniform(shape, -l, l, static_cast<int64_t>(s >> 1), dtype);
  };
}

initializers::Initializer scaled_normal(double (*stddev)(double, double),
                                        std::optional<uint64_t> seed) {
  uint64_t s = seed_or_next(seed);
  return [stddev, s](const Shape& shape, DType dtype) {
    auto [in, out] = fans(shape);
    double sd = stddev(in, out);
    Tensor n = random_normal(shape, 0.0, sd, static_cast<int64_t>(s >> 1), dtype);
    return minimum(maximum(n, -2 * sd), 2 * sd);
  };
}

}  // namespace

void set_random_seed(uint64_t seed) {
  next_seed() = seed;
}

namespace initializers {

Initializer zeros() {
  return [](const Shape& shape, DType dtype) { return kiln::zeros(shape, dtype); };
}

Initializer ones() {
  return [](const Shape& shape, DType dtype) { return kiln::ones(shape, dtype); };
}

Initializer constant(double value) {
  return [value](const Shape& shape, DType dtype) { return fill(shape, value, dtype); };
}

Initializer random_normal(double mean, double stddev, std::optional<uint64_t> seed) {
  uint64_t s = seed_or_next(seed);
  return [=](const Shape& shape, DType dtype) {
    return kiln::random_normal(shape, mean, stddev, static_cast<int64_t>(s >> 1), dtype);
  };
}

Initializer random_uniform(double minval, double maxval, std::optional<uint64_t> seed) {
  uint64_t s = seed_or_next(seed);
  return [=](const Shape& shape, DType dtype) {
    return kiln::random_uniform(shape, minval, maxval, static_cast<int64_t>(s >> 1), dtype);
  };
}

Initializer glorot_uniform(std::optional<uint64_t> seed) {
  return scaled_uniform([](double in, double out) { return std::sqrt(6.0 / (in + out)); }, seed);
}

Initializer glorot_normal(std::optional<uint64_t> seed) {
  return scaled_normal([](double in, double out) { return std::sqrt(2.0 / (in + out)); }, seed);
}

Initializer he_normal(std::optional<uint64_t> seed) {
  return scaled_normal([](double in, double) { return std::sqrt(2.0 / in); }, seed);
}

Initializer he_uniform(std::optional<uint64_t> seed) {
  return scaled_uniform([](double in, double) { return std::sqrt(6.0 / in); }, seed);
}

Initializer orthogonal(double gain, std::optional<uint64_t> seed) {
  uint64_t s = seed_or_next(seed);
  return [gain, s](const Shape& shape, DType dtype) {
    int64_t cols = shape.rank() == 0 ? 1 : shape[shape.rank() - 1];
    int64_t rows = cols == 0 ? 0 : shape.num_elements() / cols;
    int64_t n = std::max(rows, cols), m = std::min(rows, cols);
    // Columns of an n×m normal matrix, orthonormalised by modified Gram-Schmidt: the Q of a QR
    // whose R has a positive diagonal, which is what Keras's sign correction makes of LAPACK's.
    std::vector<double> a = kiln::random_normal({n, m}, 0.0, 1.0, static_cast<int64_t>(s >> 1), f64)
                                .to_vector<double>();
    auto at = [&](int64_t i, int64_t j) -> double& { return a[static_cast<size_t>(i * m + j)]; };
    for (int64_t j = 0; j < m; ++j) {
      for (int64_t k = 0; k < j; ++k) {
        double dot = 0;
        for (int64_t i = 0; i < n; ++i)
          dot += at(i, k) * at(i, j);
        for (int64_t i = 0; i < n; ++i)
          at(i, j) -= dot * at(i, k);
      }
      double norm = 0;
      for (int64_t i = 0; i < n; ++i)
        norm += at(i, j) * at(i, j);
      norm = std::sqrt(norm);
      for (int64_t i = 0; i < n; ++i)
        at(i, j) = norm > 0 ? at(i, j) / norm : 0.0;
    }
    // Q is n×m; the weight is rows×cols: Q itself, or its transpose when rows < cols.
    std::vector<double> out(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        out[static_cast<size_t>(r * cols + c)] = gain * (rows >= cols ? at(r, c) : at(c, r));
    return cast(kiln::constant(out, shape), dtype);
  };
}

Initializer get(const std::string& name, std::source_location loc) {
  if (name == "orthogonal") return orthogonal();
  if (name == "zeros") return zeros();
  if (name == "ones") return ones();
  if (name == "random_normal") return random_normal();
  if (name == "random_uniform") return random_uniform();
  if (name == "glorot_uniform") return glorot_uniform();
  if (name == "glorot_normal") return glorot_normal();
  if (name == "he_normal") return he_normal();
  if (name == "he_uniform") return he_uniform();
  detail::raise<ValueError>("initializers.get", {},
                            fmt::format("unknown initializer '{}'; known: zeros, ones, "
                                        "random_normal, random_uniform, glorot_uniform, "
                                        "glorot_normal, he_normal, he_uniform, orthogonal",
                                        name),
                            loc);
}

}  // namespace initializers

namespace activations {

Activation get(const std::string& name, std::source_location loc) {
  if (name.empty() || name == "linear") return [](const Tensor& x) { return x; };
  if (name == "relu") return [](const Tensor& x) { return relu(x); };
  if (name == "sigmoid") return [](const Tensor& x) { return sigmoid(x); };
  if (name == "tanh") return [](const Tensor& x) { return tanh(x); };
  if (name == "softmax") return [](const Tensor& x) { return softmax(x); };
  if (name == "elu") return [](const Tensor& x) { return elu(x); };
  if (name == "softplus") return [](const Tensor& x) { return softplus(x); };
  if (name == "gelu") return [](const Tensor& x) { return gelu(x); };
  if (name == "exponential") return [](const Tensor& x) { return exp(x); };
  detail::raise<ValueError>("activations.get", {},
                            fmt::format("unknown activation '{}'; known: linear, relu, sigmoid, "
                                        "tanh, softmax, elu, softplus, gelu, exponential",
                                        name),
                            loc);
}

}  // namespace activations

namespace detail {
std::string cast_hint(DType got, DType want) {
  std::string cast = fmt::format("k::cast(x, k::{})", ir::dtype_name(want));
  if (got == DType::u8) {
    return fmt::format("cast to {} and scale, e.g. {} / 255.f", ir::dtype_name(want), cast);
  }
  return fmt::format("cast to {} first, e.g. {}", ir::dtype_name(want), cast);
}
}  // namespace detail

namespace {
// How many layers of each kind were named so far.
struct NameCounts {
  std::mutex mutex;
  std::map<std::string, int64_t> counts;
};
NameCounts& name_counts() {
  static NameCounts counts;
  return counts;
}
}  // namespace

void clear_session() {
  NameCounts& c = name_counts();
  std::lock_guard lock(c.mutex);
  c.counts.clear();
}

namespace layers {

namespace {
// "dense", then "dense_1", "dense_2", ... per kind, as Keras names layers.
std::string unique_name(const std::string& kind) {
  NameCounts& c = name_counts();
  std::lock_guard lock(c.mutex);
  int64_t n = c.counts[kind]++;
  return n == 0 ? kind : fmt::format("{}_{}", kind, n);
}
}  // namespace

Layer::Layer(const std::string& kind, std::string name, InputShape input_shape)
    : state_(std::make_shared<State>()) {
  state_->name = name.empty() ? unique_name(kind) : std::move(name);
  state_->input_shape = std::move(input_shape.shape);
}

Layer& Layer::operator=(const Layer& other) {
  state_ = other.state_;
  trainable.flag_ = other.trainable.flag_;
  return *this;
}

// A layer without a build() of its own is built by this one: Keras's layer.build(shape) by hand
// marks it built (layers that override build() are marked by add_weight).
void Layer::build(const Shape&) {
  state_->built = true;
}

void Layer::build_list(const std::vector<Shape>& input_shapes) {
  if (input_shapes.size() == 1) build(input_shapes[0]);
}

Tensor Layer::call_list(const std::vector<Tensor>& xs, bool training) {
  if (xs.size() != 1) {
    detail::raise<ValueError>(class_name(), xs,
                              fmt::format("the layer takes one input, got a list of {}", xs.size()),
                              std::source_location::current());
  }
  return call(xs[0], training);
}

void Layer::prepare(const std::vector<Tensor>& xs, const std::source_location& here) {
  for (const Tensor& x : xs) {
    if (!state_->input_shape || x.rank() < 1) continue;
    Shape sample(std::vector<int64_t>(x.shape().begin() + 1, x.shape().end()));
    const Shape& want = *state_->input_shape;
    bool same = sample.rank() == want.rank();
    for (int64_t d = 0; same && d < want.rank(); ++d)
      same = want[d] == kiln::None || want[d] == sample[d];
    if (!same) {
      detail::raise<ShapeError>(
          class_name(), {x},
          fmt::format("the layer was declared with input_shape {} but gets samples of shape {}; "
                      "input_shape belongs on a model's first layer only: remove it here or "
                      "make it match",
                      want.to_string(), sample.to_string()),
          here);
    }
  }
  if (!state_->built) {
    std::vector<Shape> shapes;
    for (const Tensor& x : xs)
      shapes.push_back(x.shape());
    // add_weight marks the layer built as it goes: a build that fails takes back what it made,
    // so the next call builds again from nothing.
    const size_t made = state_->weights.size();
    try {
      if (xs.size() == 1) {
        build(shapes[0]);
      } else {
        build_list(shapes);
      }
    } catch (...) {
      state_->weights.erase(state_->weights.begin() + static_cast<ptrdiff_t>(made),
                            state_->weights.end());
      state_->weight_trainable.erase(
          state_->weight_trainable.begin() + static_cast<ptrdiff_t>(made),
          state_->weight_trainable.end());
      state_->built = false;
      throw;
    }
    state_->built = true;
  }
  for (const Tensor& x : xs) {
    if (ir::is_floating(x.dtype()) || takes_indices()) continue;
    for (const Variable& w : state_->weights) {
      if (!ir::is_floating(w.dtype())) continue;
      detail::raise<TypeError>(
          class_name(), {x},
          fmt::format("the layer computes in {} but its input is {}: {}", ir::dtype_name(w.dtype()),
                      x.type().to_string(), kiln::detail::cast_hint(x.dtype(), w.dtype())),
          here);
    }
  }
}

Tensor Layer::operator()(const Tensor& x, bool training, std::source_location loc) {
  return outputs({x}, training, loc)[0];
}

std::vector<Tensor> Layer::call_outputs(const std::vector<Tensor>& xs, bool training) {
  return {xs.size() == 1 ? call(xs[0], training) : call_list(xs, training)};
}

std::vector<Tensor> Layer::outputs(const std::vector<Tensor>& xs, bool training,
                                   std::source_location loc) {
  detail::UserSite site(loc);
  const std::source_location here = std::source_location::current();
  if (xs.empty()) detail::raise<ValueError>(name(), {}, "the list of inputs is empty", loc);
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!xs[i].defined()) {
      detail::raise<ValueError>(name(), {},
                                xs.size() == 1 ? std::string("the input is an undefined Tensor")
                                               : fmt::format("input {} is an undefined Tensor", i),
                                loc);
    }
  }
  name_scope scope(name());
  try {
    prepare(xs, here);
    return call_outputs(xs, training);
  } catch (InternalError&) {
    throw;
  } catch (Error& e) {
    e.add_layer_context(name(), class_name());
    throw;
  }
}

Tensor Layer::operator()(const std::vector<Tensor>& xs, bool training, std::source_location loc) {
  return outputs(xs, training, loc)[0];
}

std::vector<Variable> Layer::trainable_weights() const {
  std::vector<Variable> out;
  if (!trainable()) return out;
  for (size_t i = 0; i < state_->weights.size(); ++i)
    if (state_->weight_trainable[i]) out.push_back(state_->weights[i]);
  return out;
}

std::vector<Variable> Layer::non_trainable_weights() const {
  std::vector<Variable> out;
  for (size_t i = 0; i < state_->weights.size(); ++i)
    if (!trainable() || !state_->weight_trainable[i]) out.push_back(state_->weights[i]);
  return out;
}

int64_t Layer::count_params() const {
  int64_t n = 0;
  for (const Variable& v : state_->weights)
    n += v.shape().num_elements();
  return n;
}

Variable Layer::add_weight(const std::string& name, const Shape& shape,
                           const initializers::Initializer& initializer, bool trainable,
                           DType dtype) {
  // Weights are made from concrete values even when the first call happens while tracing.
  Tensor initial;
  {
    detail::EagerScope eager;
    initial = initializer(shape, dtype);
  }
  // On the initializer's device: the innermost DeviceScope's, where its creation ops ran.
  Variable v = detail::VariableAccess::create(initial, state_->name + "/" + name, trainable);
  state_->weights.push_back(v);
  state_->weight_trainable.push_back(trainable);
  // A layer that has made weights is built, also when build() was called by hand (Keras's
  // layer.build(shape)): its first call must not make them again.
  state_->built = true;
  return v;
}

Wrapper::Wrapper(const std::string& kind, std::string name, InputShape input_shape,
                 std::vector<std::shared_ptr<Layer>> inner)
    : Layer(kind, std::move(name), std::move(input_shape)), inner_(std::move(inner)) {}

bool Wrapper::built() const {
  return std::all_of(inner_.begin(), inner_.end(), [](const auto& l) { return l->built(); });
}

std::vector<Variable> Wrapper::weights() const {
  std::vector<Variable> out;
  for (const auto& l : inner_) {
    std::vector<Variable> w = l->weights();
    out.insert(out.end(), w.begin(), w.end());
  }
  return out;
}

std::vector<Variable> Wrapper::trainable_weights() const {
  std::vector<Variable> out;
  if (!trainable()) return out;
  for (const auto& l : inner_) {
    std::vector<Variable> w = l->trainable_weights();
    out.insert(out.end(), w.begin(), w.end());
  }
  return out;
}

std::vector<Variable> Wrapper::non_trainable_weights() const {
  if (!trainable()) return weights();
  std::vector<Variable> out;
  for (const auto& l : inner_) {
    std::vector<Variable> w = l->non_trainable_weights();
    out.insert(out.end(), w.begin(), w.end());
  }
  return out;
}

int64_t Wrapper::count_params() const {
  int64_t n = 0;
  for (const auto& l : inner_)
    n += l->count_params();
  return n;
}

Dense::Dense(int64_t units, const std::string& activation, InputShape input_shape, bool use_bias,
             const std::string& kernel_initializer, const std::string& bias_initializer,
             std::string name, std::source_location loc)
    : Layer("dense", std::move(name), std::move(input_shape)),
      units_(units),
      activation_name_(activation),
      activation_(activations::get(activation, loc)),
      use_bias_(use_bias),
      kernel_initializer_(initializers::get(kernel_initializer, loc)),
      bias_initializer_(initializers::get(bias_initializer, loc)) {
  if (units <= 0) {
    detail::raise<ValueError>("Dense", {}, fmt::format("units must be positive, got {}", units),
                              loc);
  }
}

void Dense::build(const Shape& input_shape) {
  if (input_shape.rank() < 1) {
    detail::raise<ShapeError>(
        "Dense", {},
        fmt::format("needs inputs of rank >= 1, got shape {}", input_shape.to_string()),
        std::source_location::current());
  }
  int64_t in = input_shape[input_shape.rank() - 1];
  add_weight("kernel", Shape{in, units_}, kernel_initializer_);
  if (use_bias_) add_weight("bias", Shape{units_}, bias_initializer_);
}

Variable Dense::kernel() const {
  return weights().at(0);
}

Variable Dense::bias() const {
  return use_bias_ ? weights().at(1) : Variable();
}

Tensor Dense::call(const Tensor& x, bool) {
  int64_t features = kernel().shape()[0];
  if (x.rank() < 1 || x.shape()[x.rank() - 1] != features) {
    detail::raise<ShapeError>("Dense", {x},
                              fmt::format("the layer was built for inputs with {} features (the "
                                          "last axis), got input of shape {}",
                                          features, x.shape().to_string()),
                              std::source_location::current());
  }
  Tensor y = matmul(x, kernel());
  if (use_bias_) y = y + bias();
  return activation_(y);
}

Flatten::Flatten(InputShape input_shape, std::string name)
    : Layer("flatten", std::move(name), std::move(input_shape)) {}

Tensor Flatten::call(const Tensor& x, bool) {
  if (x.rank() == 0) {
    detail::raise<ShapeError>("Flatten", {x}, "the input needs a batch dimension",
                              std::source_location::current());
  }
  int64_t rest = 1;
  for (int64_t d = 1; d < x.rank(); ++d)
    rest *= x.shape()[d];
  return reshape(x, Shape{x.shape()[0], rest});
}

Activation::Activation(const std::string& activation, std::string name, std::source_location loc)
    : Layer("activation", std::move(name), std::nullopt),
      activation_(activations::get(activation, loc)) {}

Tensor Activation::call(const Tensor& x, bool) {
  return activation_(x);
}

ReLU::ReLU(std::optional<double> max_value, double negative_slope, double threshold,
           std::string name, std::source_location loc)
    : Layer("re_lu", std::move(name), std::nullopt),
      max_value_(max_value),
      negative_slope_(negative_slope),
      threshold_(threshold) {
  if (max_value && !(*max_value >= 0)) {
    detail::raise<ValueError>("ReLU", {},
                              fmt::format("max_value cannot be negative, got {}", *max_value), loc);
  }
  if (!(negative_slope >= 0)) {
    detail::raise<ValueError>(
        "ReLU", {}, fmt::format("negative_slope cannot be negative, got {}", negative_slope), loc);
  }
  if (!std::isfinite(threshold)) {
    detail::raise<ValueError>(
        "ReLU", {}, fmt::format("threshold must be a finite number, got {}", threshold), loc);
  }
}

Tensor ReLU::call(const Tensor& x, bool) {
  // The steps of Keras's activations.relu, in its order.
  Tensor y = threshold_ != 0 ? where(greater(x, threshold_), x, zeros_like(x)) : relu(x);
  if (max_value_) {
    y = minimum(y, *max_value_);
    if (threshold_ != 0) y = maximum(y, 0.0);
  }
  if (negative_slope_ != 0) y = y - negative_slope_ * relu(threshold_ - x);
  return y;
}

Reshape::Reshape(Shape target_shape, InputShape input_shape, std::string name)
    : Layer("reshape", std::move(name), std::move(input_shape)), target_(std::move(target_shape)) {}

Tensor Reshape::call(const Tensor& x, bool) {
  std::vector<int64_t> dims{x.shape()[0]};
  dims.insert(dims.end(), target_.begin(), target_.end());
  return reshape(x, Shape(dims));
}

Conv2D::Conv2D(int64_t filters, std::vector<int64_t> kernel_size, std::vector<int64_t> strides,
               std::string padding, const std::string& activation, InputShape input_shape,
               bool use_bias, const std::string& kernel_initializer,
               const std::string& bias_initializer, std::string name, std::source_location loc)
    : Layer("conv2d", std::move(name), std::move(input_shape)),
      filters_(filters),
      kernel_size_(std::move(kernel_size)),
      strides_(std::move(strides)),
      padding_(std::move(padding)),
      activation_(activations::get(activation, loc)),
      use_bias_(use_bias),
      kernel_initializer_(initializers::get(kernel_initializer, loc)),
      bias_initializer_(initializers::get(bias_initializer, loc)) {
  if (kernel_size_.size() == 1) kernel_size_.push_back(kernel_size_[0]);
  bool ok = filters > 0 && kernel_size_.size() == 2 && kernel_size_[0] > 0 && kernel_size_[1] > 0;
  if (!ok) {
    detail::raise<ValueError>("Conv2D", {},
                              fmt::format("need filters > 0 and a positive kernel_size (one or "
                                          "two values), got {} and {} values",
                                          filters, kernel_size_.size()),
                              loc);
  }
}

Conv2D::Conv2D(int64_t filters, int64_t kernel_size, Conv2DOptions options,
               std::source_location loc)
    : Conv2D(filters, std::initializer_list<int64_t>{kernel_size}, std::move(options), loc) {}

Conv2D::Conv2D(int64_t filters, std::initializer_list<int64_t> kernel_size, Conv2DOptions options,
               std::source_location loc)
    : Conv2D(filters, std::vector<int64_t>(kernel_size), options.strides.dims, options.padding,
             options.activation, std::move(options.input_shape), options.use_bias,
             options.kernel_initializer, options.bias_initializer, std::move(options.name), loc) {
  // Keras checks its keywords when the layer is made, not on its first call.
  auto sizes_ok = [](const std::vector<int64_t>& v) {
    return (v.size() == 1 || v.size() == 2) &&
           std::all_of(v.begin(), v.end(), [](int64_t d) { return d > 0; });
  };
  if (!sizes_ok(strides_) || !sizes_ok(options.dilation_rate.dims)) {
    detail::raise<ValueError>(
        "Conv2D", {},
        fmt::format("strides and dilation_rate need one or two positive "
                    "values, got ({}) and ({})",
                    fmt::join(strides_, ", "), fmt::join(options.dilation_rate.dims, ", ")),
        loc);
  }
  if (padding_ != "valid" && padding_ != "same") {
    detail::raise<ValueError>(
        "Conv2D", {}, fmt::format("padding must be \"valid\" or \"same\", got \"{}\"", padding_),
        loc);
  }
  dilation_rate_ = options.dilation_rate.dims;
}

void Conv2D::build(const Shape& input_shape) {
  if (input_shape.rank() != 4) {
    detail::raise<ShapeError>(
        "Conv2D", {},
        fmt::format("needs NHWC inputs of rank 4, got shape {}", input_shape.to_string()),
        std::source_location::current());
  }
  add_weight("kernel", Shape{kernel_size_[0], kernel_size_[1], input_shape[3], filters_},
             kernel_initializer_);
  if (use_bias_) add_weight("bias", Shape{filters_}, bias_initializer_);
}

Tensor Conv2D::call(const Tensor& x, bool) {
  int64_t channels = weights().at(0).shape()[2];
  if (x.rank() != 4 || x.shape()[3] != channels) {
    detail::raise<ShapeError>("Conv2D", {x},
                              fmt::format("the layer was built for NHWC inputs with {} channels, "
                                          "got input of shape {}",
                                          channels, x.shape().to_string()),
                              std::source_location::current());
  }
  Tensor y = conv2d(x, weights().at(0), strides_, padding_, dilation_rate_);
  if (use_bias_) y = y + weights().at(1);
  return activation_(y);
}

Pooling2D::Pooling2D(const std::string& kind, std::vector<int64_t> pool_size,
                     std::vector<int64_t> strides, std::string padding, std::string name)
    : Layer(kind, std::move(name), std::nullopt),
      pool_size_(std::move(pool_size)),
      strides_(std::move(strides)),
      padding_(std::move(padding)) {}

MaxPooling2D::MaxPooling2D(std::vector<int64_t> pool_size, std::vector<int64_t> strides,
                           std::string padding, std::string name)
    : Pooling2D("max_pooling2d", std::move(pool_size), std::move(strides), std::move(padding),
                std::move(name)) {}

Tensor MaxPooling2D::call(const Tensor& x, bool) {
  return max_pool2d(x, pool_size_, strides_, padding_);
}

AveragePooling2D::AveragePooling2D(std::vector<int64_t> pool_size, std::vector<int64_t> strides,
                                   std::string padding, std::string name)
    : Pooling2D("average_pooling2d", std::move(pool_size), std::move(strides), std::move(padding),
                std::move(name)) {}

Tensor AveragePooling2D::call(const Tensor& x, bool) {
  return avg_pool2d(x, pool_size_, strides_, padding_);
}

GlobalPooling::GlobalPooling(const std::string& kind, const char* class_name, int64_t spatial_rank,
                             bool max, std::string data_format, bool keepdims, std::string name,
                             std::source_location loc)
    : Layer(kind, std::move(name), std::nullopt),
      spatial_rank_(spatial_rank),
      max_(max),
      data_format_(std::move(data_format)),
      keepdims_(keepdims) {
  if (data_format_ != "channels_last" && data_format_ != "channels_first") {
    // A base constructor cannot call the virtual class_name(): the subclass passes its own.
    detail::raise<ValueError>(
        class_name, {},
        fmt::format("data_format must be \"channels_last\" or \"channels_first\", got \"{}\"",
                    data_format_),
        loc);
  }
}

Tensor GlobalPooling::call(const Tensor& x, bool) {
  int64_t rank = spatial_rank_ + 2;
  if (x.rank() != rank) {
    std::string layout =
        spatial_rank_ == 1 ? (data_format_ == "channels_last" ? "[batch, steps, channels]"
                                                              : "[batch, channels, steps]")
                           : (data_format_ == "channels_last" ? "[batch, height, width, channels]"
                                                              : "[batch, channels, height, width]");
    detail::raise<ShapeError>(class_name(), {x},
                              fmt::format("needs inputs of rank {} ({}), got shape {}", rank,
                                          layout, x.shape().to_string()),
                              std::source_location::current());
  }
  // The spatial axes follow the batch axis (channels_last) or the channels (channels_first).
  int64_t first = data_format_ == "channels_last" ? 1 : 2;
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < spatial_rank_; ++d)
    axes.push_back(first + d);
  return max_ ? reduce_max(x, axes, keepdims_) : reduce_mean(x, axes, keepdims_);
}

GlobalAveragePooling1D::GlobalAveragePooling1D(std::string data_format, bool keepdims,
                                               std::string name, std::source_location loc)
    : GlobalPooling("global_average_pooling1d", "GlobalAveragePooling1D", 1, /*max=*/false,
                    std::move(data_format), keepdims, std::move(name), loc) {}

GlobalMaxPooling1D::GlobalMaxPooling1D(std::string data_format, bool keepdims, std::string name,
                                       std::source_location loc)
    : GlobalPooling("global_max_pooling1d", "GlobalMaxPooling1D", 1, /*max=*/true,
                    std::move(data_format), keepdims, std::move(name), loc) {}

GlobalAveragePooling2D::GlobalAveragePooling2D(std::string data_format, bool keepdims,
                                               std::string name, std::source_location loc)
    : GlobalPooling("global_average_pooling2d", "GlobalAveragePooling2D", 2, /*max=*/false,
                    std::move(data_format), keepdims, std::move(name), loc) {}

GlobalMaxPooling2D::GlobalMaxPooling2D(std::string data_format, bool keepdims, std::string name,
                                       std::source_location loc)
    : GlobalPooling("global_max_pooling2d", "GlobalMaxPooling2D", 2, /*max=*/true,
                    std::move(data_format), keepdims, std::move(name), loc) {}

ZeroPadding2D::ZeroPadding2D(
    std::pair<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>> padding, std::string name)
    : Layer("zero_padding2d", std::move(name), std::nullopt), padding_(padding) {}

ZeroPadding2D::ZeroPadding2D(int64_t padding, std::string name)
    : ZeroPadding2D({{padding, padding}, {padding, padding}}, std::move(name)) {}

Tensor ZeroPadding2D::call(const Tensor& x, bool) {
  return pad(x, {{0, 0}, padding_.first, padding_.second, {0, 0}});
}

Dropout::Dropout(double rate, std::optional<uint64_t> seed, std::string name,
                 std::source_location loc)
    : Layer("dropout", std::move(name), std::nullopt),
      rate_(rate),
      seed_(static_cast<int64_t>(seed_or_next(seed) >> 1)) {
  if (!(rate >= 0 && rate < 1)) {
    detail::raise<ValueError>("Dropout", {}, fmt::format("rate must be in [0, 1), got {}", rate),
                              loc);
  }
  step_ = detail::VariableAccess::create(ir::HostTensor::scalar<int64_t>(0), this->name() + "/step",
                                         /*trainable=*/false);
}

Tensor Dropout::call(const Tensor& x, bool training) {
  if (!training || rate_ == 0) return x;
  {
    // The counter lives on the host (a 0-d operand goes along to any device): its increment too,
    // under a GPU DeviceScope.
    DeviceScope on_host(Device::cpu());
    step_.assign_add(constant(int64_t{1}));
  }
  // The draw runs where its operand, the step, is: on x's device, so that the mask is there too.
  Tensor step = step_.value();
  if (!x.is_symbolic() && !x.device().is_cpu()) step = step.to(x.device());
  Tensor u = random_uniform_at(x.shape(), step, 0.0, 1.0, seed_, x.dtype());
  return where(greater_equal(u, rate_), x / (1.0 - rate_), zeros_like(x));
}

BatchNormalization::BatchNormalization(int64_t axis, double momentum, double epsilon, bool center,
                                       bool scale, std::string name, std::source_location loc)
    : Layer("batch_normalization", std::move(name), std::nullopt),
      axis_(axis),
      momentum_(momentum),
      epsilon_(epsilon),
      center_(center),
      scale_(scale) {
  if (!(momentum >= 0 && momentum <= 1) || !(epsilon > 0)) {
    detail::raise<ValueError>(
        "BatchNormalization", {},
        fmt::format("need 0 <= momentum <= 1 and epsilon > 0, got {} and {}", momentum, epsilon),
        loc);
  }
}

void BatchNormalization::build(const Shape& input_shape) {
  int64_t axis = ir::normalize_axis(axis_, input_shape.rank());
  Shape channels{input_shape[axis]};
  if (scale_) add_weight("gamma", channels, initializers::ones());
  if (center_) add_weight("beta", channels, initializers::zeros());
  add_weight("moving_mean", channels, initializers::zeros(), /*trainable=*/false);
  add_weight("moving_variance", channels, initializers::ones(), /*trainable=*/false);
}

Tensor BatchNormalization::call(const Tensor& x, bool training) {
  int64_t axis = ir::normalize_axis(axis_, x.rank());
  std::vector<int64_t> reduce;
  std::vector<int64_t> kept(static_cast<size_t>(x.rank()), 1);
  kept[static_cast<size_t>(axis)] = x.shape()[axis];
  for (int64_t d = 0; d < x.rank(); ++d)
    if (d != axis) reduce.push_back(d);
  // weights(): [gamma][beta] moving_mean moving_variance.
  std::vector<Variable> w = weights();
  size_t stats = size_t(scale_) + size_t(center_);
  Variable moving_mean = w[stats], moving_variance = w[stats + 1];
  Tensor mean, variance;
  // A frozen layer runs in inference mode, as Keras's since TF 2.0: fine-tuning a model whose
  // BatchNormalization layers are frozen must not move their statistics.
  if (training && trainable()) {
    mean = reduce_mean(x, reduce);
    variance = reduce_mean(square(x - reshape(mean, Shape(kept))), reduce);
    moving_mean.assign(moving_mean * momentum_ + mean * (1.0 - momentum_));
    moving_variance.assign(moving_variance * momentum_ + variance * (1.0 - momentum_));
  } else {
    mean = moving_mean.value();
    variance = moving_variance.value();
  }
  Tensor y = (x - reshape(mean, Shape(kept))) * reshape(rsqrt(variance + epsilon_), Shape(kept));
  size_t next = 0;
  if (scale_) y = y * reshape(w[next++].value(), Shape(kept));
  if (center_) y = y + reshape(w[next++].value(), Shape(kept));
  return y;
}

Lambda::Lambda(std::function<Tensor(const Tensor&)> fn, std::string name)
    : Layer("lambda", std::move(name), std::nullopt), fn_(std::move(fn)) {}

Tensor Lambda::call(const Tensor& x, bool) {
  return fn_(x);
}

}  // namespace layers
}  // namespace kiln
