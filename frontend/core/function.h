// kiln::function: the analogue of tf.function. Wraps a C++ callable taking and returning tensors;
// the first call with a given signature (dtypes and shapes of the tensor arguments, the values
// of plain C++ arguments) traces the body into an ir::Function, compiles it and caches it; later
// calls with that signature run the compiled code.
//
//   auto poly = k::function([](const k::Tensor& x) { return 10.f * x * x - 5.f * x + 4.f; },
//                           "poly");
//   k::Tensor y = poly(k::constant({1.f, 2.f}));
//
// Parameters may be Tensor (by value or const&), std::vector / std::tuple / std::pair of
// tensors, Variable (by value or reference) and plain values (arithmetic types, enums,
// std::string), which are baked into the trace. Results may be a Tensor, such structures of
// tensors, or void. C++ control flow runs once, at trace time. Concrete tensors the body uses
// without receiving them become implicit inputs, read on each call; Variable reads become inputs
// and assigns become updates applied after each call. Called while another function is being
// traced, a function is inlined into that trace (it does not trace or cache on its own).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "kiln/frontend/core/function_args.h"
#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/core/variable.h"
#include "kiln/ir/function.h"

namespace kiln {

namespace detail {

struct TracedEntry;
struct Signature;
struct Binding;

// One traced signature as kiln::aot compiles it: the IR, and what each parameter is bound to.
struct TracedView {
  const ir::Function& graph;
  std::span<const Binding> bindings;  // one per parameter (frontend/core/trace.h)
  // One per check_numerics call, whose values end the graph's outputs: "message (at file:line)".
  std::vector<std::string> checks;
};

// The non-template heart of every kiln::function: signatures, the cache, tracing, running.
class FunctionCore {
 public:
  // Runs the user's body on the symbolic tensor leaves of the arguments and returns its result
  // flattened to tensors (writing the lengths of vectors in the result to `result_sizes`).
  using Body = std::function<std::vector<Tensor>(std::span<const Tensor> leaves,
                                                 std::vector<size_t>& result_sizes)>;

  // `parameter_types` spells the `arity` C++ parameters for errors ("Tensor, int").
  FunctionCore(std::string name, std::string parameter_types, size_t arity);
  ~FunctionCore();

  // The cache entry for the call's signature; traces and compiles it (under the lock) if new.
  // Entries live as long as the core. A hit builds no text and allocates nothing.
  const TracedEntry& entry(const CallArgs& call, const Body& body);
  // Runs an entry: binds arguments, captures and variables, runs, applies variable updates.
  std::vector<Tensor> run(const TracedEntry& entry, const CallArgs& call) const;

  const ir::Function& graph(const TracedEntry& entry) const;
  std::span<const Binding> bindings(const TracedEntry& entry) const;
  std::vector<std::string> check_messages(const TracedEntry& entry) const;
  std::string compiled_ir(const TracedEntry& entry) const;
  std::span<const size_t> result_sizes(const TracedEntry& entry) const;

  int64_t trace_count() const;
  const std::string& name() const { return name_; }
  void set_log_retraces(bool on) { log_retraces_ = on; }
  // "poly(Tensor, int)"
  std::string expected_signature() const;

  // TypeError for a call with the wrong number of arguments (`given` spells their types).
  [[noreturn]] void wrong_arity(std::span<const std::string> given) const;
  // TypeError for argument `index`, of C++ type `given`, that does not convert to its parameter.
  [[noreturn]] void wrong_argument(size_t index, const std::string& given,
                                   const std::string& expected) const;

 private:
  struct State;
  // The cached entry for a signature key, or nullptr.
  const TracedEntry* find(const std::string& key) const;
  // Logs what changed against the closest cached signature (and warns on the 5th retrace).
  void report_retrace(const Signature& signature);
  Device call_device(TracedEntry& entry, const CallArgs& call) const;
  std::vector<Tensor> run_on_device(const TracedEntry& entry, const CallArgs& call) const;
  void warn_retracing(int64_t retraces) const;

