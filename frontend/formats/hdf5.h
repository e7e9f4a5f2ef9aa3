// HDF5 files (what Keras's .h5 weight files are) through libhdf5's C API, kept behind this small
// interface: no HDF5 type or header reaches Kiln's headers (libkiln links libhdf5 privately).
//
// Objects are named by absolute HDF5 paths ("/dense/dense/kernel:0"); only hard links are
// followed, so a soft or external link never leads out of the file. Every failure is a
// kiln::IOError (a file that cannot be read or written, or malformed contents) or ValueError (a
// value the caller passed) raised as the File's op, naming the file and the HDF5 path, with
// libhdf5's own reason when it gives one. libhdf5's error printing is off while Kiln calls it,
// and one lock keeps Kiln's calls into the library on one thread at a time.
//
// libhdf5 can crash or hang on a malformed file (docs/design/issue15-keras-weights.md): read a
// user's file in a child process (formats/isolated.h), not in the caller's.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kiln/frontend/core/tensor.h"

namespace kiln::hdf5 {

// What a dataset's header says it holds.
struct DatasetInfo {
  // Empty for a scalar dataset.
  Shape shape;
  // For messages: "f32", "f64", "i32", "u8", "string", "compound"...
  std::string type;
  // The Kiln dtype of the same kind and width (f32, f64, i32, i64), if there is one.
  std::optional<DType> dtype;
  // Whether the values are floating point (of any width).
  bool is_float = false;
  // Whether the values are integers (of any width or sign).
  bool is_integer = false;
};

// Whether the file at `path` starts with the HDF5 signature (at offset 0, or after a user block
// of 512, 1024, 2048... bytes); false for a missing or unreadable file.
bool has_signature(const std::string& path);

// An open HDF5 file. Move-only; closing is quiet in the destructor.
class File {
 public:
  // Opens an existing file read-only; IOError when it is missing or not HDF5. Errors raised by
  // this File name `op` and the user's line `loc`.
  static File open(const std::string& path, std::string op, Loc loc = Loc::current());
  // Creates a new file that appears at `path` only on commit(): it is written under a
  // temporary name in the same folder, then renamed, so a failed save leaves an existing file
  // as it was.
  static File create(const std::string& path, std::string op, Loc loc = Loc::current());

  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  ~File();

  const std::string& path() const { return path_; }

  // Whether `object` exists (through hard links only) and is a group / a dataset.
  bool has_group(const std::string& object) const;
  bool has_dataset(const std::string& object) const;
  // The names of a group's members, sorted by name.
  std::vector<std::string> children(const std::string& group) const;

  // Whether the object has an attribute of that name.
  bool has_attr(const std::string& object, const std::string& name) const;
  // A list-of-strings attribute: variable- or fixed-length strings (a fixed-length entry is cut
  // at its first NUL), one-dimensional or scalar; any attribute with no elements (h5py writes
  // an empty list as float64 of shape (0,)) is an empty list. IOError for other types and for
  // more than a million entries or entries over 64 KiB.
  std::vector<std::string> string_list_attr(const std::string& object,
                                            const std::string& name) const;
  // NAME, or when it is missing the lists NAME0, NAME1, ... concatenated (Keras splits long
  // lists this way); nullopt when neither exists.
  std::optional<std::vector<std::string>> chunked_string_list_attr(const std::string& object,
                                                                   const std::string& name) const;
  // A string attribute holding one string (scalar or one element); nullopt when missing.
  std::optional<std::string> string_attr(const std::string& object, const std::string& name) const;

  // The shape and element type of a dataset (IOError when it is not one).
  DatasetInfo dataset_info(const std::string& dataset) const;
  // Reads a numeric dataset into `dst`, whose type is what the caller expects: the shapes must
  // be equal (ValueError otherwise, checked before reading) and the kinds alike (floats into
  // f32/f64 with libhdf5 converting width and byte order, integers into i32/i64). Datasets
  // whose data lives in other files (external storage, virtual layouts) are refused.
  void read(const std::string& dataset, ir::HostTensor& dst) const;

  // Creates a group (and missing parents).
  void create_group(const std::string& group);
  // Writes a scalar variable-length UTF-8 string attribute.
  void write_string_attr(const std::string& object, const std::string& name,
                         const std::string& value);
  // Writes a list of strings as h5py does: variable-length UTF-8 strings of shape (n,), or an
  // empty float64 attribute of shape (0,) for an empty list. A list whose fixed-size form would
  // pass HDF5's object header limit (64512 bytes: count × longest) is split, as Keras does, into
  // NAME0, NAME1, ...
  void write_string_list_attr(const std::string& object, const std::string& name,
                              const std::vector<std::string>& values);
  // Writes a dataset (little-endian f32/f64/i32/i64, contiguous), making missing groups on the
  // way; a scalar tensor gets a scalar dataspace.
  void write_dataset(const std::string& dataset, const ir::HostTensor& value);

  // A created file: closes it and renames it into place (IOError on failure). An opened one:
  // closes it.
  void commit();

 private:
  struct Impl;
  explicit File(std::unique_ptr<Impl> impl, std::string path);

  std::unique_ptr<Impl> impl_;
  std::string path_;
};

// The lock around Kiln's calls into libhdf5. A caller that forks holds it over fork() so the
// child gets the library in a consistent state, and the child calls reset_lock_in_child()
// before using this interface.
std::unique_lock<std::recursive_mutex> lock();
// In a child process just forked while the lock was held: gives the child a fresh lock.
void reset_lock_in_child();

}  // namespace kiln::hdf5
