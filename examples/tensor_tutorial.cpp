// The tensor part of two TensorFlow tutorials, replayed in C++ with Kiln:
//   - "Conceptos generales en TensorFlow" (tensors, tf.Variable, arithmetic, slicing, log/cos);
//   - "Primeros pasos con TensorFlow" (creating tensors, dtype and shape, cast, transpose,
//     reshape, squeeze, elementwise products, reductions, matmul, norms, split/concat/stack).
// Section headers follow the notebooks' cells. Random tensors use explicit seeds, so every run
// prints the same numbers. tests/tutorial_test.cpp asserts the same computations.
#include <kiln/kiln.h>

#include <cstdint>
#include <iomanip>
#include <iostream>
#include <numbers>
#include <string>
#include <vector>

namespace k = kiln;

namespace {

void section(const std::string& title) {
  std::cout << "\n# " << title << "\n# " << std::string(title.size(), '=') << "\n";
}

// What `.numpy()` prints in the notebook: the values without the tf.Tensor wrapper.
std::string numpy(const k::Tensor& t) {
  return k::format_values(t.host());
}

void print_list(const std::vector<k::Tensor>& parts) {
  std::cout << "[";
  for (size_t i = 0; i < parts.size(); ++i)
    std::cout << (i ? ", " : "") << numpy(parts[i]);
  std::cout << "]\n";
}

void general_concepts() {
  section("Tensores: un 1D-tensor (vector) constante");
  k::Tensor t = k::constant({2, 3, 4, 5}, k::i32);
  std::cout << t << "\n" << t.shape() << "\n";

  section("Un 2D-tensor (matriz) de tipo float32");
  std::cout << k::constant({{9, 5}, {1, 0}}, k::f32) << "\n";

  section("Variables");
  k::Variable v(k::constant({{1, 2}, {3, 4}}, k::f32));
  std::cout << v << "\n";
  v.assign(k::constant({{-2, -1}, {-3, -7}}, k::f32));
  std::cout << "assign:\n" << v << "\n";
  v.assign_add(k::constant({{1, 1}, {1, 1}}, k::f32));
  std::cout << "assign_add:\n" << v << "\n";
  v.assign_sub(k::constant({{2, 2}, {2, 2}}, k::f32));
  std::cout << "assign_sub:\n" << v << "\n";

  section("Operaciones sobre tensores");
  k::Tensor A = k::constant({{1, 2}, {3, 4}}, k::f32);
  k::Tensor B = k::constant({{-1, -2}, {-3, -4}}, k::f32);
  std::cout << "A + B =\n" << A + B << "\n";
  std::cout << "A - B =\n" << A - B << "\n";
  std::cout << "3 * A =\n" << 3.f * A << "\n";
  std::cout << "A * B =\n" << A * B << "\n";
  std::cout << "matmul(A, B) =\n" << k::matmul(A, B) << "\n";

  section("Slicing");
  std::cout << "Tensor original:\n" << A << "\n";
  std::cout << "Primera fila:\n" << A.index({0}) << "\n";
  std::cout << "Primer elemento de la primera fila:\n" << A.index({0, 0}) << "\n";
  std::cout << "Segunda columna:\n" << A.index({k::Slice(), 1}) << "\n";
  std::cout << "Filas invertidas:\n" << A.index({k::Slice(k::none, k::none, -1)}) << "\n";

  section("Logaritmo y coseno");
  std::cout << "log(A) =\n" << k::log(A) << "\n";
  std::cout << "cos(A) =\n" << k::cos(A) << "\n";
}

void creating_tensors() {
  section("Creando tensores");
  k::Tensor t_a = k::constant({1, 2, 3}, k::i32);
  k::Tensor t_b = k::constant({4, 5, 6});
  std::cout << t_a << "\n" << t_b << "\n";

  section("Obteniendo las dimensiones de un tensor");
  k::Tensor t_ones = k::ones({2, 3});
  std::cout << t_ones << "\n" << t_ones.shape() << "\n";
  std::cout << "numpy: " << numpy(t_ones) << "\n";

  section("Creando un tensor de valores constantes");
  const k::Tensor const_tensor = k::constant({1.2f, 5.f, std::numbers::pi_v<float>}, k::f32);
  std::cout << const_tensor << "\n";

  k::Tensor matriz = k::constant({{2, 3, 4, 5}, {6, 7, 8, 8}}, k::i32);
  std::cout << matriz << "\n\n" << numpy(matriz) << "\n\n" << matriz.shape() << "\n";
}

void dtype_and_shape() {
  section("Cambiando el tipo de datos del tensor");
  k::Tensor matriz = k::constant({{2, 3, 4, 5}, {6, 7, 8, 8}}, k::i32);
  std::cout << matriz.dtype() << "\n";
  k::Tensor matriz_n = k::cast(matriz, k::i64);
  std::cout << matriz_n.dtype() << "\n";

  section("Transponiendo un tensor");
  k::Tensor t = k::random_uniform({3, 5}, 0.0, 1.0, /*seed=*/1);
  std::cout << t << "\n\n" << k::transpose(t) << "\n";

  section("Redimensionando un vector");
  k::Tensor z = k::zeros({30});
  std::cout << z << "\n" << z.shape() << "\n";
  k::Tensor t_reshape = k::reshape(z, {5, 6});
  std::cout << t_reshape << "\n" << t_reshape.shape() << "\n";

  section("Removiendo las dimensiones innecesarias");
  k::Tensor t5 = k::zeros({1, 2, 1, 4, 1});
  k::Tensor t_sqz = k::squeeze(t5, {2, 4});
  std::cout << t_sqz << "\n" << t5.shape() << "  -->  " << t_sqz.shape() << "\n";
}

void math_operations() {
  section("Inicializando dos tensores con numeros aleatorios");
  k::Tensor t1 = k::random_uniform({5, 2}, -1.0, 1.0, /*seed=*/1);
  k::Tensor t2 = k::random_normal({5, 2}, 0.0, 1.0, /*seed=*/2);
  std::cout << t1 << "\n\n" << t2 << "\n";

  section("Producto element-wise");
  std::cout << numpy(k::multiply(t1, t2)) << "\n";

  section("Promedio segun el eje");
  std::cout << k::reduce_mean(t1) << "\n";
  std::cout << k::reduce_mean(t1, 0) << "\n";
  std::cout << k::reduce_mean(t1, 1) << "\n";

  section("Suma segun el eje");
  std::cout << "Suma de todos los elementos: " << k::reduce_sum(t1) << "\n";
  std::cout << "Suma de los elementos por columnas: " << k::reduce_sum(t1, 0) << "\n";
  std::cout << "Suma de los elementos por filas: " << k::reduce_sum(t1, 1) << "\n";

  section("Desviacion estandar segun el eje");
  std::cout << k::reduce_std(t1) << "\n";
  std::cout << k::reduce_std(t1, 0) << "\n";
  std::cout << k::reduce_std(t1, 1) << "\n";

  section("Producto entre matrices");
  std::cout << "matmul(t1, t2, transpose_b=True):\n"
            << numpy(k::matmul(t1, t2, false, true)) << "\n";
  std::cout << "matmul(t1, t2, transpose_a=True):\n"
            << numpy(k::matmul(t1, t2, true, false)) << "\n";

  section("Calculando la norma de un vector");
  std::cout << numpy(k::norm(t1)) << "\n";
  std::cout << numpy(k::norm(t1, 0)) << "\n";
  std::cout << numpy(k::norm(t1, 1)) << "\n";
}

void split_stack_concat() {
  section("Partiendo el tensor en un numero determinado de piezas");
  k::Tensor t = k::random_uniform({6}, 0.0, 1.0, /*seed=*/1);
  std::cout << numpy(t) << "\n";
  print_list(k::split(t, 3));

  section("Partiendo el tensor segun los tamanos definidos");
  print_list(k::split(t, std::vector<int64_t>{3, 3}));

  k::Tensor matriz = k::constant({{2, 3, 4, 5}, {6, 7, 8, 8}}, k::i32);
  k::Tensor matriz_n = k::reshape(matriz, {8});
  std::cout << numpy(matriz_n) << "\n";
  print_list(k::split(matriz_n, 2));

  section("Concatenando tensores");
  std::cout << numpy(k::concat({k::ones({3}), k::zeros({2})}, 0)) << "\n";

  section("Apilando tensores");
  std::cout << numpy(k::stack({k::ones({3}), k::zeros({3})}, 1)) << "\n";
}

void exercises() {
  section("Ejercicios: tensores normales (4, 6)");
  k::Tensor x = k::random_normal({4, 6}, 0.0, 1.0, /*seed=*/3);
  k::Tensor y = k::random_normal({4, 6}, 0.0, 1.0, /*seed=*/4);
  std::cout << "x * y:\n" << numpy(x * y) << "\n";
  std::cout << "matmul(x, y, transpose_b=True) shape: " << k::matmul(x, y, false, true).shape()
            << "\n";
  std::cout << "matmul(x, y, transpose_a=True) shape: " << k::matmul(x, y, true, false).shape()
            << "\n";
  std::cout << "mean, std, sum of x: " << numpy(k::reduce_mean(x)) << " " << numpy(k::reduce_std(x))
            << " " << numpy(k::reduce_sum(x)) << "\n";
  std::cout << "rank 1: " << k::reshape(x, {-1}).shape() << "\n";
  std::cout << "cos(x):\n" << numpy(k::cos(x)) << "\n";

  section("Ejercicios: 1001 valores de 0 a 30 y factoriales");
  k::Tensor grid = k::linspace(0.0, 30.0, 1001);
  std::cout << grid.shape() << " first " << numpy(grid.index({k::Slice(k::none, 3)})) << " last "
            << numpy(grid.index({-1})) << "\n";
  std::vector<double> f(30);
  k::Tensor n = k::range(1.0, 31.0, 1.0, k::f64);
  for (int64_t i = 0; i < 30; ++i) {
    f[static_cast<size_t>(i)] = k::reduce_prod(n.index({k::Slice(k::none, i + 1)})).item<double>();
  }
  std::cout << std::fixed << std::setprecision(0) << "10! = " << f[9] << ", 20! = " << f[19]
            << std::scientific << std::setprecision(6) << ", 30! = " << f[29] << "\n"
            << std::defaultfloat;
}

}  // namespace

int main() {
  try {
    general_concepts();
    creating_tensors();
    dtype_and_shape();
    math_operations();
    split_stack_concat();
    exercises();
  } catch (const k::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  std::cout << "\ntensor tutorial: done\n";
  return 0;
}