  std::string name_;
  std::string parameter_types_;
  size_t arity_;
  bool log_retraces_ = true;
  std::unique_ptr<State> state_;
};

// The parameter and result types of a callable with one (non-template) operator().
template <class F>
struct CallableTraits : CallableTraits<decltype(&F::operator())> {};
template <class R, class... Ps>
struct CallableTraits<R (*)(Ps...)> {
  using Result = R;
  using Params = std::tuple<Ps...>;
};
template <class R, class C, class... Ps>
struct CallableTraits<R (C::*)(Ps...)> : CallableTraits<R (*)(Ps...)> {};
template <class R, class C, class... Ps>
struct CallableTraits<R (C::*)(Ps...) const> : CallableTraits<R (*)(Ps...)> {};
template <class R, class C, class... Ps>
struct CallableTraits<R (C::*)(Ps...) noexcept> : CallableTraits<R (*)(Ps...)> {};
template <class R, class C, class... Ps>
struct CallableTraits<R (C::*)(Ps...) const noexcept> : CallableTraits<R (*)(Ps...)> {};
template <class R, class... Ps>
struct CallableTraits<R (*)(Ps...) noexcept> : CallableTraits<R (*)(Ps...)> {};

// Index of the first argument type that does not convert to its parameter, or -1.
template <class Params, class... Args, size_t... I>
constexpr int first_mismatch(std::index_sequence<I...>) {
  int bad = -1;
  ((bad < 0 && !std::is_convertible_v<Args, std::tuple_element_t<I, Params>>
        ? bad = static_cast<int>(I)
        : 0),
   ...);
  return bad;
}

}  // namespace detail

template <class F>
class Function {
  using Traits = detail::CallableTraits<F>;
  using Result = std::decay_t<typename Traits::Result>;
  template <class Tuple>
  struct DecayAll;
  template <class... Ps>
  struct DecayAll<std::tuple<Ps...>> {
    using type = std::tuple<std::decay_t<Ps>...>;
  };
  // The arguments of one call, held as the parameters' value types.
  using Bound = typename DecayAll<typename Traits::Params>::type;
  static constexpr size_t kArity = std::tuple_size_v<Bound>;

  static_assert(std::is_void_v<Result> || detail::TensorTree<Result>::ok,
                "a kiln::function must return void, a Tensor, or a std::vector / std::tuple / "
                "std::pair of tensors");

 public:
  Function(F fn, std::string name)
      : fn_(std::make_shared<F>(std::move(fn))),
        core_(std::make_shared<detail::FunctionCore>(std::move(name), parameter_types(), kArity)) {}

  // Calls the function: runs the compiled code for this signature (tracing it first if new);
  // inlined into the caller's trace when called while another function is being traced.
  // A call that does not match the parameters throws TypeError naming the function and the
  // expected signature.
  template <class... Args>
  Result operator()(Args&&... args) const {
    Bound bound = bind(std::forward<Args>(args)...);
    if (detail::current_trace_active()) return std::apply(*fn_, bound);
    detail::CallArgs call = describe(bound);
    const detail::TracedEntry& entry = core_->entry(call, body(bound));
    std::vector<Tensor> results = core_->run(entry, call);
    if constexpr (!std::is_void_v<Result>) {
      detail::LeafReader reader{results, core_->result_sizes(entry)};
      return detail::TensorTree<Result>::rebuild(reader);
    }
  }

