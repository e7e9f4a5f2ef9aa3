// kiln::hdf5: the only file that speaks libhdf5's C API (tests/layering_test.sh checks it). Every
// hid_t is owned by an Id that closes it; every call's result is checked.
#include "kiln/frontend/formats/hdf5.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>

#include "kiln/frontend/core/op_error.h"

namespace kiln::hdf5 {

namespace {

constexpr size_t kMaxListEntries = 1'000'000;
constexpr size_t kMaxStringBytes = 64 * 1024;
// HDF5_OBJECT_HEADER_LIMIT in Keras's saving code: attributes above it are split.
constexpr size_t kObjectHeaderLimit = 64512;

std::recursive_mutex* library_mutex = new std::recursive_mutex;  // never destroyed: see lock()

// Switches libhdf5's automatic error printing off for the scope of a Kiln call, restoring what
// the program had set (error stacks are per thread in a thread-safe build).
class QuietErrors {
 public:
  QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The lock and the quiet error printer for one call into the library.
struct Call {
  std::unique_lock<std::recursive_mutex> guard{*library_mutex};
  QuietErrors quiet;
};

void init_library_once() {
  static bool done = [] {
    QuietErrors quiet;
    H5open();
    // A file naming an unknown filter must not make libhdf5 load plugins from
    // HDF5_PLUGIN_PATH; Kiln reads only what the library has built in.
    H5PLset_loading_state(0);
    return true;
  }();
  (void)done;
}

// The innermost description on the thread's error stack ("truncated file: eof = ..."), then
// the stack cleared.
herr_t first_error(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && err && err->desc) *out = err->desc;
  return 0;
}
std::string library_reason() {
  std::string reason;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_error, &reason);
  H5Eclear2(H5E_DEFAULT);
  return reason;
}

// Owns one hid_t and closes it with the matching H5*close.
class Id {
 public:
  Id() = default;
  explicit Id(hid_t id) : id_(id) {}
  Id(Id&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  Id& operator=(Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  ~Id() { reset(); }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0) {
      switch (H5Iget_type(id_)) {
        case H5I_FILE:
          H5Fclose(id_);
          break;
        case H5I_GROUP:
          H5Gclose(id_);
          break;
        case H5I_DATASET:
          H5Dclose(id_);
          break;
        case H5I_DATATYPE:
          H5Tclose(id_);
          break;
        case H5I_DATASPACE:
          H5Sclose(id_);
          break;
        case H5I_ATTR:
          H5Aclose(id_);
          break;
        case H5I_GENPROP_LST:
          H5Pclose(id_);
          break;
        default:
          H5Idec_ref(id_);
          break;
      }
    }
    id_ = H5I_INVALID_HID;
  }
  // Hands the id over (for H5Fclose, whose result matters on commit).
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// "/a/b" → {"a", "b"}; empty components are dropped.
std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

std::string shape_text(const Shape& s) {
  std::vector<std::string> dims;
  for (int64_t d : s.dims())
    dims.push_back(std::to_string(d));
  return fmt::format("({}{})", fmt::join(dims, ", "), dims.size() == 1 ? "," : "");
}

}  // namespace

struct File::Impl {
  Id file;
  std::string path;       // the user's path, for messages
  std::string temp_path;  // a created file's temporary name ("" once renamed or for a read)
  std::string op;
  Loc loc;

  // The state of a file being opened or created, before libhdf5 has it.
  static std::unique_ptr<Impl> make(const std::string& path, std::string op, Loc loc) {
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->op = std::move(op);
    impl->loc = loc;
    return impl;
  }

  ~Impl() {
    Call call;
    file.reset();
    if (!temp_path.empty()) std::remove(temp_path.c_str());
  }

  // Raises E naming the file, the HDF5 path (when not empty) and libhdf5's reason (if any).
  template <class E>
  [[noreturn]] void fail(const std::string& object, const std::string& what) const {
    std::string reason = library_reason();
    std::string where = object.empty() ? "" : fmt::format(", HDF5 path {}", object);
    std::string because = reason.empty() ? "" : fmt::format(" (libhdf5: {})", reason);
    detail::raise<E>(op, {}, fmt::format("'{}'{}: {}{}", path, where, what, because), loc);
  }

