#include "kiln/frontend/core/scan.h"

#include <fmt/format.h>

#include <memory>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/gradient_tape.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/frontend/core/variable.h"
#include "kiln/ir/function.h"

namespace kiln {

namespace {

std::vector<Tensor> operands_of(const std::vector<Tensor>& init, const std::vector<Tensor>& xs) {
  std::vector<Tensor> all = init;
  all.insert(all.end(), xs.begin(), xs.end());
  return all;
}

int64_t scan_length(const std::vector<Tensor>& init, const std::vector<Tensor>& xs,
                    const ScanOptions& options, const std::source_location& loc) {
  std::vector<Tensor> all = operands_of(init, xs);
  for (size_t i = 0; i < all.size(); ++i) {
    if (!all[i].defined()) {
      detail::raise<ValueError>(
          "scan", {},
          fmt::format("{} {} is an undefined Tensor", i < init.size() ? "carry" : "xs",
                      i < init.size() ? i : i - init.size()),
          loc);
    }
  }
  std::optional<int64_t> length = options.length;
  if (length && *length < 0)
    detail::raise<ValueError>("scan", all, fmt::format("length must be >= 0, got {}", *length),
                              loc);
  for (size_t j = 0; j < xs.size(); ++j) {
    if (xs[j].rank() == 0) {
      detail::raise<ShapeError>(
          "scan", all, fmt::format("xs {} is a scalar; scanned inputs need a leading time axis", j),
          loc);
    }
    int64_t t = xs[j].shape()[0];
    if (!length) length = t;
    if (t != *length) {
      detail::raise<ShapeError>("scan", all,
                                fmt::format("xs {} has {} steps (leading dimension) but {} has {}",
                                            j, t, options.length ? "length" : "xs 0", *length),
                                loc);
    }
  }
  if (!length) {
    detail::raise<ValueError>(
        "scan", all, "a scan without xs needs its number of steps: ScanOptions::length", loc);
  }
  return *length;
}

TensorType step_type(const Tensor& x) {
  std::vector<int64_t> dims(x.shape().dims().begin() + 1, x.shape().dims().end());
  return TensorType{x.dtype(), Shape(std::move(dims))};
}

}  // namespace

ScanResult scan(const ScanBody& body, std::vector<Tensor> init, std::vector<Tensor> xs,
                ScanOptions options, std::source_location loc) {
  const int64_t length = scan_length(init, xs, options, loc);
  detail::Trace* outer = detail::current_trace();

  // Trace the step once on symbolic carries and slices. Tapes do not see its ops (they are
  // per-step symbols); Variables are read in the scan's own context, where tapes do see them.
  detail::Trace trace(options.name, {});
  std::optional<StopRecording> pause;
  trace.make_body(outer, [&](const Variable& v) {
    pause.reset();
    Tensor value;
    if (outer != nullptr) {
      detail::TraceScope scope(*outer);
      value = v.value();
    } else {
      detail::EagerScope scope;
      value = v.value();
    }
    pause.emplace();
    return value;
  });
  std::vector<Tensor> carry_args, x_args;
  for (const Tensor& c : init)
    carry_args.push_back(trace.add_argument(c.type()));
  for (const Tensor& x : xs)
    x_args.push_back(trace.add_argument(step_type(x)));
  std::pair<std::vector<Tensor>, std::vector<Tensor>> out;
  {
    detail::TraceScope scope(trace);
    pause.emplace();
    out = body(carry_args, x_args);
    auto& [carries, ys] = out;
    if (carries.size() != init.size()) {
      pause.reset();
      detail::raise<ValueError>("scan", operands_of(init, xs),
                                fmt::format("the body returned {} carries for {} initial carries",
                                            carries.size(), init.size()),
                                loc);
    }
    for (size_t c = 0; c < carries.size(); ++c) {
      if (!carries[c].defined() || carries[c].type() != init[c].type()) {
        pause.reset();
        detail::raise<TypeError>(
            "scan", operands_of(init, xs),
            fmt::format("carry {}: the body returned {} for a carry of type {}; a carry keeps "
                        "its dtype and shape across steps",
                        c, carries[c].defined() ? carries[c].type().to_string() : "undefined",
                        init[c].type().to_string()),
            loc);
      }
    }
    std::vector<Tensor> results = carries;
    results.insert(results.end(), ys.begin(), ys.end());
    trace.finish(results);
    pause.reset();
  }

  // One scan node over init, xs and the lifted tensors; a recording tape needs the carries each
  // step read (its gradient recomputes the step from them).
  std::vector<Tensor> operands = operands_of(init, xs);
  operands.insert(operands.end(), trace.lifted().begin(), trace.lifted().end());
  ir::Attrs attrs;
  attrs.set_int("carries", static_cast<int64_t>(init.size()));
  attrs.set_int("xs", static_cast<int64_t>(xs.size()));
  attrs.set_int("length", length);
  attrs.set_bool("reverse", options.reverse);
  attrs.set_bool("save_carries", detail::tapes_recording());
  attrs.set_function("body", std::make_shared<const ir::Function>(std::move(trace.function())));
  std::vector<Tensor> results = detail::apply(ir::Op::scan, operands, attrs, loc);

  ScanResult result;
  result.carries.assign(results.begin(), results.begin() + static_cast<ptrdiff_t>(init.size()));
  result.ys.assign(results.begin() + static_cast<ptrdiff_t>(init.size()),
                   results.begin() + static_cast<ptrdiff_t>(init.size() + out.second.size()));
  return result;
}

}  // namespace kiln
