// Kiln's error types. User mistakes throw a kiln::Error subclass whose message names the op,
// the operands and the user's source line; broken internal invariants throw InternalError.
#pragma once

#include <exception>
#include <string>
#include <string_view>

namespace kiln {

// Base of every error Kiln reports to a user.
class Error : public std::exception {
 public:
  explicit Error(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& message() const { return message_; }
  // Puts `prefix: ` in front of the message (used to name the op).
  void prefix(std::string_view prefix);
  // Adds an indented context line ("operands: ...", "at file:line").
  void add_context(std::string_view line);
  // Adds the context line "in layer 'NAME' (CLASS)" unless a layer named itself already: the
  // innermost layer of nested ones, whose handler runs first, is the one reported.
  void add_layer_context(std::string_view name, std::string_view class_name);

 private:
  std::string message_;
  bool has_layer_ = false;
};

// Incompatible or impossible shapes (broadcasting, reshape, matmul dims, axis out of range).
class ShapeError : public Error {
  using Error::Error;
};
// Wrong dtype for an op or an accessor.
class TypeError : public Error {
  using Error::Error;
};
// A bad argument or attribute value (split sizes, slice step 0, bad padding string).
class ValueError : public Error {
  using Error::Error;
};
// An index out of range at run time (gather indices, one_hot is lenient and never throws).
class IndexError : public Error {
  using Error::Error;
};
// Malformed IR text; the message starts with line:column.
class ParseError : public Error {
 public:
  ParseError(std::string message, int line, int column)
      : Error(std::move(message)), line_(line), column_(column) {}
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  int line_;
  int column_;
};
// A file that cannot be read or written, or whose contents are malformed.
class IOError : public Error {
  using Error::Error;
};
// Memory that cannot be had: a tensor, a workspace or a buffer too large for this machine (the
// analogue of TensorFlow's ResourceExhaustedError). Names the size and what it was for.
class ResourceError : public Error {
  using Error::Error;
};
// A device that cannot be used (no CUDA driver, no such device), or an op whose operands live on
// different devices. Names the device, the reason and the user's line.
class DeviceError : public Error {
  using Error::Error;
};
// Code generation failed (names the kernel).
class CompileError : public Error {
  using Error::Error;
};
// A broken internal invariant: a Kiln bug, not a user mistake.
class InternalError : public Error {
  using Error::Error;
};

namespace detail {
[[noreturn]] void internal_check_failed(const char* expr, const char* file, int line,
                                        std::string_view what);
}  // namespace detail

}  // namespace kiln

// Internal invariant check; says what broke and where.
#define KILN_CHECK(cond, what)                                                             \
  do {                                                                                     \
    if (!(cond)) ::kiln::detail::internal_check_failed(#cond, __FILE__, __LINE__, (what)); \
  } while (0)
