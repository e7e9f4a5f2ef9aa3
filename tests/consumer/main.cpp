// The README's first program, built against an installed Kiln. main() holds that snippet as
// written, then checks the values its comments promise; any mismatch makes the exit status 1.
#include <dlfcn.h>
#include <kiln/kiln.h>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>
namespace k = kiln;

static int failures = 0;

static void check(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "FAILED: " << what << "\n";
    ++failures;
  }
}

template <class T>
static void check_values(const k::Tensor& t, k::Shape shape, std::vector<T> expected,
                         const std::string& what) {
  check(t.shape() == shape, what + ": shape " + t.shape().to_string());
  check(t.to_vector<T>() == expected, what + ": values");
}

int main() {
  // The snippet as the README shows it.
  // clang-format off
  k::Tensor t = k::constant({2, 3, 4, 5}, k::i32);
  k::Tensor A = k::constant({{1.f, 2.f}, {3.f, 4.f}});
  k::Tensor B = k::constant({{-1.f, -2.f}, {-3.f, -4.f}});
  k::Tensor C = k::matmul(A + B, 3.f * A - B, /*transpose_a=*/false, /*transpose_b=*/true);
  k::Tensor rev = A.index({k::Slice(k::none, k::none, -1)});   // rows reversed
  k::Tensor col = A.index({k::Slice(), 1});                    // second column: [2, 4]
  float m = k::reduce_mean(k::log(A)).item<float>();
  std::vector<float> v = k::transpose(A).to_vector<float>();   // 1 3 2 4
  k::Tensor s = k::reduce_std(k::random_normal({5, 2}, 0.f, 1.f, /*seed=*/1), /*axis=*/0);
  std::vector<k::Tensor> parts = k::split(k::random_uniform({6}, 0.f, 1.f, /*seed=*/1), 3);
  k::Tensor st = k::stack({k::ones({3}), k::zeros({3})}, /*axis=*/1);   // shape (3, 2)
  k::Tensor sq = k::squeeze(k::zeros({1, 2, 1, 4, 1}), {2, 4});          // shape (1, 2, 4)
  k::Tensor c64 = k::cast(t, k::i64);
  k::Variable w(k::constant({{1.f, 2.f}, {3.f, 4.f}}));
  w.assign_add(k::ones({2, 2}));
  w.assign_sub(k::ones({2, 2}));
  std::cout << A << "\n" << t.shape() << " " << t.dtype() << "\n";
  k::save_npy("a.npy", A);
  k::Tensor back = k::load_npy("a.npy");
  // clang-format on

  check_values<int32_t>(t, {4}, {2, 3, 4, 5}, "t");
  check(t.dtype() == k::i32, "t dtype");
  // A + B is zero, so C is the 2x2 zero matrix.
  check_values<float>(C, {2, 2}, {0, 0, 0, 0}, "C");
  check_values<float>(rev, {2, 2}, {3, 4, 1, 2}, "rev");
  check_values<float>(col, {2}, {2, 4}, "col");
  // mean(log [1, 2, 3, 4]) = log(24) / 4.
  check(std::fabs(m - std::log(24.f) / 4) < 1e-6f, "m = " + std::to_string(m));
  check(v == std::vector<float>{1, 3, 2, 4}, "transpose(A)");
  check(s.shape() == k::Shape{2} && s.dtype() == k::f32, "s shape");
  for (float x : s.to_vector<float>())
    check(x >= 0 && std::isfinite(x), "s >= 0");
  check(parts.size() == 3, "three parts");
  for (const k::Tensor& p : parts) {
    check(p.shape() == k::Shape{2}, "part shape");
    for (float x : p.to_vector<float>())
      check(x >= 0 && x < 1, "uniform in [0, 1)");
  }
  check_values<float>(st, {3, 2}, {1, 0, 1, 0, 1, 0}, "st");
  check(sq.shape() == k::Shape({1, 2, 4}), "sq shape");
  check_values<int64_t>(c64, {4}, {2, 3, 4, 5}, "c64");
  check_values<float>(w.value(), {2, 2}, {1, 2, 3, 4}, "w");
  check(back.dtype() == k::f32, "back dtype");
  check_values<float>(back, {2, 2}, {1, 2, 3, 4}, "back");

  // Ahead of time: the library links the runtime installed next to this libkiln.
  auto poly = k::function([](const k::Tensor& x) { return 10.f * x * x - 5.f * x + 4.f; }, "poly");
  k::aot::compile(poly, {k::TensorSpec({3})}, {.name = "poly", .out_dir = "aot"});
  void* so = dlopen("./aot/libpoly.so", RTLD_NOW | RTLD_LOCAL);
  check(so != nullptr, "dlopen aot/libpoly.so");
  if (so != nullptr) {
    auto create = reinterpret_cast<void* (*)()>(dlsym(so, "poly_create"));
    auto run = reinterpret_cast<int (*)(void*, const float*, float*)>(dlsym(so, "poly_run"));
    auto destroy = reinterpret_cast<void (*)(void*)>(dlsym(so, "poly_destroy"));
    void* model = create();
    const float x[3] = {-2.f, 1.f, 3.f};
    float y[3] = {0, 0, 0};
    check(model != nullptr && run(model, x, y) == 0, "poly_run");
    check(y[0] == 54.f && y[1] == 9.f && y[2] == 79.f, "poly values");
    destroy(model);
  }

  if (failures > 0) return 1;
  std::cout << "consumer: all checks passed\n";
  return 0;
}
