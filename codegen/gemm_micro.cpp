// The GEMM's inner pieces: the blocking for the host's vector registers, the register-blocked
// micro-kernel, and the packing of A and B panels.
#include <llvm/IR/Module.h>

#include "kiln/codegen/gemm_parts.h"

#include <fmt/format.h>

namespace kiln::codegen::gemm {

using llvm::Value;

namespace {

llvm::Type* element_type(llvm::LLVMContext& context, const Config& config) {
  return scalar_type(context, config.dtype);
}

llvm::FixedVectorType* vector_type(llvm::LLVMContext& context, const Config& config) {
  return llvm::FixedVectorType::get(element_type(context, config),
                                    static_cast<unsigned>(config.lanes));
}

// Attaches loop metadata to the loop whose back edge is `branch`: an unroll count (when not 0),
// with `vectorize` false, a request that the loop vectorizer leave it alone, and with
// `runtime_unroll` false, that the unroller not unroll it by a count known only at run time.
void set_loop_hints(llvm::BranchInst* branch, unsigned unroll, bool vectorize,
                    bool runtime_unroll = true) {
  llvm::LLVMContext& context = branch->getContext();
  std::vector<llvm::Metadata*> ops{nullptr};
  auto hint = [&](const char* name, llvm::Type* type, unsigned value) {
    llvm::Metadata* pair[] = {llvm::MDString::get(context, name),
                              llvm::ConstantAsMetadata::get(llvm::ConstantInt::get(type, value))};
    ops.push_back(llvm::MDNode::get(context, pair));
  };
  if (unroll != 0) hint("llvm.loop.unroll.count", llvm::Type::getInt32Ty(context), unroll);
  if (!vectorize) hint("llvm.loop.vectorize.enable", llvm::Type::getInt1Ty(context), 0);
  if (!runtime_unroll) {
    llvm::Metadata* name[] = {llvm::MDString::get(context, "llvm.loop.unroll.runtime.disable")};
    ops.push_back(llvm::MDNode::get(context, name));
  }
  llvm::MDNode* loop = llvm::MDNode::getDistinct(context, ops);
  loop->replaceOperandWith(0, loop);
  branch->setMetadata(llvm::LLVMContext::MD_loop, loop);
}

// The transpose of a square tile of vectors: out[j][r] = in[r][j], in log2(lanes) rounds of
// two-input shuffles; round t exchanges bit t of the row with bit t of the lane.
std::vector<Value*> transpose_tile(Builder& b, std::vector<Value*> rows) {
  const auto n = static_cast<int>(rows.size());
  for (int bit = 1; bit < n; bit <<= 1) {
    std::vector<int> low_mask, high_mask;
    for (int c = 0; c < n; ++c) {
      const bool set = (c & bit) != 0;
      low_mask.push_back(set ? n + (c ^ bit) : c);  // row r (bit clear) takes partner lanes
      high_mask.push_back(set ? n + c : (c | bit));
    }
    std::vector<Value*> next(rows.size());
    for (int r = 0; r < n; ++r) {
      if ((r & bit) != 0) continue;
      Value* x = rows[static_cast<size_t>(r)];
      Value* y = rows[static_cast<size_t>(r | bit)];
      next[static_cast<size_t>(r)] = b.CreateShuffleVector(x, y, low_mask);
      next[static_cast<size_t>(r | bit)] = b.CreateShuffleVector(x, y, high_mask);
    }
    rows = std::move(next);
  }
  return rows;
}

using Tile = std::vector<Value*>;  // accumulators, row-major: [r * vectors + v]

// Where A's element for row r of the tile and depth k lies.
using AAddress = std::function<Value*(int64_t r, Value* k)>;

// The k loop: acc[r][v] += splat(a[k][r]) · b[k][v], kept in registers, starting from `init`
// (zeros when null).
Tile emit_k_loop(Builder& b, const Config& config, const AAddress& a_at, Value* bp, Value* kc,
                 const Tile* init = nullptr) {
  llvm::LLVMContext& context = b.getContext();
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::Type* t = element_type(context, config);
  llvm::FixedVectorType* v = vector_type(context, config);
  const size_t count = static_cast<size_t>(config.mr * config.vectors);
  Tile zero = init != nullptr ? *init : Tile(count, llvm::ConstantAggregateZero::get(v));

  llvm::BasicBlock* pre = b.GetInsertBlock();
  llvm::BasicBlock* loop = llvm::BasicBlock::Create(context, "k_loop", fn);
  llvm::BasicBlock* done = llvm::BasicBlock::Create(context, "k_done", fn);
  b.CreateCondBr(b.CreateICmpSGT(kc, b.getInt64(0)), loop, done);

  b.SetInsertPoint(loop);
  llvm::PHINode* k = b.CreatePHI(b.getInt64Ty(), 2, "k");
  k->addIncoming(b.getInt64(0), pre);
  std::vector<llvm::PHINode*> acc;
  for (size_t i = 0; i < count; ++i) {
    acc.push_back(b.CreatePHI(v, 2, "acc"));
    acc.back()->addIncoming(zero[i], pre);
  }
  const llvm::Align vector_align(static_cast<uint64_t>(config.lanes * config.element_bytes()));
  std::vector<Value*> bv;
  Value* brow = b.CreateMul(k, b.getInt64(config.nr()));
  for (int64_t j = 0; j < config.vectors; ++j) {
    Value* at = b.CreateInBoundsGEP(t, bp, b.CreateAdd(brow, b.getInt64(j * config.lanes)));
    bv.push_back(b.CreateAlignedLoad(v, at, vector_align));
  }
  Tile next(count);
  for (int64_t r = 0; r < config.mr; ++r) {
    Value* x = b.CreateLoad(t, a_at(r, k));
    Value* splat = b.CreateVectorSplat(static_cast<unsigned>(config.lanes), x);
    for (int64_t j = 0; j < config.vectors; ++j) {
      const size_t i = static_cast<size_t>(r * config.vectors + j);
      Value* args[] = {splat, bv[static_cast<size_t>(j)], acc[i]};
      next[i] = b.CreateIntrinsic(llvm::Intrinsic::fma, {v}, args);
    }
  }
  Value* k_next = b.CreateAdd(k, b.getInt64(1), "", true, true);
  k->addIncoming(k_next, loop);
  for (size_t i = 0; i < count; ++i)
    acc[i]->addIncoming(next[i], loop);
  set_loop_hints(b.CreateCondBr(b.CreateICmpSLT(k_next, kc), loop, done), config.unroll, true);

  b.SetInsertPoint(done);
  Tile result(count);
  for (size_t i = 0; i < count; ++i) {
    llvm::PHINode* phi = b.CreatePHI(v, 2, "sum");
    phi->addIncoming(zero[i], pre);
    phi->addIncoming(next[i], loop);
    result[i] = phi;
  }
  return result;
}

// Offset of row r, vector j of a C tile whose rows are ldc apart.
Value* offset(Builder& b, const Config& config, Value* ldc, int64_t r, int64_t j) {
  return b.CreateAdd(b.CreateMul(b.getInt64(r), ldc), b.getInt64(j * config.lanes));
}

// Starts fetching the C tile into L1 for writing, so that the stores after the k loop do not
// wait for it (rows past the edge of C only prefetch, which never faults).
void prefetch_tile(Builder& b, const Config& config, Value* c, Value* ldc) {
  llvm::Type* t = element_type(b.getContext(), config);
  const int64_t row_bytes = config.nr() * config.element_bytes();
  const int64_t per_line = 64 / config.element_bytes();
  for (int64_t r = 0; r < config.mr; ++r) {
    for (int64_t line = 0; line * 64 < row_bytes; ++line) {
      Value* at = b.CreateGEP(
          t, c, b.CreateAdd(b.CreateMul(b.getInt64(r), ldc), b.getInt64(line * per_line)));
      Value* args[] = {at, b.getInt32(1), b.getInt32(3), b.getInt32(1)};
      b.CreateIntrinsic(llvm::Intrinsic::prefetch, {at->getType()}, args);
    }
  }
}

// Stores the rows × cols corner of the tile, adding C's old values when `accumulate`, with
// masked loads and stores (all lanes on for a full tile, where they cost what plain ones do;
// nothing outside the corner is touched, and fully masked rows touch no memory).
void store_tile(Builder& b, const Config& config, const Tile& tile, Value* c, Value* ldc,
                Value* rows, Value* cols, Value* accumulate) {
  llvm::Type* t = element_type(b.getContext(), config);
  llvm::FixedVectorType* v = vector_type(b.getContext(), config);
  const llvm::Align align(static_cast<uint64_t>(config.element_bytes()));
  const unsigned lanes = static_cast<unsigned>(config.lanes);
  Value* zero = llvm::ConstantAggregateZero::get(v);
  for (int64_t r = 0; r < config.mr; ++r) {
    Value* row_ok = b.CreateVectorSplat(lanes, b.CreateICmpSLT(b.getInt64(r), rows));
    Value* read_ok = b.CreateAnd(row_ok, b.CreateVectorSplat(lanes, accumulate));
    for (int64_t j = 0; j < config.vectors; ++j) {
      Value* at = b.CreateGEP(t, c, offset(b, config, ldc, r, j));
      Value* cols_ok = lanes_below(b, config, j * config.lanes, cols);
      Value* old = b.CreateMaskedLoad(v, at, align, b.CreateAnd(read_ok, cols_ok), zero);
      Value* x = b.CreateFAdd(tile[static_cast<size_t>(r * config.vectors + j)], old);
      b.CreateMaskedStore(x, at, align, b.CreateAnd(row_ok, cols_ok));
    }
  }
}

}  // namespace

Config choose_config(ir::DType dtype, int64_t n, const VectorUnit& unit) {
  Config config;
  config.dtype = dtype;
  config.lanes = unit.bytes / config.element_bytes();
  config.registers = unit.registers;
  // mr · vectors accumulators and the `vectors` B vectors must fit in the registers (the A
  // element is broadcast from memory by the FMA). A result no wider than one vector gets a
  // one-vector micro-tile, so that fewer padding columns are computed.
  const bool wide = unit.registers >= 32;
  config.vectors = n <= config.lanes ? 1 : 2;
  config.mr = config.vectors == 1 ? (wide ? 28 : 12) : (wide ? 14 : 6);
  // The B micro-panel (kc × nr) stays in L1 while the A panels stream past it.
  const int64_t l1_budget = wide ? 32 * 1024 : 16 * 1024;
  config.kc = l1_budget / (config.nr() * config.element_bytes());
  return config;
}

Value* lanes_below(Builder& b, const Config& config, int64_t first, Value* limit) {
  std::vector<llvm::Constant*> iota;
  for (int64_t l = 0; l < config.lanes; ++l)
    iota.push_back(b.getInt64(static_cast<uint64_t>(first + l)));
  Value* splat = b.CreateVectorSplat(static_cast<unsigned>(config.lanes), limit);
  return b.CreateICmpSLT(llvm::ConstantVector::get(iota), splat);
}

std::string Config::tag() const {
  return fmt::format("{}_{}x{}_{}_{}_{}", ir::dtype_name(dtype), mr, nr(), kc, mc_panels, nc);
}

Value* emit_min(Builder& b, Value* x, Value* y) {
  return b.CreateSelect(b.CreateICmpSLT(x, y), x, y);
}

void emit_range(Builder& b, Value* begin, Value* end, int64_t step,
                const std::function<void(Value*)>& body, bool vectorize, bool runtime_unroll) {
  llvm::LLVMContext& context = b.getContext();
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::BasicBlock* pre = b.GetInsertBlock();
  llvm::BasicBlock* header = llvm::BasicBlock::Create(context, "range", fn);
  llvm::BasicBlock* inner = llvm::BasicBlock::Create(context, "range_body", fn);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(context, "range_exit", fn);
  b.CreateBr(header);
  b.SetInsertPoint(header);
  llvm::PHINode* i = b.CreatePHI(b.getInt64Ty(), 2, "i");
  i->addIncoming(begin, pre);
  b.CreateCondBr(b.CreateICmpSLT(i, end), inner, exit);
  b.SetInsertPoint(inner);
  body(i);
  i->addIncoming(b.CreateAdd(i, b.getInt64(step), "", true, true), b.GetInsertBlock());
  llvm::BranchInst* back = b.CreateBr(header);
  if (!vectorize || !runtime_unroll) set_loop_hints(back, 0, vectorize, runtime_unroll);
  b.SetInsertPoint(exit);
}

llvm::Function* micro_kernel(llvm::Module& module, const Config& config, bool unpacked_a) {
  return micro_kernel(module, config, unpacked_a ? AReads::rows : AReads::packed);
}

std::string micro_kernel_name(const Config& config, AReads reads) {
  return fmt::format("gemm_micro_{}{}", config.tag(),
                     reads == AReads::rows    ? "_ua"
                     : reads == AReads::table ? "_table"
                                              : "");
}

bool is_micro_kernel_name(std::string_view name) {
  return name.starts_with("gemm_micro_");
}

std::string conv_micro_kernel_name(const Config& config, const ConvMicroShape& shape) {
  return shape.row_step > 0 ? fmt::format("gemm_micro_{}_conv_s{}_c{}", config.tag(),
                                          shape.row_step, shape.channels)
                            : fmt::format("gemm_micro_{}_conv", config.tag());
}

llvm::Function* micro_kernel(llvm::Module& module, const Config& config, AReads reads) {
  const bool unpacked_a = reads == AReads::rows;
  const std::string name = micro_kernel_name(config, reads);
  if (llvm::Function* existing = module.getFunction(name)) return existing;
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  llvm::Type* i1 = llvm::Type::getInt1Ty(context);
  std::vector<llvm::Type*> params{ptr, ptr, i64, ptr, i64, i64, i64, i1};
  if (unpacked_a) params.push_back(i64);              // lda
  if (reads == AReads::table) params.push_back(ptr);  // the depth offsets
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), params, false);
  auto* fn = llvm::Function::Create(type, llvm::Function::InternalLinkage, name, module);
  fn->addFnAttr(llvm::Attribute::NoInline);
  fn->addFnAttr("min-legal-vector-width",
                std::to_string(config.lanes * config.element_bytes() * 8));
  for (unsigned p : {0u, 1u, 3u})
    fn->addParamAttr(p, llvm::Attribute::NoAlias);
  Value* a = fn->getArg(0);
  Value* bp = fn->getArg(1);
  Value* kc = fn->getArg(2);
  Value* c = fn->getArg(3);
  Value* ldc = fn->getArg(4);
  Value* rows = fn->getArg(5);
  Value* cols = fn->getArg(6);
  Value* accumulate = fn->getArg(7);

  Builder b(llvm::BasicBlock::Create(context, "entry", fn));
  prefetch_tile(b, config, c, ldc);
  llvm::Type* t = element_type(context, config);
  AAddress a_at;
  if (unpacked_a) {
    // A as it lies, rows lda apart; rows past `rows` read the last valid row (their results
    // are not stored).
    Value* lda = fn->getArg(8);
    std::vector<Value*> row_start;
    for (int64_t r = 0; r < config.mr; ++r) {
      Value* row = emit_min(b, b.getInt64(r), b.CreateSub(rows, b.getInt64(1)));
      row_start.push_back(b.CreateInBoundsGEP(t, a, b.CreateMul(row, lda)));
    }
    a_at = [&b, t, row_start](int64_t r, Value* k) {
      return b.CreateInBoundsGEP(t, row_start[static_cast<size_t>(r)], k);
    };
  } else if (reads == AReads::table) {
    // Depth k's mr elements lie together at a + table[k] (one load of the offset per depth,
    // shared by the rows).
    Value* table = fn->getArg(8);
    a_at = [&b, t, i64, a, table](int64_t r, Value* k) {
      Value* offset = b.CreateLoad(i64, b.CreateInBoundsGEP(i64, table, k));
      return b.CreateInBoundsGEP(t, a, b.CreateAdd(offset, b.getInt64(r)));
    };
  } else {
    a_at = [&b, t, a, &config](int64_t r, Value* k) {
      return b.CreateInBoundsGEP(t, a,
                                 b.CreateAdd(b.CreateMul(k, b.getInt64(config.mr)), b.getInt64(r)));
    };
  }
  Tile tile = emit_k_loop(b, config, a_at, bp, kc);
  store_tile(b, config, tile, c, ldc, rows, cols, accumulate);
  b.CreateRetVoid();
  return fn;
}

