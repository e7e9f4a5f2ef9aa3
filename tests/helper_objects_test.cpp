// The GEMM helpers' objects held for the process (codegen/helper_objects.h): the blob format
// prebuilt helpers travel in (and blobs that do not parse), prebuilt helpers giving way to
// compiled ones under KILN_PREBUILT_HELPERS=off, and compile_jit linking the helpers libkiln was
// built with instead of compiling them, with the same results.
#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>

#include "codegen_test_util.h"
#include "env_test_util.h"
#include "kiln/codegen/helper_objects.h"
#include "kiln/passes/pipeline.h"
#include "prebuilt_config.h"

using namespace kiln;
using codegen::HelperObject;
using codegen::HelperObjects;

namespace {

std::shared_ptr<const HelperObject> helper(std::string object) {
  return std::make_shared<HelperObject>(HelperObject{"", std::move(object)});
}

// Several matmuls in one function (several kernels: compile_jit compiles the helpers apart).
ir::Function matmuls() {
  ir::Function f("matmuls");
  std::vector<ir::Value*> outs;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      ir::Value* a = f.add_param({ir::DType::f32, ta ? ir::Shape{96, 64} : ir::Shape{64, 96}});
      ir::Value* b = f.add_param({ir::DType::f32, tb ? ir::Shape{80, 96} : ir::Shape{96, 80}});
      outs.push_back(f.append(ir::Op::matmul, {a, b},
                              ir::Attrs().set_bool("transpose_a", ta).set_bool("transpose_b", tb))
                         ->output());
    }
  }
  f.set_outputs(outs);
  return f;
}

}  // namespace

TEST_CASE("a blob of helpers reads back as prebuilt helpers", "[codegen][helpers]") {
  std::map<std::string, std::shared_ptr<const HelperObject>> helpers;
  helpers.emplace("gemm_part_x|target", helper(std::string("\0obj\nwith newlines\0", 19)));
  helpers.emplace("gemm_micro_y|target", helper("another object"));
  const std::string blob = HelperObjects::to_blob(helpers);
  HelperObjects objects;
  REQUIRE(objects.add_prebuilt(blob));
  CHECK(objects.prebuilt_count() == 2);
  CHECK(objects.compiled().empty());
  auto x = objects.find("gemm_part_x|target");
  REQUIRE(x != nullptr);
  CHECK(x->object == std::string("\0obj\nwith newlines\0", 19));
  // The text names the helper and says where its IR is.
  CHECK(x->text.find("gemm_part_x") != std::string::npos);
  CHECK(x->text.find("KILN_PREBUILT_HELPERS=off") != std::string::npos);
  CHECK(objects.find("gemm_micro_y|target")->object == "another object");
  CHECK(objects.find("gemm_micro_y|other target") == nullptr);
}

TEST_CASE("blobs that do not parse whole add no helpers", "[codegen][helpers][errors]") {
  std::map<std::string, std::shared_ptr<const HelperObject>> helpers;
  helpers.emplace("gemm_a|t", helper("object a"));
  helpers.emplace("gemm_b|t", helper("object b"));
  const std::string blob = HelperObjects::to_blob(helpers);
  const std::string header = blob.substr(0, blob.find('\n') + 1);
  for (const std::string& bad : {
           std::string(),                                      // empty
           std::string("kiln-prebuilt-helpers 2\n"),           // another format
           blob.substr(1),                                     // no header
           blob.substr(0, blob.size() - 1),                    // truncated object
           blob.substr(0, header.size() + 3),                  // truncated size line
           header + "8 x\ngemm_a|tobject a",                   // a size that is not a number
           header + "0 8\nobject a",                           // an empty key
           header + "6 0\ngemm_a",                             // an empty object
           header + "6 99999999999999999999999\ngemm_a|tobj",  // a size past size_t
           header + "6 8 gemm_a|tobject a",                    // no newline after the sizes
       }) {
    INFO(bad.size() << " bytes");
    HelperObjects objects;
    CHECK_FALSE(objects.add_prebuilt(bad));
    CHECK(objects.prebuilt_count() == 0);
    CHECK(objects.find("gemm_a|t") == nullptr);
  }
  HelperObjects objects;
  CHECK(objects.add_prebuilt(header));  // no helpers at all is a blob
  CHECK(objects.prebuilt_count() == 0);
}

TEST_CASE("prebuilt helpers give way under KILN_PREBUILT_HELPERS=off", "[codegen][helpers]") {
  std::map<std::string, std::shared_ptr<const HelperObject>> helpers;
  helpers.emplace("gemm_a|t", helper("prebuilt"));
  HelperObjects objects;
  REQUIRE(objects.add_prebuilt(HelperObjects::to_blob(helpers)));
  {
    testing::ScopedEnv off("KILN_PREBUILT_HELPERS", "off");
    CHECK(objects.find("gemm_a|t") == nullptr);
    objects.add("gemm_a|t", helper("compiled"));  // what compile_jit then does
    CHECK(objects.find("gemm_a|t")->object == "compiled");
  }
  // The compiled one stays, and is a compiled one.
  CHECK(objects.find("gemm_a|t")->object == "compiled");
  CHECK(objects.compiled().size() == 1);
  CHECK(objects.prebuilt_count() == 0);
  // A key added twice keeps the first.
  objects.add("gemm_a|t", helper("again"));
  CHECK(objects.find("gemm_a|t")->object == "compiled");
}

TEST_CASE("compile_jit links the helpers libkiln was built with", "[codegen][helpers]") {
  testing::ScopedEnv threads("KILN_COMPILE_THREADS", "2");
  const size_t prebuilt = HelperObjects::get().prebuilt_count();
  // A build with KILN_PREBUILT_HELPERS embeds the helpers for its machine (38 of them for
  // AVX-512); one without embeds none.
  if (KILN_TEST_PREBUILT_HELPERS)
    CHECK(prebuilt >= 10);
  else
    CHECK(prebuilt == 0);
  ir::Function f = matmuls();
  std::vector<ir::HostTensor> args;
  for (size_t i = 0; i < f.params().size(); ++i)
    args.push_back(testing::uniform(ir::DType::f32, f.params()[i]->type().shape,
                                    static_cast<uint32_t>(i + 1)));
  const ir::EvalResult want = ir::evaluate(f, args);
  passes::PipelineResult planned = passes::run_pipeline(f.clone());
  std::vector<std::string> texts;
  for (const char* use_prebuilt : {"on", "off"}) {
    INFO("KILN_PREBUILT_HELPERS=" << use_prebuilt);
    testing::ScopedEnv env("KILN_PREBUILT_HELPERS", use_prebuilt);
    auto module = codegen::compile_jit(planned.function, planned.kernels, planned.memory);
    texts.push_back(module->llvm_ir());
    std::vector<ir::HostTensor> got = testing::run_compiled(*module, planned.function, args);
    for (size_t i = 0; i < got.size(); ++i)
      testing::check_close(got[i], want.outputs[i], 96);
  }
  // Linked where the build embedded them (this is the build machine, or one like it); compiled
  // from IR with them off.
  const std::string mark = "prebuilt with Kiln";
  CHECK((texts[0].find(mark) != std::string::npos) == (prebuilt > 0));
  CHECK(texts[1].find(mark) == std::string::npos);
  CHECK(texts[1].find("define void @gemm_part_") != std::string::npos);
}
