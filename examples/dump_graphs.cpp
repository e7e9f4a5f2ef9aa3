// Writes the graphs of the main job's two models for `kiln dump` to draw: each model's inference
// function as a saved model (Model::save) and its whole training step — forward, sparse
// cross-entropy, GradientTape backward pass, optimizer update — as IR text, traced on one batch
// of 128 as fit traces it. docs/graphs.md shows the pictures and the commands.
//
//   build/examples/dump_graphs [output_dir]
#include <kiln/kiln.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "kiln/ir/printer.h"
#include "main_job_models.h"

namespace k = kiln;

namespace {

template <class Opt>
void write_graphs(k::Sequential& model, Opt optimizer, const std::string& out) {
  const std::string name = model.name();
  k::Tensor x = k::zeros({128, 28, 28});
  k::Tensor y = k::zeros({128}, k::i32);
  model(x);  // builds the layers
  model.save(out + "/" + name + "_model");
  auto step = k::function(
      [&](const k::Tensor& xb, const k::Tensor& yb) {
        k::GradientTape tape;
        k::Tensor loss = k::losses::SparseCategoricalCrossentropy()(yb, model(xb, true));
        std::vector<k::Variable> vars = model.trainable_weights();
        optimizer.apply_gradients(tape.gradient(loss, std::span<const k::Variable>(vars)), vars);
        return loss;
      },
      name + "_train_step");
  const std::string path = out + "/" + name + "_train_step.kiln";
  std::ofstream(path) << k::ir::print(step.graph(x, y));
  std::cout << "wrote " << out << "/" << name << "_model/ and " << path << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string out = argc > 1 ? argv[1] : "graphs";
    std::filesystem::create_directories(out);
    k::Sequential mlp = main_job::mlp();
    write_graphs(mlp, k::optimizers::RMSprop(1e-3), out);
    k::Sequential convnet = main_job::convnet();
    write_graphs(convnet, k::optimizers::Adam(1e-3), out);
  } catch (const k::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