llvm::Function* conv_micro_kernel(llvm::Module& module, const Config& config,
                                  const ConvMicroShape& shape) {
  const bool strided = shape.row_step > 0;
  const std::string name = conv_micro_kernel_name(config, shape);
  if (llvm::Function* existing = module.getFunction(name)) return existing;
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  llvm::Type* i1 = llvm::Type::getInt1Ty(context);
  std::vector<llvm::Type*> params{ptr, ptr, i64, ptr, i64, i64, i64,
                                  i1,  ptr, i64, i64, i64, i64, i64};
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), params, false);
  auto* fn = llvm::Function::Create(type, llvm::Function::InternalLinkage, name, module);
  fn->addFnAttr(llvm::Attribute::NoInline);
  fn->addFnAttr("min-legal-vector-width",
                std::to_string(config.lanes * config.element_bytes() * 8));
  for (unsigned p : {1u, 3u})
    fn->addParamAttr(p, llvm::Attribute::NoAlias);
  Value* a = fn->getArg(0);
  Value* bp = fn->getArg(1);
  Value* taps = fn->getArg(2);
  Value* c = fn->getArg(3);
  Value* ldc = fn->getArg(4);
  Value* rows = fn->getArg(5);
  Value* cols = fn->getArg(6);
  Value* accumulate = fn->getArg(7);
  Value* row_offsets = fn->getArg(8);
  Value* tap0 = fn->getArg(10);
  Value* kw = fn->getArg(11);
  Value* tap_h = fn->getArg(12);
  Value* tap_w = fn->getArg(13);

  Builder b(llvm::BasicBlock::Create(context, "entry", fn));
  prefetch_tile(b, config, c, ldc);
  llvm::Type* t = element_type(context, config);
  llvm::FixedVectorType* v = vector_type(context, config);
  Value* channels = strided ? static_cast<Value*>(b.getInt64(static_cast<uint64_t>(shape.channels)))
                            : fn->getArg(9);
  std::vector<Value*> row_start;
  if (strided) {
    // A full tile of one output row's pixels: row r starts row_step · r elements after the
    // first, a constant the FMAs' addressing takes as a displacement off one register (with
    // a register per row, 14 rows spill).
    Value* first = b.CreateInBoundsGEP(t, a, b.CreateLoad(i64, row_offsets));
    for (int64_t r = 0; r < config.mr; ++r)
      row_start.push_back(
          b.CreateConstInBoundsGEP1_64(t, first, static_cast<uint64_t>(r * shape.row_step)));
  } else {
    for (int64_t r = 0; r < config.mr; ++r) {
      Value* offset = b.CreateLoad(i64, b.CreateConstInBoundsGEP1_64(i64, row_offsets, r));
      row_start.push_back(b.CreateInBoundsGEP(t, a, offset));
    }
  }
  // The window position of tap0, then one tap after another: (i, j) row-major, tap (i, j)
  // lying at i·tap_h + j·tap_w.
  Value* j_start = b.CreateURem(tap0, kw);
  Value* offset_start =
      b.CreateAdd(b.CreateMul(b.CreateUDiv(tap0, kw), tap_h), b.CreateMul(j_start, tap_w));
  Value* wrap_step = b.CreateSub(tap_h, b.CreateMul(b.CreateSub(kw, b.getInt64(1)), tap_w));
  Value* tap_depth = b.CreateMul(channels, b.getInt64(config.nr()));
  const size_t count = static_cast<size_t>(config.mr * config.vectors);
  Tile zero(count, llvm::ConstantAggregateZero::get(v));

  llvm::BasicBlock* pre = b.GetInsertBlock();
  llvm::BasicBlock* loop = llvm::BasicBlock::Create(context, "tap_loop", fn);
  llvm::BasicBlock* done = llvm::BasicBlock::Create(context, "tap_done", fn);
  b.CreateCondBr(b.CreateICmpSGT(taps, b.getInt64(0)), loop, done);
  b.SetInsertPoint(loop);
  llvm::PHINode* tap = b.CreatePHI(i64, 2, "tap");
  llvm::PHINode* j = b.CreatePHI(i64, 2, "j");
  llvm::PHINode* offset = b.CreatePHI(i64, 2, "tap_offset");
  tap->addIncoming(b.getInt64(0), pre);
  j->addIncoming(j_start, pre);
  offset->addIncoming(offset_start, pre);
  Tile acc(count);
  std::vector<llvm::PHINode*> acc_phis;
  for (size_t i = 0; i < count; ++i) {
    acc_phis.push_back(b.CreatePHI(v, 2, "acc"));
    acc_phis.back()->addIncoming(zero[i], pre);
    acc[i] = acc_phis.back();
  }
  std::vector<Value*> tap_rows;
  for (Value* start : row_start)
    tap_rows.push_back(b.CreateInBoundsGEP(t, start, offset));
  AAddress a_at = [&b, t, &tap_rows](int64_t r, Value* k) {
    return b.CreateInBoundsGEP(t, tap_rows[static_cast<size_t>(r)], k);
  };
  Value* b_tap = b.CreateInBoundsGEP(t, bp, b.CreateMul(tap, tap_depth));
  Tile next = emit_k_loop(b, config, a_at, b_tap, channels, &acc);
  Value* tap_next = b.CreateAdd(tap, b.getInt64(1), "", true, true);
  Value* j_next = b.CreateAdd(j, b.getInt64(1));
  Value* wrap = b.CreateICmpEQ(j_next, kw);
  Value* offset_next = b.CreateAdd(offset, b.CreateSelect(wrap, wrap_step, tap_w));
  llvm::BasicBlock* latch = b.GetInsertBlock();
  tap->addIncoming(tap_next, latch);
  j->addIncoming(b.CreateSelect(wrap, b.getInt64(0), j_next), latch);
  offset->addIncoming(offset_next, latch);
  for (size_t i = 0; i < count; ++i)
    acc_phis[i]->addIncoming(next[i], latch);
  b.CreateCondBr(b.CreateICmpSLT(tap_next, taps), loop, done);

  b.SetInsertPoint(done);
  Tile result(count);
  for (size_t i = 0; i < count; ++i) {
    llvm::PHINode* phi = b.CreatePHI(v, 2, "sum");
    phi->addIncoming(zero[i], pre);
    phi->addIncoming(next[i], latch);
    result[i] = phi;
  }
  store_tile(b, config, result, c, ldc, rows, cols, accumulate);
  b.CreateRetVoid();
  return fn;
}

