// kiln::safetensors: the runtime's safetensors reader and writer (runtime/safetensors.h) for
// Tensors, with kiln::Errors naming the op, the file and the user's line.
#include "kiln/frontend/formats/safetensors.h"

#include <fmt/format.h>

#include <set>
#include <string_view>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/formats/runtime_dtype.h"
#include "kiln/runtime/atomic_write.h"
#include "kiln/runtime/safetensors.h"

namespace kiln::safetensors {

namespace format = runtime::safetensors;

namespace {

// Opens and checks the file (header and layout), or raises IOError as `op`.
template <class F>
auto read_file(const std::string& path, std::string_view op, const Loc& loc, F use) {
  try {
    format::Reader file(path);
    file.check_layout();
    return use(file);
  } catch (const format::FormatError& e) {
    detail::raise<IOError>(
        op, {}, fmt::format("cannot read safetensors file '{}': {}", path, e.what()), loc);
  }
}

}  // namespace

void save(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata, Loc loc) {
  const char* op = "safetensors.save";
  std::set<std::string_view> names;
  for (const auto& [name, t] : tensors) {
    if (name == format::kMetadataKey) {
      detail::raise<ValueError>(op, {}, "the name \"__metadata__\" is reserved for metadata", loc);
    }
    if (!names.insert(name).second) {
      detail::raise<ValueError>(
          op, {}, fmt::format("the name '{}' is used twice", format::printable(name)), loc);
    }
    if (!t.defined()) {
      detail::raise<ValueError>(
          op, {}, fmt::format("tensor '{}' is undefined", format::printable(name)), loc);
    }
    if (t.is_symbolic()) {
      detail::raise<ValueError>(
          op, {t}, fmt::format("tensor '{}' is symbolic (traced); save concrete values", name),
          loc);
    }
  }
  // Tensors on a GPU (a model's weights there) are written from host copies, held until written.
  std::vector<ir::HostTensor> hosts;
  hosts.reserve(tensors.size());
  for (const auto& [name, t] : tensors)
    hosts.push_back(t.device().is_cpu() ? t.host() : t.to(Device::cpu(), loc).host());
  std::vector<format::TensorRef> refs;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    refs.push_back({name, detail::runtime_dtype(t.dtype()), t.shape().dims(), hosts[i].raw(),
                    static_cast<uint64_t>(hosts[i].nbytes())});
  }
  try {
    format::write(path, refs, metadata);
  } catch (const std::invalid_argument& e) {  // names and metadata that are not UTF-8
    detail::raise<ValueError>(op, {}, e.what(), loc);
  } catch (const runtime::AtomicWriteError& e) {
    detail::raise<IOError>(op, {}, fmt::format("cannot write '{}': {}", path, e.what()), loc);
  }
}

std::vector<std::pair<std::string, Tensor>> load(const std::string& path, Loc loc) {
  return read_file(path, "safetensors.load", loc, [&](const format::Reader& file) {
    std::vector<std::pair<std::string, Tensor>> out;
    for (const format::Entry& e : file.entries()) {
      std::optional<DType> dtype = detail::from_runtime_dtype(e.dtype);
      KILN_CHECK(dtype.has_value(), "the safetensors reader gave a dtype Kiln lacks");
      ir::HostTensor host = ir::HostTensor::uninitialized(TensorType{*dtype, Shape(e.shape)});
      file.read(e, host.raw());
      out.emplace_back(e.name, Tensor(std::move(host)));
    }
    return out;
  });
}

std::map<std::string, std::string> metadata(const std::string& path, Loc loc) {
  return read_file(path, "safetensors.metadata", loc,
                   [](const format::Reader& file) { return file.metadata(); });
}

}  // namespace kiln::safetensors