  // The object at `object`, opened through hard links only; an invalid Id when a component is
  // missing, and IOError for a soft, external or user-defined link on the way.
  Id open_object(const std::string& object) const {
    std::string prefix;
    for (const std::string& part : split_path(object)) {
      prefix += "/" + part;
      htri_t exists = H5Lexists(file.get(), prefix.c_str(), H5P_DEFAULT);
      if (exists < 0) fail<IOError>(prefix, "cannot look the name up");
      if (exists == 0) return Id();
      H5L_info_t info;
      if (H5Lget_info(file.get(), prefix.c_str(), &info, H5P_DEFAULT) < 0)
        fail<IOError>(prefix, "cannot read the link");
      if (info.type != H5L_TYPE_HARD)
        fail<IOError>(prefix, "is a soft or external link, which Kiln does not follow");
    }
    Id id(H5Oopen(file.get(), prefix.empty() ? "/" : prefix.c_str(), H5P_DEFAULT));
    if (!id.ok()) fail<IOError>(object, "cannot open the object");
    return id;
  }
  Id open_kind(const std::string& object, H5I_type_t kind, const char* what) const {
    Id id = open_object(object);
    if (!id.ok()) fail<IOError>(object, fmt::format("no such {}", what));
    if (H5Iget_type(id.get()) != kind) fail<IOError>(object, fmt::format("is not a {}", what));
    return id;
  }
  bool is_kind(const std::string& object, H5I_type_t kind) const {
    Id id = open_object(object);
    return id.ok() && H5Iget_type(id.get()) == kind;
  }

  // Opens attribute `name` of `object` (IOError when missing).
  Id open_attr(const std::string& object, const std::string& name) const {
    Id obj = open_object(object);
    if (!obj.ok()) fail<IOError>(object, "no such object");
    Id attr(H5Aopen(obj.get(), name.c_str(), H5P_DEFAULT));
    if (!attr.ok()) fail<IOError>(object, fmt::format("cannot open attribute '{}'", name));
    return attr;
  }

  std::vector<std::string> read_strings(const std::string& object, const std::string& name) const {
    Id attr = open_attr(object, name);
    std::string where = fmt::format("attribute '{}'", name);
    Id space(H5Aget_space(attr.get()));
    if (!space.ok()) fail<IOError>(object, fmt::format("cannot read the shape of {}", where));
    H5S_class_t space_class = H5Sget_simple_extent_type(space.get());
    if (space_class == H5S_NULL) return {};
    if (space_class != H5S_SCALAR && space_class != H5S_SIMPLE)
      fail<IOError>(object, fmt::format("{} has an unknown dataspace", where));
    int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank < 0 || rank > 1)
      fail<IOError>(object,
                    fmt::format("{} should be a list of strings, but has rank {}", where, rank));
    hssize_t points = H5Sget_simple_extent_npoints(space.get());
    if (points < 0) fail<IOError>(object, fmt::format("cannot count the entries of {}", where));
    if (points == 0) return {};  // h5py writes [] as float64 of shape (0,)
    size_t n = static_cast<size_t>(points);
    if (n > kMaxListEntries)
      fail<IOError>(object, fmt::format("{} has {} entries (at most {} are read)", where, n,
                                        kMaxListEntries));
    Id type(H5Aget_type(attr.get()));
    if (!type.ok()) fail<IOError>(object, fmt::format("cannot read the type of {}", where));
    if (H5Tget_class(type.get()) != H5T_STRING)
      fail<IOError>(object, fmt::format("{} should hold strings", where));
    htri_t variable = H5Tis_variable_str(type.get());
    if (variable < 0) fail<IOError>(object, fmt::format("cannot read the type of {}", where));
    std::vector<std::string> out;
    out.reserve(n);
    if (variable > 0) {
      Id mem(H5Tcopy(H5T_C_S1));
      H5T_cset_t cset = H5Tget_cset(type.get());
      if (!mem.ok() || H5Tset_size(mem.get(), H5T_VARIABLE) < 0 ||
          H5Tset_cset(mem.get(), cset == H5T_CSET_UTF8 ? H5T_CSET_UTF8 : H5T_CSET_ASCII) < 0)
        fail<IOError>(object, "cannot make a string type");
      std::vector<char*> ptrs(n, nullptr);
      if (H5Aread(attr.get(), mem.get(), ptrs.data()) < 0)
        fail<IOError>(object, fmt::format("cannot read {}", where));
      bool too_long = false;
      for (char* p : ptrs) {
        size_t len = p ? strnlen(p, kMaxStringBytes + 1) : 0;
        too_long = too_long || len > kMaxStringBytes;
        out.emplace_back(p ? p : "", std::min(len, kMaxStringBytes));
      }
#if H5_VERSION_GE(1, 12, 0)
      H5Treclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
#else
      H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
#endif
      if (too_long)
        fail<IOError>(object, fmt::format("{} has an entry over {} bytes", where, kMaxStringBytes));
    } else {
      size_t size = H5Tget_size(type.get());
      if (size == 0 || size > kMaxStringBytes)
        fail<IOError>(object, fmt::format("{} has strings of {} bytes", where, size));
      Id mem(H5Tcopy(H5T_C_S1));
      if (!mem.ok() || H5Tset_size(mem.get(), size) < 0 ||
          H5Tset_strpad(mem.get(), H5T_STR_NULLPAD) < 0)
        fail<IOError>(object, "cannot make a string type");
      if (n > (size_t{256} << 20) / size)
        fail<IOError>(object,
                      fmt::format("{} is too large ({} entries of {} bytes)", where, n, size));
      std::vector<char> buf(n * size);
      if (H5Aread(attr.get(), mem.get(), buf.data()) < 0)
        fail<IOError>(object, fmt::format("cannot read {}", where));
      for (size_t i = 0; i < n; ++i) {
        const char* p = buf.data() + i * size;
        out.emplace_back(p, strnlen(p, size));
      }
    }
    return out;
  }