// Packs `width` rows [first, first + width) of a row-major matrix (rows ld apart) × columns
// [pc, pc + kc) into dst[k][row] (width per k), rows at or past `valid` as zeros: the layout of a
// packed A panel from A [m, k] and of a packed B panel from a transposed B [n, k]. Per group of
// `lanes` rows and block of `lanes` columns: one masked vector load per row, a transpose in
// registers, one masked store per column.
void emit_pack_rows_transposed(Builder& b, const Config& config, Value* src, Value* ld,
                               Value* first, Value* valid, int64_t width, Value* dst, Value* pc,
                               Value* kc) {
  llvm::Type* t = element_type(b.getContext(), config);
  Value* rows = valid;
  const int64_t lanes = config.lanes;
  llvm::FixedVectorType* v = vector_type(b.getContext(), config);
  const llvm::Align align(static_cast<uint64_t>(config.element_bytes()));
  Value* zero_vector = llvm::ConstantAggregateZero::get(v);
  llvm::Value* no_lanes = llvm::Constant::getNullValue(
      llvm::FixedVectorType::get(b.getInt1Ty(), static_cast<unsigned>(lanes)));
  emit_range(
      b, b.getInt64(0), kc, lanes,
      [&](Value* k0) {
        Value* depths = emit_min(b, b.getInt64(lanes), b.CreateSub(kc, k0));
        Value* depth_mask = lanes_below(b, config, 0, depths);
        for (int64_t g = 0; g < width; g += lanes) {
          const int64_t group = std::min(lanes, width - g);
          std::vector<Value*> tile;
          for (int64_t r = 0; r < lanes; ++r) {
            if (r >= group) {
              tile.push_back(zero_vector);
              continue;
            }
            Value* row = b.getInt64(g + r);
            Value* mask = b.CreateSelect(b.CreateICmpSLT(row, rows), depth_mask, no_lanes);
            Value* at = b.CreateAdd(b.CreateMul(b.CreateAdd(first, row), ld), b.CreateAdd(pc, k0));
            tile.push_back(
                b.CreateMaskedLoad(v, b.CreateGEP(t, src, at), align, mask, zero_vector));
          }
          tile = transpose_tile(b, tile);
          Value* group_mask = lanes_below(b, config, 0, b.getInt64(group));
          for (int64_t j = 0; j < lanes; ++j) {
            Value* mask =
                b.CreateSelect(b.CreateICmpSLT(b.getInt64(j), depths), group_mask, no_lanes);
            Value* at = b.CreateAdd(b.CreateMul(b.CreateAdd(k0, b.getInt64(j)), b.getInt64(width)),
                                    b.getInt64(g));
            b.CreateMaskedStore(tile[static_cast<size_t>(j)], b.CreateInBoundsGEP(t, dst, at),
                                align, mask);
          }
        }
      },
      false);
}