  // The IR traced for these arguments' signature (tracing it if new), before any pass.
  template <class... Args>
  const ir::Function& graph(Args&&... args) const {
    return core_->graph(entry_for(std::forward<Args>(args)...));
  }
  // The traced IR for these arguments' signature with the binding of each parameter
  // (argument, captured tensor or variable): what kiln::aot::compile needs.
  template <class... Args>
  detail::TracedView traced(Args&&... args) const {
    const detail::TracedEntry& entry = entry_for(std::forward<Args>(args)...);
    return {core_->graph(entry), core_->bindings(entry), core_->check_messages(entry)};
  }
  // The IR for these arguments' signature after the pass pipeline, as text.
  template <class... Args>
  std::string compiled_ir(Args&&... args) const {
    return core_->compiled_ir(entry_for(std::forward<Args>(args)...));
  }

  // How many times the body was traced (once per new signature).
  int64_t trace_count() const { return core_->trace_count(); }
  // Turns the "retracing function ..." messages (and the repeated-retrace warning) off or on;
  // fit turns them off for its steps, whose last partial batch retraces by design.
  void set_log_retraces(bool on) { core_->set_log_retraces(on); }
  const std::string& name() const { return core_->name(); }
  // The C++ signature calls must match: "poly(Tensor, int)".
  std::string signature() const { return core_->expected_signature(); }

 private:
  template <size_t... I>
  static std::string parameter_types(std::index_sequence<I...>) {
    std::vector<std::string> names{detail::TypeName<std::tuple_element_t<I, Bound>>::get()...};
    std::string text;
    for (size_t i = 0; i < names.size(); ++i)
      text += (i ? ", " : "") + names[i];
    return text;
  }
  static std::string parameter_types() {
    return parameter_types(std::make_index_sequence<kArity>());
  }

  template <class... Args>
  Bound bind(Args&&... args) const {
    if constexpr (sizeof...(Args) != kArity) {
      core_->wrong_arity(std::vector<std::string>{detail::TypeName<std::decay_t<Args>>::get()...});
    } else {
      constexpr int bad =
          detail::first_mismatch<Bound, Args&&...>(std::make_index_sequence<kArity>());
      if constexpr (bad >= 0) {
        using Given = std::tuple_element_t<bad, std::tuple<std::decay_t<Args>...>>;
        core_->wrong_argument(bad, detail::TypeName<Given>::get(),
                              detail::TypeName<std::tuple_element_t<bad, Bound>>::get());
      } else {
        return Bound(std::forward<Args>(args)...);
      }
    }
  }

  static detail::CallArgs describe(const Bound& bound) {
    detail::CallArgs call;
    call.args.reserve(kArity);
    std::apply([&](const auto&... arg) { (detail::describe_argument(arg, call), ...); }, bound);
    return call;
  }

  // The body as the core sees it: the arguments with their tensor leaves made symbolic.
  detail::FunctionCore::Body body(const Bound& bound) const {
    return [this, &bound](std::span<const Tensor> leaves, std::vector<size_t>& result_sizes) {
      detail::LeafReader reader{leaves, {}};
      Bound traced = std::apply(
          [&](const auto&... arg) { return Bound{detail::with_leaves(arg, reader)...}; }, bound);
      std::vector<Tensor> flat;
      if constexpr (std::is_void_v<Result>) {
        std::apply(*fn_, traced);
      } else {
        Result result = std::apply(*fn_, traced);
        detail::TensorTree<Result>::flatten(result, flat, result_sizes);
      }
      return flat;
    };
  }

  template <class... Args>
  const detail::TracedEntry& entry_for(Args&&... args) const {
    Bound bound = bind(std::forward<Args>(args)...);
    return core_->entry(describe(bound), body(bound));
  }

  // Shared so that copies of a Function share one cache, like copies of a tf.function object.
  std::shared_ptr<F> fn_;
  std::shared_ptr<detail::FunctionCore> core_;
};

// Wraps `fn` as a traced, compiled function named `name` (the name appears in the IR, in
// retrace messages and in errors).
template <class F>
Function<std::decay_t<F>> function(F&& fn, std::string name = "function") {
  return Function<std::decay_t<F>>(std::forward<F>(fn), std::move(name));
}

}  // namespace kiln