  DatasetInfo info(const std::string& dataset, const Id& ds) const {
    DatasetInfo info;
    Id space(H5Dget_space(ds.get()));
    if (!space.ok()) fail<IOError>(dataset, "cannot read the dataset's shape");
    H5S_class_t space_class = H5Sget_simple_extent_type(space.get());
    if (space_class == H5S_SIMPLE) {
      int rank = H5Sget_simple_extent_ndims(space.get());
      if (rank < 0 || rank > H5S_MAX_RANK) fail<IOError>(dataset, "cannot read the dataset's rank");
      std::vector<hsize_t> dims(static_cast<size_t>(rank));
      if (H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0)
        fail<IOError>(dataset, "cannot read the dataset's shape");
      std::vector<int64_t> shape;
      for (hsize_t d : dims) {
        if (d > static_cast<hsize_t>(INT64_MAX / 2))
          fail<IOError>(dataset, fmt::format("the dataset declares a dimension of {}", d));
        shape.push_back(static_cast<int64_t>(d));
      }
      info.shape = Shape(shape);
    } else if (space_class != H5S_SCALAR) {
      fail<IOError>(dataset, "the dataset has no data (a null dataspace)");
    }
    Id type(H5Dget_type(ds.get()));
    if (!type.ok()) fail<IOError>(dataset, "cannot read the dataset's type");
    size_t size = H5Tget_size(type.get());
    switch (H5Tget_class(type.get())) {
      case H5T_FLOAT:
        info.is_float = true;
        info.type = fmt::format("f{}", size * 8);
        if (size == 4) info.dtype = f32;
        if (size == 8) info.dtype = f64;
        break;
      case H5T_INTEGER: {
        info.is_integer = true;
        bool is_signed = H5Tget_sign(type.get()) == H5T_SGN_2;
        info.type = fmt::format("{}{}", is_signed ? "i" : "u", size * 8);
        if (is_signed && size == 4) info.dtype = i32;
        if (is_signed && size == 8) info.dtype = i64;
        break;
      }
      case H5T_STRING:
        info.type = "string";
        break;
      case H5T_COMPOUND:
        info.type = "compound";
        break;
      case H5T_ENUM:
        info.type = "enum";
        break;
      case H5T_ARRAY:
        info.type = "array";
        break;
      default:
        info.type = "an unsupported type";
        break;
    }
    return info;
  }

  // Creates a link-creation property list that makes missing parent groups.
  Id intermediate_lcpl(const std::string& object) const {
    Id lcpl(H5Pcreate(H5P_LINK_CREATE));
    if (!lcpl.ok() || H5Pset_create_intermediate_group(lcpl.get(), 1) < 0)
      fail<IOError>(object, "cannot make a property list");
    return lcpl;
  }