void emit_pack_a_panel(Builder& b, const Config& config, const Problem& problem, Value* a,
                       Value* dst, Value* i0, Value* pc, Value* kc) {
  llvm::Type* t = element_type(b.getContext(), config);
  Value* rows = emit_min(b, b.getInt64(config.mr), b.CreateSub(problem.m, i0));
  if (problem.transpose_a) {
    // A is [k, m]: the panel's mr elements at each depth are contiguous; masked vector copies,
    // zeros past m.
    llvm::FixedVectorType* v = vector_type(b.getContext(), config);
    const llvm::Align align(static_cast<uint64_t>(config.element_bytes()));
    std::vector<Value*> load_masks, store_masks;
    for (int64_t first = 0; first < config.mr; first += config.lanes) {
      load_masks.push_back(lanes_below(b, config, first, rows));
      store_masks.push_back(lanes_below(b, config, first, b.getInt64(config.mr)));
    }
    emit_range(
        b, b.getInt64(0), kc, 1,
        [&](Value* k) {
          Value* src = b.CreateAdd(b.CreateMul(b.CreateAdd(pc, k), problem.m), i0);
          Value* out = b.CreateMul(k, b.getInt64(config.mr));
          for (size_t q = 0; q < load_masks.size(); ++q) {
            const int64_t first = static_cast<int64_t>(q) * config.lanes;
            Value* from = b.CreateGEP(t, a, b.CreateAdd(src, b.getInt64(first)));
            Value* x = b.CreateMaskedLoad(v, from, align, load_masks[q],
                                          llvm::ConstantAggregateZero::get(v));
            Value* to = b.CreateGEP(t, dst, b.CreateAdd(out, b.getInt64(first)));
            b.CreateMaskedStore(x, to, align, store_masks[q]);
          }
        },
        false);
    return;
  }
  // A is [m, k]: rows are contiguous along k, the panel wants k-major.
  emit_pack_rows_transposed(b, config, a, problem.k, i0, rows, config.mr, dst, pc, kc);
}