  void write_attr(const std::string& object, const std::string& name, hid_t type, hid_t space,
                  const void* data) {
    Id obj = open_object(object);
    if (!obj.ok()) fail<IOError>(object, "no such object");
    if (H5Aexists(obj.get(), name.c_str()) > 0 && H5Adelete(obj.get(), name.c_str()) < 0)
      fail<IOError>(object, fmt::format("cannot replace attribute '{}'", name));
    Id attr(H5Acreate2(obj.get(), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
    if (!attr.ok()) fail<IOError>(object, fmt::format("cannot create attribute '{}'", name));
    if (data && H5Awrite(attr.get(), type, data) < 0)
      fail<IOError>(object, fmt::format("cannot write attribute '{}'", name));
  }

  Id utf8_string_type(const std::string& object) const {
    Id type(H5Tcopy(H5T_C_S1));
    if (!type.ok() || H5Tset_size(type.get(), H5T_VARIABLE) < 0 ||
        H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0 ||
        H5Tset_strpad(type.get(), H5T_STR_NULLTERM) < 0)
      fail<IOError>(object, "cannot make a string type");
    return type;
  }

  void write_strings(const std::string& object, const std::string& name,
                     const std::vector<std::string>& values) {
    if (values.empty()) {
      hsize_t zero = 0;
      Id space(H5Screate_simple(1, &zero, nullptr));
      if (!space.ok()) fail<IOError>(object, "cannot make a dataspace");
      write_attr(object, name, H5T_IEEE_F64LE, space.get(), nullptr);
      return;
    }
    std::vector<const char*> ptrs;
    for (const std::string& v : values)
      ptrs.push_back(v.c_str());
    hsize_t n = values.size();
    Id space(H5Screate_simple(1, &n, nullptr));
    Id type = utf8_string_type(object);
    if (!space.ok()) fail<IOError>(object, "cannot make a dataspace");
    write_attr(object, name, type.get(), space.get(), ptrs.data());
  }

  hid_t file_type(DType dtype, const std::string& dataset) const {
    if (dtype == f32) return H5T_IEEE_F32LE;
    if (dtype == f64) return H5T_IEEE_F64LE;
    if (dtype == i32) return H5T_STD_I32LE;
    if (dtype == i64) return H5T_STD_I64LE;
    fail<ValueError>(dataset, fmt::format("cannot write {} data", dtype_name(dtype)));
  }
  static hid_t memory_type(DType dtype) {
    if (dtype == f32) return H5T_NATIVE_FLOAT;
    if (dtype == f64) return H5T_NATIVE_DOUBLE;
    if (dtype == i32) return H5T_NATIVE_INT32;
    if (dtype == i64) return H5T_NATIVE_INT64;
    return H5I_INVALID_HID;
  }
};

bool has_signature(const std::string& path) {
  static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  // The superblock sits at 0 or after a user block of 512 bytes times a power of two.
  for (uint64_t offset = 0; offset <= (uint64_t{1} << 30); offset = offset ? offset * 2 : 512) {
    char buf[8];
    in.clear();
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(buf, 8)) return false;
    if (std::memcmp(buf, kSignature, 8) == 0) return true;
  }
  return false;
}

File::File(std::unique_ptr<Impl> impl, std::string path)
    : impl_(std::move(impl)), path_(std::move(path)) {}
File::File(File&& other) noexcept = default;
File& File::operator=(File&& other) noexcept = default;
File::~File() = default;

File File::open(const std::string& path, std::string op, Loc loc) {
  init_library_once();
  Call call;
  auto impl = Impl::make(path, std::move(op), loc);
  if (!std::ifstream(path, std::ios::binary))
    impl->fail<IOError>("", fmt::format("cannot open the file: {}", std::strerror(errno)));
  if (!has_signature(path)) impl->fail<IOError>("", "not an HDF5 file (no HDF5 signature)");
  Id fapl(H5Pcreate(H5P_FILE_ACCESS));
  if (!fapl.ok() || H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG) < 0)
    impl->fail<IOError>("", "cannot make a property list");
#if H5_VERSION_GE(1, 10, 7)
  // Reading needs no lock, and locking fails on some network file systems.
  H5Pset_file_locking(fapl.get(), 0, 1);
#endif
  impl->file = Id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()));
  if (!impl->file.ok()) impl->fail<IOError>("", "not a readable HDF5 file");
  return File(std::move(impl), path);
}

File File::create(const std::string& path, std::string op, Loc loc) {
  init_library_once();
  Call call;
  auto impl = Impl::make(path, std::move(op), loc);
  // A fresh name next to the target (H5F_ACC_EXCL refuses an existing one), made with the mode
  // the umask gives a new file.
  static std::atomic<uint64_t> counter{0};
  std::string temp = fmt::format("{}.tmp.{}.{}", path, getpid(), counter++);
  Id fapl(H5Pcreate(H5P_FILE_ACCESS));
  if (!fapl.ok() || H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG) < 0)
    impl->fail<IOError>("", "cannot make a property list");
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(fapl.get(), 0, 1);
#endif
  impl->file = Id(H5Fcreate(temp.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()));
  if (!impl->file.ok()) impl->fail<IOError>("", "cannot create the file");
  impl->temp_path = temp;
  return File(std::move(impl), path);
}

bool File::has_group(const std::string& object) const {
  Call call;
  return impl_->is_kind(object, H5I_GROUP);
}

bool File::has_dataset(const std::string& object) const {
  Call call;
  return impl_->is_kind(object, H5I_DATASET);
}

std::vector<std::string> File::children(const std::string& group) const {
  Call call;
  Id g = impl_->open_kind(group, H5I_GROUP, "group");
  H5G_info_t info;
  if (H5Gget_info(g.get(), &info) < 0) impl_->fail<IOError>(group, "cannot list the group");
  if (info.nlinks > kMaxListEntries)
    impl_->fail<IOError>(group, fmt::format("the group has {} members", info.nlinks));
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len =
        H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0 || static_cast<size_t>(len) > kMaxStringBytes)
      impl_->fail<IOError>(group, "cannot read a member's name");
    std::string name(static_cast<size_t>(len) + 1, '\0');
    if (H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                           H5P_DEFAULT) < 0)
      impl_->fail<IOError>(group, "cannot read a member's name");
    name.resize(static_cast<size_t>(len));
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool File::has_attr(const std::string& object, const std::string& name) const {
  Call call;
  Id obj = impl_->open_object(object);
  if (!obj.ok()) return false;
  htri_t exists = H5Aexists(obj.get(), name.c_str());
  if (exists < 0) impl_->fail<IOError>(object, fmt::format("cannot look up attribute '{}'", name));
  return exists > 0;
}

std::vector<std::string> File::string_list_attr(const std::string& object,
                                                const std::string& name) const {
  Call call;
  return impl_->read_strings(object, name);
}

std::optional<std::vector<std::string>> File::chunked_string_list_attr(
    const std::string& object, const std::string& name) const {
  Call call;
  if (has_attr(object, name)) return impl_->read_strings(object, name);
  std::optional<std::vector<std::string>> out;
  for (size_t i = 0; has_attr(object, name + std::to_string(i)); ++i) {
    if (!out) out.emplace();
    for (std::string& s : impl_->read_strings(object, name + std::to_string(i))) {
      if (out->size() >= kMaxListEntries)
        impl_->fail<IOError>(object, fmt::format("attribute '{}' has too many entries", name));
      out->push_back(std::move(s));
    }
  }
  return out;
}

std::optional<std::string> File::string_attr(const std::string& object,
                                             const std::string& name) const {
  Call call;
  if (!has_attr(object, name)) return std::nullopt;
  std::vector<std::string> values = impl_->read_strings(object, name);
  if (values.size() != 1)
    impl_->fail<IOError>(
        object, fmt::format("attribute '{}' should hold one string, not {}", name, values.size()));
  return values[0];
}

DatasetInfo File::dataset_info(const std::string& dataset) const {
  Call call;
  Id ds = impl_->open_kind(dataset, H5I_DATASET, "dataset");
  return impl_->info(dataset, ds);
}

void File::read(const std::string& dataset, ir::HostTensor& dst) const {
  Call call;
  Id ds = impl_->open_kind(dataset, H5I_DATASET, "dataset");
  DatasetInfo info = impl_->info(dataset, ds);
  if (info.shape != dst.shape())
    impl_->fail<ValueError>(dataset, fmt::format("the dataset has shape {}, {} was expected",
                                                 shape_text(info.shape), shape_text(dst.shape())));
  DType want = dst.dtype();
  bool want_float = want == f32 || want == f64, want_int = want == i32 || want == i64;
  if (!(want_float && info.is_float) && !(want_int && info.is_integer))
    impl_->fail<ValueError>(
        dataset, fmt::format("the dataset holds {}, {} was expected", info.type, dtype_name(want)));
  // Data stored outside this file could read any file of the host into a weight.
  Id dcpl(H5Dget_create_plist(ds.get()));
  if (!dcpl.ok()) impl_->fail<IOError>(dataset, "cannot read the dataset's properties");
  H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout != H5D_COMPACT && layout != H5D_CONTIGUOUS && layout != H5D_CHUNKED)
    impl_->fail<IOError>(dataset,
                         "the dataset has a virtual or unknown layout, which Kiln refuses");
  if (H5Pget_external_count(dcpl.get()) != 0)
    impl_->fail<IOError>(dataset,
                         "the dataset's data is stored in external files, which Kiln "
                         "refuses");
  if (dst.num_elements() == 0) return;
  if (H5Dread(ds.get(), Impl::memory_type(want), H5S_ALL, H5S_ALL, H5P_DEFAULT, dst.raw()) < 0)
    impl_->fail<IOError>(dataset, "cannot read the dataset's data");
}