void emit_pack_b_panel(Builder& b, const Config& config, const Problem& problem, Value* bm,
                       Value* dst, Value* j0, Value* pc, Value* kc) {
  llvm::Type* t = element_type(b.getContext(), config);
  llvm::FixedVectorType* v = vector_type(b.getContext(), config);
  Value* cols = emit_min(b, b.getInt64(config.nr()), b.CreateSub(problem.n, j0));
  if (!problem.transpose_b) {
    // Rows of B are contiguous: masked vector loads, zeros past n.
    const llvm::Align align(static_cast<uint64_t>(config.element_bytes()));
    const llvm::Align vector_align(static_cast<uint64_t>(config.lanes * config.element_bytes()));
    std::vector<Value*> masks;
    for (int64_t j = 0; j < config.vectors; ++j)
      masks.push_back(lanes_below(b, config, j * config.lanes, cols));
    emit_range(
        b, b.getInt64(0), kc, 1,
        [&](Value* k) {
          Value* src = b.CreateAdd(b.CreateMul(b.CreateAdd(pc, k), problem.n), j0);
          Value* out = b.CreateMul(k, b.getInt64(config.nr()));
          for (int64_t j = 0; j < config.vectors; ++j) {
            Value* at = b.CreateGEP(t, bm, b.CreateAdd(src, b.getInt64(j * config.lanes)));
            Value* x = b.CreateMaskedLoad(v, at, align, masks[static_cast<size_t>(j)],
                                          llvm::ConstantAggregateZero::get(v));
            Value* to = b.CreateInBoundsGEP(t, dst, b.CreateAdd(out, b.getInt64(j * config.lanes)));
            b.CreateAlignedStore(x, to, vector_align);
          }
        },
        false);
    return;
  }
  // B is [n, k]: column j of the panel is a contiguous run of row j0 + j, packed as A's rows
  // are (columns past n as zeros).
  emit_pack_rows_transposed(b, config, bm, problem.k, j0, cols, config.nr(), dst, pc, kc);
}

}  // namespace kiln::codegen::gemm