void File::create_group(const std::string& group) {
  Call call;
  if (impl_->is_kind(group, H5I_GROUP)) return;
  Id lcpl = impl_->intermediate_lcpl(group);
  Id g(H5Gcreate2(impl_->file.get(), group.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!g.ok()) impl_->fail<IOError>(group, "cannot create the group");
}

void File::write_string_attr(const std::string& object, const std::string& name,
                             const std::string& value) {
  Call call;
  Id space(H5Screate(H5S_SCALAR));
  Id type = impl_->utf8_string_type(object);
  const char* ptr = value.c_str();
  if (!space.ok()) impl_->fail<IOError>(object, "cannot make a dataspace");
  impl_->write_attr(object, name, type.get(), space.get(), &ptr);
}

void File::write_string_list_attr(const std::string& object, const std::string& name,
                                  const std::vector<std::string>& values) {
  Call call;
  size_t longest = 0;
  for (const std::string& v : values)
    longest = std::max(longest, v.size());
  // Keras measures the list as a fixed-length numpy array (count × longest) and splits it with
  // np.array_split into the fewest chunks that each fit; readers then look for NAME0, NAME1...
  size_t chunks = 1;
  auto largest_chunk = [&](size_t k) { return (values.size() + k - 1) / k; };
  while (largest_chunk(chunks) * std::max<size_t>(longest, 1) > kObjectHeaderLimit &&
         chunks < values.size())
    ++chunks;
  if (chunks == 1) {
    impl_->write_strings(object, name, values);
    return;
  }
  size_t base = values.size() / chunks, extra = values.size() % chunks, at = 0;
  for (size_t k = 0; k < chunks; ++k) {
    size_t count = base + (k < extra ? 1 : 0);
    std::vector<std::string> chunk(values.begin() + static_cast<ptrdiff_t>(at),
                                   values.begin() + static_cast<ptrdiff_t>(at + count));
    impl_->write_strings(object, name + std::to_string(k), chunk);
    at += count;
  }
}

void File::write_dataset(const std::string& dataset, const ir::HostTensor& value) {
  Call call;
  hid_t type = impl_->file_type(value.dtype(), dataset);
  std::vector<hsize_t> dims;
  for (int64_t d : value.shape().dims())
    dims.push_back(static_cast<hsize_t>(d));
  Id space(dims.empty() ? H5Screate(H5S_SCALAR)
                        : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  if (!space.ok()) impl_->fail<IOError>(dataset, "cannot make a dataspace");
  Id lcpl = impl_->intermediate_lcpl(dataset);
  Id ds(H5Dcreate2(impl_->file.get(), dataset.c_str(), type, space.get(), lcpl.get(), H5P_DEFAULT,
                   H5P_DEFAULT));
  if (!ds.ok()) impl_->fail<IOError>(dataset, "cannot create the dataset");
  if (value.num_elements() > 0 && H5Dwrite(ds.get(), Impl::memory_type(value.dtype()), H5S_ALL,
                                           H5S_ALL, H5P_DEFAULT, value.raw()) < 0)
    impl_->fail<IOError>(dataset, "cannot write the dataset");
}

void File::commit() {
  Call call;
  if (!impl_->file.ok()) return;
  hid_t id = impl_->file.release();
  if (H5Fclose(id) < 0) impl_->fail<IOError>("", "cannot finish writing the file");
  if (impl_->temp_path.empty()) return;
  int fd = ::open(impl_->temp_path.c_str(), O_RDONLY);
  if (fd >= 0) {
    fsync(fd);
    ::close(fd);
  }
  if (std::rename(impl_->temp_path.c_str(), impl_->path.c_str()) != 0)
    impl_->fail<IOError>(
        "", fmt::format("cannot rename the written file into place: {}", std::strerror(errno)));
  impl_->temp_path.clear();
}

std::unique_lock<std::recursive_mutex> lock() {
  return std::unique_lock<std::recursive_mutex>(*library_mutex);
}

void reset_lock_in_child() {
  // The parent's thread held the old mutex over fork(); the child's thread is not its owner, so
  // it gets a new one (the old one is left as is: the child ends with _exit).
  library_mutex = new std::recursive_mutex;
}

}  // namespace kiln::hdf5
