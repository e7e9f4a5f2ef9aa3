// The GEMM driver for matmul kernels. The result is split into parts along M (row panels) or
// N (column panels), one part per thread; each part is an independent BLIS-style GEMM with its
// own packing buffers (column blocks of nc → depth blocks of kc → pack B → row blocks of
// mc_panels · mr → pack A → micro-kernel over B panels × A panels), so the threads never wait
// for each other inside a call. At the last depth block each finished C tile gets the kernel's
// fused epilogue while it is in cache. The part body is an outlined function that reads a
// context struct the kernel fills in (kiln_rt_parallel_for's calling convention); it takes the
// sizes from the context, so a module holds one per blocking configuration and transpose pair
// however many matmuls it has; only the driver and the epilogue are per kernel.
#include "kiln/codegen/gemm.h"

#include <llvm/IR/Module.h>

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "kiln/codegen/elemental.h"
#include "kiln/codegen/gemm_parts.h"
#include "kiln/ir/error.h"
#include "kiln/ir/ops/matmul.h"
#include "kiln/ir/ops/window.h"

namespace kiln::codegen {

using gemm::Config;
using llvm::Value;

namespace {

// Fields of the context struct the outlined functions read.
enum Field : unsigned {
  kA,         // A of the current batch element
  kB,         // B of the current batch element
  kC,         // C of the current batch element
  kCFull,     // C of batch element 0 (the epilogue indexes the whole result)
  kOut,       // the kernel's output
  kInputs,    // the kernel's inputs, an array of pointers in kernel order
  kEpilogue,  // void epilogue(ctx, i0, j0, rows, cols), or null
  kM,
  kN,
  kK,
  kSplitN,   // 1: parts are column panels; 0: parts are row panels
  kKBlocks,  // depth blocks (at least 1, so that K = 0 still writes C)
  kKc,       // depth of every depth block but maybe the last
  kBatch,    // linear index of the current batch element
  // An implicit-GEMM convolution's geometry (conv parts only; see ConvGeometry).
  kConvPixels,    // OH·OW: rows of C per image
  kConvOutW,      // OW
  kConvImage,     // elements from one image of the input to the next
  kConvRow,       // ... from one output row's window to the next (stride_h·W·C)
  kConvCol,       // ... from one output column's window to the next (stride_w·C)
  kConvChannels,  // C: the depth of one tap
  kConvKw,        // KW
  kConvTapH,      // elements from tap (i, j) to tap (i + 1, j) (dilation_h·W·C)
  kConvTapW,      // ... to tap (i, j + 1) (dilation_w·C)
  kConvMicro,     // the kernel's micro-kernel for full one-row tiles (conv_micro_kernel)
  kNumFields
};

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

llvm::StructType* context_type(llvm::LLVMContext& context) {
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  std::vector<llvm::Type*> fields(kNumFields, llvm::Type::getInt64Ty(context));
  for (unsigned f : {kA, kB, kC, kCFull, kOut, kInputs, kEpilogue, kConvMicro})
    fields[f] = ptr;
  return llvm::StructType::get(context, fields);
}

// Reads and writes the context struct through its pointer.
class ContextAccess {
 public:
  ContextAccess(Builder& b, Value* pointer)
      : b_(b), type_(context_type(b.getContext())), pointer_(pointer) {}
  Value* get(Field f) {
    return b_.CreateLoad(type_->getElementType(f), b_.CreateStructGEP(type_, pointer_, f));
  }
  Value* flag(Field f) { return b_.CreateICmpNE(get(f), b_.getInt64(0)); }
  void set(Field f, Value* v) { b_.CreateStore(v, b_.CreateStructGEP(type_, pointer_, f)); }
  void set(Field f, int64_t v) { set(f, b_.getInt64(static_cast<uint64_t>(v))); }

 private:
  Builder& b_;
  llvm::StructType* type_;
  Value* pointer_;
};

llvm::Function* new_function(llvm::Module& module, const std::string& name,
                             std::vector<llvm::Type*> params) {
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(module.getContext()), params, false);
  return llvm::Function::Create(type, llvm::Function::InternalLinkage, name, module);
}

// void body(ptr ctx, i64 begin, i64 end), as kiln_rt_parallel_for calls it.
llvm::Function* loop_body(llvm::Module& module, const std::string& name) {
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  return new_function(module, name, {llvm::PointerType::get(context, 0), i64, i64});
}

Value* ceil_div(Builder& b, Value* x, int64_t d) {
  return b.CreateUDiv(b.CreateAdd(x, b.getInt64(d - 1)), b.getInt64(d));
}

// The packing buffers of one part, released when it is done.
struct Scratch {
  Value* a;
  Value* b;
};

// A block of mc_panels A panels, and B's packed panels for `cols` columns (at most nc), each
// `kc` deep.
Scratch allocate_scratch(Builder& b, const Config& cfg, Value* kc, Value* cols, bool pack_a) {
  llvm::Module& module = *b.GetInsertBlock()->getModule();
  llvm::Type* ptr = llvm::PointerType::get(b.getContext(), 0);
  auto alloc = module.getOrInsertFunction("kiln_rt_alloc", ptr, b.getInt64Ty());
  Value* depth_bytes = b.CreateMul(kc, b.getInt64(cfg.element_bytes()));
  // (A's block has a vector of slack at its end: emit_pack_patches_panel stores whole vectors.)
  Value* a = b.CreateCall(
      alloc, {pack_a ? b.CreateAdd(b.CreateMul(depth_bytes, b.getInt64(cfg.mc_panels * cfg.mr)),
                                   b.getInt64(cfg.lanes * cfg.element_bytes()))
                     : b.getInt64(0)});
  Value* b_cols = gemm::emit_min(b, b.getInt64(cfg.nc),
                                 b.CreateMul(ceil_div(b, cols, cfg.nr()), b.getInt64(cfg.nr())));
  Value* bp = b.CreateCall(alloc, {b.CreateMul(depth_bytes, b_cols)});
  return {a, bp};
}

void release_scratch(Builder& b, const Scratch& scratch) {
  llvm::Module& module = *b.GetInsertBlock()->getModule();
  auto release = module.getOrInsertFunction("kiln_rt_free", b.getVoidTy(),
                                            llvm::PointerType::get(b.getContext(), 0));
  b.CreateCall(release, {scratch.a});
  b.CreateCall(release, {scratch.b});
}

// if (condition) epilogue(ctx, i0, j0, rows, cols): a finished tile's fused epilogue, through
// the pointer in the context.
void call_epilogue_if(Builder& b, Value* condition, Value* epilogue,
                      std::initializer_list<Value*> args) {
  llvm::LLVMContext& context = b.getContext();
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  auto* type =
      llvm::FunctionType::get(llvm::Type::getVoidTy(context), {ptr, i64, i64, i64, i64}, false);
  llvm::BasicBlock* run = llvm::BasicBlock::Create(context, "epilogue", fn);
  llvm::BasicBlock* after = llvm::BasicBlock::Create(context, "after_epilogue", fn);
  b.CreateCondBr(condition, run, after);
  b.SetInsertPoint(run);
  b.CreateCall(type, epilogue, args);
  b.CreateBr(after);
  b.SetInsertPoint(after);
}

// x / d and x − (x / d)·d, unsigned.
struct QuotRem {
  Value* quot;
  Value* rem;
};
QuotRem udiv_rem(Builder& b, Value* x, Value* d) {
  Value* q = b.CreateUDiv(x, d);
  return {q, b.CreateSub(x, b.CreateMul(q, d))};
}

// Output pixel i = (n, oh, ow) of a convolution (a filter gradient's depth index): its window's
// start in the (padded) input, n·image + oh·row + ow·col; its oh and ow when asked for.
Value* conv_pixel_offset(Builder& b, ContextAccess& ctx, Value* i, Value** oh_out = nullptr,
                         Value** ow_out = nullptr) {
  const auto [n, pixel] = udiv_rem(b, i, ctx.get(kConvPixels));
  const auto [oh, ow] = udiv_rem(b, pixel, ctx.get(kConvOutW));
  if (oh_out != nullptr) *oh_out = oh;
  if (ow_out != nullptr) *ow_out = ow;
  return b.CreateAdd(
      b.CreateMul(n, ctx.get(kConvImage)),
      b.CreateAdd(b.CreateMul(oh, ctx.get(kConvRow)), b.CreateMul(ow, ctx.get(kConvCol))));
}

// Calls an implicit-GEMM convolution's micro-kernel for rows [i0, i0 + rows): row i is output
// pixel (n, oh, ow), whose window starts in the (padded) input at n·image + oh·row + ow·col.
// A full tile within one output row (every tile, when OW is a multiple of mr) goes to the
// kernel's own micro-kernel (kConvMicro), which takes the rows as the first one's start and a
// stride fixed at compile time; any other tile to `gather_micro`, with each row's start in
// `offsets` (mr i64), rows past m repeating row m − 1 (their results are not stored).
void emit_conv_micro_call(Builder& b, const Config& cfg, ContextAccess& ctx, Value* offsets,
                          Value* i0, Value* m, llvm::Function* gather_micro,
                          std::vector<Value*> args) {
  Value* out_w = ctx.get(kConvOutW);
  Value* ow0 = nullptr;
  Value* first = conv_pixel_offset(b, ctx, i0, nullptr, &ow0);
  llvm::LLVMContext& context = b.getContext();
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::BasicBlock* strided = llvm::BasicBlock::Create(context, "conv_strided", fn);
  llvm::BasicBlock* gather = llvm::BasicBlock::Create(context, "conv_gather", fn);
  llvm::BasicBlock* after = llvm::BasicBlock::Create(context, "conv_done", fn);
  b.CreateCondBr(b.CreateICmpSLE(b.CreateAdd(ow0, b.getInt64(cfg.mr)), out_w), strided, gather);
  args.insert(args.begin() + 8, offsets);  // the micro-kernel's ninth argument
  b.SetInsertPoint(strided);
  b.CreateStore(first, offsets);
  // The kernel's own micro-kernel, its row step and channels compiled in (the part body is
  // shared by every convolution of a configuration; the micro-kernel is not).
  b.CreateCall(gather_micro->getFunctionType(), ctx.get(kConvMicro), args);
  b.CreateBr(after);
  b.SetInsertPoint(gather);
  Value* last = b.CreateSub(m, b.getInt64(1));
  for (int64_t r = 0; r < cfg.mr; ++r) {
    Value* i = gemm::emit_min(b, b.CreateAdd(i0, b.getInt64(r)), last);
    b.CreateStore(conv_pixel_offset(b, ctx, i),
                  b.CreateConstInBoundsGEP1_64(b.getInt64Ty(), offsets, r));
  }
  b.CreateCall(gather_micro, args);
  b.CreateBr(after);
  b.SetInsertPoint(after);
}

// Fills `offsets` (kc i64) with where depth k = pc + d of a filter gradient's A starts in the
// padded input: depth (n, oh, ow) at n·image + oh·row + ow·col, counted up from pc's.
void emit_patches_depth_offsets(Builder& b, ContextAccess& ctx, Value* offsets, Value* pc,
                                Value* kc) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::Type* i64 = b.getInt64Ty();
  Value* pixels = ctx.get(kConvPixels);
  Value* out_w = ctx.get(kConvOutW);
  Value* image = ctx.get(kConvImage);
  Value* row = ctx.get(kConvRow);
  Value* col = ctx.get(kConvCol);
  Value *oh0 = nullptr, *ow0 = nullptr;
  Value* start = conv_pixel_offset(b, ctx, pc, &oh0, &ow0);
  Value* out_h = b.CreateUDiv(pixels, out_w);
  // From (oh, OW − 1) to (oh + 1, 0), and from (OH − 1, OW − 1) to the next image's (0, 0).
  Value* last_col = b.CreateMul(b.CreateSub(out_w, b.getInt64(1)), col);
  Value* next_row = b.CreateSub(row, last_col);
  Value* next_image = b.CreateSub(
      b.CreateSub(image, b.CreateMul(b.CreateSub(out_h, b.getInt64(1)), row)), last_col);
  // The position, carried through the loop (promoted to registers).
  llvm::IRBuilder<> entry(&fn->getEntryBlock(), fn->getEntryBlock().begin());
  llvm::AllocaInst* offset = entry.CreateAlloca(i64, nullptr, "depth_offset");
  llvm::AllocaInst* oh = entry.CreateAlloca(i64, nullptr, "oh");
  llvm::AllocaInst* ow = entry.CreateAlloca(i64, nullptr, "ow");
  b.CreateStore(start, offset);
  b.CreateStore(oh0, oh);
  b.CreateStore(ow0, ow);
  gemm::emit_range(
      b, b.getInt64(0), kc, 1,
      [&](Value* k) {
        Value* at = b.CreateLoad(i64, offset);
        b.CreateStore(at, b.CreateInBoundsGEP(i64, offsets, k));
        Value* x = b.CreateAdd(b.CreateLoad(i64, ow), b.getInt64(1));
        Value* wrap_row = b.CreateICmpEQ(x, out_w);
        Value* y = b.CreateAdd(b.CreateLoad(i64, oh), b.CreateZExt(wrap_row, i64));
        Value* wrap_image = b.CreateAnd(wrap_row, b.CreateICmpEQ(y, out_h));
        Value* step =
            b.CreateSelect(wrap_image, next_image, b.CreateSelect(wrap_row, next_row, col));
        b.CreateStore(b.CreateAdd(at, step), offset);
        b.CreateStore(b.CreateSelect(wrap_row, b.getInt64(0), x), ow);
        b.CreateStore(b.CreateSelect(wrap_image, b.getInt64(0), y), oh);
      },
      false);
}

// Where row r = (kh, kw, c) of a filter gradient's A lies from a depth's offset:
// kh·tap_h + kw·tap_w + c.
Value* patches_column_offset(Builder& b, ContextAccess& ctx, Value* r) {
  const auto [tap, c] = udiv_rem(b, r, ctx.get(kConvChannels));
  const auto [i, j] = udiv_rem(b, tap, ctx.get(kConvKw));
  return b.CreateAdd(
      b.CreateAdd(b.CreateMul(i, ctx.get(kConvTapH)), b.CreateMul(j, ctx.get(kConvTapW))), c);
}

// Whether the full panel of rows [i0, i0 + mr) of a filter gradient's A lies within one window
// tap: then each depth's mr elements are consecutive channels of the input, which the table
// micro-kernel reads where they lie instead of packing them.
Value* patches_panel_in_one_tap(Builder& b, const Config& cfg, ContextAccess& ctx, Value* i0,
                                Value* m) {
  Value* end = b.CreateAdd(b.CreateURem(i0, ctx.get(kConvChannels)), b.getInt64(cfg.mr));
  return b.CreateAnd(b.CreateICmpULE(end, ctx.get(kConvChannels)),
                     b.CreateICmpULE(b.CreateAdd(i0, b.getInt64(cfg.mr)), m));
}

// Packs rows [i0, i0 + mr) × the depth block whose offsets emit_patches_depth_offsets wrote
// (kc of them) of a filter gradient's A into `dst` as dst[k][r] (rows past m zero). A is the
// transposed implicit patch matrix: row m = (kh, kw, c), A[m, k] = the input at
// depth_offsets[k] + kh·tap_h + kw·tap_w + c. A panel within one tap (mr consecutive
// channels) is one contiguous vector load per depth; one across two taps (when a tap has at
// least mr channels) two masked loads merged; any other a gather.
void emit_pack_patches_panel(Builder& b, const Config& cfg, ContextAccess& ctx, Value* a,
                             Value* dst, Value* i0, Value* depth_offsets, Value* kc, Value* m) {
  llvm::LLVMContext& context = b.getContext();
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::Type* i64 = b.getInt64Ty();
  llvm::Type* t = scalar_type(context, cfg.dtype);
  auto* v = llvm::FixedVectorType::get(t, static_cast<unsigned>(cfg.lanes));
  const llvm::Align align(static_cast<uint64_t>(cfg.element_bytes()));
  Value* channels = ctx.get(kConvChannels);
  Value* rows = gemm::emit_min(b, b.getInt64(cfg.mr), b.CreateSub(m, i0));
  auto column_offset = [&](Value* r) { return patches_column_offset(b, ctx, r); };
  auto depth_offset = [&](Value* k) {
    return b.CreateLoad(i64, b.CreateInBoundsGEP(i64, depth_offsets, k));
  };
  Value* c0 = b.CreateURem(i0, channels);
  Value* first = column_offset(i0);
  llvm::BasicBlock* contiguous = llvm::BasicBlock::Create(context, "patches_contiguous", fn);
  llvm::BasicBlock* scattered = llvm::BasicBlock::Create(context, "patches_gather", fn);
  llvm::BasicBlock* done = llvm::BasicBlock::Create(context, "patches_done", fn);
  llvm::BasicBlock* two_taps = llvm::BasicBlock::Create(context, "patches_two_taps", fn);
  llvm::BasicBlock* not_one = llvm::BasicBlock::Create(context, "patches_not_one_tap", fn);
  b.CreateCondBr(b.CreateICmpULE(b.CreateAdd(c0, rows), channels), contiguous, not_one);
  b.SetInsertPoint(not_one);
  b.CreateCondBr(b.CreateICmpUGE(channels, b.getInt64(cfg.mr)), two_taps, scattered);

  b.SetInsertPoint(two_taps);
  {
    // Lanes [0, split) are the first tap's last channels, lanes [split, rows) the next tap's
    // first ones: each a masked load (lanes off are not read), merged.
    Value* split = b.CreateSub(channels, c0);
    Value* second = b.CreateSub(column_offset(b.CreateAdd(i0, split)), split);
    std::vector<Value*> first_masks, second_masks;
    for (int64_t g = 0; g < cfg.mr; g += cfg.lanes) {
      Value* below_split = gemm::lanes_below(b, cfg, g, split);
      first_masks.push_back(below_split);
      second_masks.push_back(
          b.CreateAnd(gemm::lanes_below(b, cfg, g, rows), b.CreateNot(below_split)));
    }
    gemm::emit_range(
        b, b.getInt64(0), kc, 1,
        [&](Value* k) {
          Value* at = depth_offset(k);
          Value* out = b.CreateMul(k, b.getInt64(cfg.mr));
          for (size_t q = 0; q < first_masks.size(); ++q) {
            const int64_t g = static_cast<int64_t>(q) * cfg.lanes;
            Value* zero = llvm::ConstantAggregateZero::get(v);
            Value* x1 = b.CreateMaskedLoad(
                v, b.CreateGEP(t, a, b.CreateAdd(b.CreateAdd(at, first), b.getInt64(g))), align,
                first_masks[q], zero);
            Value* x2 = b.CreateMaskedLoad(
                v, b.CreateGEP(t, a, b.CreateAdd(b.CreateAdd(at, second), b.getInt64(g))), align,
                second_masks[q], zero);
            Value* x = b.CreateSelect(first_masks[q], x1, x2);
            b.CreateAlignedStore(x, b.CreateGEP(t, dst, b.CreateAdd(out, b.getInt64(g))), align);
          }
        },
        false);
  }
  b.CreateBr(done);

  b.SetInsertPoint(contiguous);
  // Masked loads (the input may end right after the panel's last channel); whole-vector stores,
  // whose lanes past mr the next depth's store overwrites (the last one's land in the scratch's
  // slack): a masked store costs several times a plain one.
  std::vector<Value*> load_masks;
  for (int64_t g = 0; g < cfg.mr; g += cfg.lanes)
    load_masks.push_back(gemm::lanes_below(b, cfg, g, rows));
  Value* panel_a = b.CreateGEP(t, a, first);
  gemm::emit_range(
      b, b.getInt64(0), kc, 1,
      [&](Value* k) {
        Value* src = b.CreateGEP(t, panel_a, depth_offset(k));
        Value* out = b.CreateMul(k, b.getInt64(cfg.mr));
        for (size_t q = 0; q < load_masks.size(); ++q) {
          const int64_t g = static_cast<int64_t>(q) * cfg.lanes;
          Value* x = b.CreateMaskedLoad(v, b.CreateConstGEP1_64(t, src, static_cast<uint64_t>(g)),
                                        align, load_masks[q], llvm::ConstantAggregateZero::get(v));
          b.CreateAlignedStore(x, b.CreateGEP(t, dst, b.CreateAdd(out, b.getInt64(g))), align);
        }
      },
      false);
  b.CreateBr(done);

  b.SetInsertPoint(scattered);
  // Each row's column offset, rows past m repeating the last row (stored as zeros).
  // Per group of `lanes` rows a vector of their column offsets, fixed for the panel; per depth
  // one masked gather of the group (rows past m gather nothing and store zeros) and a
  // whole-vector store (as in the contiguous case).
  Value* last = b.CreateSub(rows, b.getInt64(1));
  auto* offsets_type = llvm::FixedVectorType::get(i64, static_cast<unsigned>(cfg.lanes));
  std::vector<Value*> column_vectors, gather_masks;
  for (int64_t g = 0; g < cfg.mr; g += cfg.lanes) {
    Value* columns = llvm::PoisonValue::get(offsets_type);
    for (int64_t l = 0; l < cfg.lanes; ++l) {
      Value* r = gemm::emit_min(b, b.getInt64(g + l), last);
      columns = b.CreateInsertElement(columns, column_offset(b.CreateAdd(i0, r)),
                                      static_cast<uint64_t>(l));
    }
    column_vectors.push_back(columns);
    gather_masks.push_back(gemm::lanes_below(b, cfg, g, rows));
  }
  gemm::emit_range(
      b, b.getInt64(0), kc, 1,
      [&](Value* k) {
        Value* at = b.CreateVectorSplat(static_cast<unsigned>(cfg.lanes), depth_offset(k));
        Value* out = b.CreateMul(k, b.getInt64(cfg.mr));
        for (size_t q = 0; q < column_vectors.size(); ++q) {
          const int64_t g = static_cast<int64_t>(q) * cfg.lanes;
          Value* pointers = b.CreateGEP(t, a, b.CreateAdd(at, column_vectors[q]));
          Value* x = b.CreateMaskedGather(v, pointers, align, gather_masks[q],
                                          llvm::ConstantAggregateZero::get(v));
          b.CreateAlignedStore(x, b.CreateGEP(t, dst, b.CreateAdd(out, b.getInt64(g))), align);
        }
      },
      false);
  b.CreateBr(done);
  b.SetInsertPoint(done);
}

// How a part reads A.
enum class AForm {
  matrix,   // A as given (packed, or unpacked when `unpacked_a`)
  conv,     // a conv2d's implicit patch matrix, read by conv_micro_kernel (unpacked)
  patches,  // a conv2d_filter_grad's transposed patch matrix, packed by emit_pack_patches_panel
};

// The names part_body and small_m_body give their functions (gemm_helpers lists them).
std::string part_body_name(const Config& cfg, bool transpose_a, bool transpose_b, bool unpacked_a,
                           AForm form) {
  return fmt::format("gemm_part_{}{}{}{}{}", cfg.tag(), transpose_a ? "_ta" : "",
                     transpose_b ? "_tb" : "", unpacked_a ? "_ua" : "",
                     form == AForm::conv      ? "_conv"
                     : form == AForm::patches ? "_patches"
                                              : "");
}

// body(ctx, begin, end): C[rows, cols] for the parts [begin, end): row panels (all columns) or
// column panels (all rows). With `unpacked_a` (A not transposed, few columns) the micro-kernel
// reads A where it lies instead of from packed panels. With AForm::conv A is the implicit patch
// matrix of a convolution (the context's conv fields; unpacked_a too): its rows are read
// straight from the padded input, each depth block a run of whole window taps. With
// AForm::patches A's panels are packed from the padded input of a filter gradient.
llvm::Function* part_body(llvm::Module& module, const Config& cfg, bool transpose_a,
                          bool transpose_b, bool unpacked_a, AForm form = AForm::matrix) {
  const bool conv = form == AForm::conv;
  const std::string name = part_body_name(cfg, transpose_a, transpose_b, unpacked_a, form);
  if (llvm::Function* existing = module.getFunction(name)) return existing;
  llvm::Function* micro =
      conv ? gemm::conv_micro_kernel(module, cfg, {}) : gemm::micro_kernel(module, cfg, unpacked_a);
  llvm::Function* table_micro =
      form == AForm::patches ? gemm::micro_kernel(module, cfg, gemm::AReads::table) : nullptr;
  llvm::Function* fn = loop_body(module, name);
  llvm::LLVMContext& context = module.getContext();
  Builder b(llvm::BasicBlock::Create(context, "entry", fn));
  Value* ctx_ptr = fn->getArg(0);
  ContextAccess ctx(b, ctx_ptr);
  llvm::Type* t = scalar_type(context, cfg.dtype);
  Value* a = ctx.get(kA);
  Value* bm = ctx.get(kB);
  Value* c = ctx.get(kC);
  Value* m = ctx.get(kM);
  Value* n = ctx.get(kN);
  Value* k = ctx.get(kK);
  Value* kcb = ctx.get(kKc);
  Value* k_blocks = ctx.get(kKBlocks);
  Value* epilogue = ctx.get(kEpilogue);
  Value* has_epilogue = b.CreateIsNotNull(epilogue);
  Value* split_n = ctx.flag(kSplitN);
  Value* begin = fn->getArg(1);
  Value* end = fn->getArg(2);
  Value* zero = b.getInt64(0);
  Value* row_lo = b.CreateSelect(split_n, zero, b.CreateMul(begin, b.getInt64(cfg.mr)));
  Value* row_hi =
      b.CreateSelect(split_n, m, gemm::emit_min(b, b.CreateMul(end, b.getInt64(cfg.mr)), m));
  Value* col_lo = b.CreateSelect(split_n, b.CreateMul(begin, b.getInt64(cfg.nr())), zero);
  Value* col_hi =
      b.CreateSelect(split_n, gemm::emit_min(b, b.CreateMul(end, b.getInt64(cfg.nr())), n), n);
  const Scratch scratch =
      allocate_scratch(b, cfg, kcb, b.CreateSub(col_hi, col_lo), /*pack_a=*/!unpacked_a);
  const int64_t mc = cfg.mc_panels * cfg.mr;
  Value* row_offsets = nullptr;
  Value *channels = nullptr, *kw = nullptr, *tap_h = nullptr, *tap_w = nullptr;
  if (conv) {
    row_offsets = b.CreateAlloca(b.getInt64Ty(), b.getInt64(cfg.mr), "row_offsets");
    channels = ctx.get(kConvChannels);
    kw = ctx.get(kConvKw);
    tap_h = ctx.get(kConvTapH);
    tap_w = ctx.get(kConvTapW);
  }
  // A filter gradient's depth offsets of the current depth block (emit_patches_depth_offsets).
  Value* depth_offsets = nullptr;
  if (form == AForm::patches) {
    auto alloc = module.getOrInsertFunction("kiln_rt_alloc", llvm::PointerType::get(context, 0),
                                            b.getInt64Ty());
    depth_offsets = b.CreateCall(alloc, {b.CreateMul(kcb, b.getInt64(8))});
  }

  gemm::emit_range(b, col_lo, col_hi, cfg.nc, [&](Value* jc) {
    Value* b_panels =
        ceil_div(b, gemm::emit_min(b, b.getInt64(cfg.nc), b.CreateSub(col_hi, jc)), cfg.nr());
    gemm::emit_range(b, zero, k_blocks, 1, [&](Value* kb) {
      Value* pc = b.CreateMul(kb, kcb);
      Value* kc = gemm::emit_min(b, kcb, b.CreateSub(k, pc));
      Value* accumulate = b.CreateICmpSGT(kb, zero);
      Value* last = b.CreateICmpEQ(kb, b.CreateSub(k_blocks, b.getInt64(1)));
      Value* run_epilogue = b.CreateAnd(last, has_epilogue);
      auto b_panel = [&](Value* q) {
        return b.CreateInBoundsGEP(t, scratch.b,
                                   b.CreateMul(b.CreateMul(q, kc), b.getInt64(cfg.nr())));
      };
      auto a_panel = [&](Value* p) {
        return b.CreateInBoundsGEP(t, scratch.a,
                                   b.CreateMul(b.CreateMul(p, kc), b.getInt64(cfg.mr)));
      };
      const gemm::Problem problem{m, n, k, transpose_a, transpose_b};
      if (form == AForm::patches) emit_patches_depth_offsets(b, ctx, depth_offsets, pc, kc);
      gemm::emit_range(b, zero, b_panels, 1, [&](Value* q) {
        Value* j0 = b.CreateAdd(jc, b.CreateMul(q, b.getInt64(cfg.nr())));
        gemm::emit_pack_b_panel(b, cfg, problem, bm, b_panel(q), j0, pc, kc);
      });
      gemm::emit_range(b, row_lo, row_hi, mc, [&](Value* ic) {
        Value* a_panels =
            ceil_div(b, gemm::emit_min(b, b.getInt64(mc), b.CreateSub(row_hi, ic)), cfg.mr);
        if (!unpacked_a) {
          gemm::emit_range(b, zero, a_panels, 1, [&](Value* p) {
            Value* i0 = b.CreateAdd(ic, b.CreateMul(p, b.getInt64(cfg.mr)));
            if (form == AForm::patches) {
              // (Panels within one tap are read where they lie: see the micro-kernel calls.)
              llvm::BasicBlock* pack = llvm::BasicBlock::Create(context, "pack_patches", fn);
              llvm::BasicBlock* packed = llvm::BasicBlock::Create(context, "packed", fn);
              b.CreateCondBr(patches_panel_in_one_tap(b, cfg, ctx, i0, m), packed, pack);
              b.SetInsertPoint(pack);
              emit_pack_patches_panel(b, cfg, ctx, a, a_panel(p), i0, depth_offsets, kc, m);
              b.CreateBr(packed);
              b.SetInsertPoint(packed);
            } else {
              gemm::emit_pack_a_panel(b, cfg, problem, a, a_panel(p), i0, pc, kc);
            }
          });
        }
        gemm::emit_range(b, zero, b_panels, 1, [&](Value* q) {
          Value* j0 = b.CreateAdd(jc, b.CreateMul(q, b.getInt64(cfg.nr())));
          Value* cols = gemm::emit_min(b, b.getInt64(cfg.nr()), b.CreateSub(n, j0));
          gemm::emit_range(b, zero, a_panels, 1, [&](Value* p) {
            Value* i0 = b.CreateAdd(ic, b.CreateMul(p, b.getInt64(cfg.mr)));
            Value* rows = gemm::emit_min(b, b.getInt64(cfg.mr), b.CreateSub(m, i0));
            Value* cp = b.CreateGEP(t, c, b.CreateAdd(b.CreateMul(i0, n), j0));
            if (conv) {
              emit_conv_micro_call(
                  b, cfg, ctx, row_offsets, i0, m, micro,
                  {a, b_panel(q), b.CreateUDiv(kc, channels), cp, n, rows, cols, accumulate,
                   channels, b.CreateUDiv(pc, channels), kw, tap_h, tap_w});
            } else if (unpacked_a) {
              Value* at = b.CreateGEP(t, a, b.CreateAdd(b.CreateMul(i0, k), pc));
              b.CreateCall(micro, {at, b_panel(q), kc, cp, n, rows, cols, accumulate, k});
            } else if (form == AForm::patches) {
              llvm::BasicBlock* direct = llvm::BasicBlock::Create(context, "patches_direct", fn);
              llvm::BasicBlock* from_panel =
                  llvm::BasicBlock::Create(context, "patches_packed", fn);
              llvm::BasicBlock* called = llvm::BasicBlock::Create(context, "patches_called", fn);
              b.CreateCondBr(patches_panel_in_one_tap(b, cfg, ctx, i0, m), direct, from_panel);
              b.SetInsertPoint(direct);
              Value* at = b.CreateGEP(t, a, patches_column_offset(b, ctx, i0));
              b.CreateCall(table_micro,
                           {at, b_panel(q), kc, cp, n, rows, cols, accumulate, depth_offsets});
              b.CreateBr(called);
              b.SetInsertPoint(from_panel);
              b.CreateCall(micro, {a_panel(p), b_panel(q), kc, cp, n, rows, cols, accumulate});
              b.CreateBr(called);
              b.SetInsertPoint(called);
            } else {
              b.CreateCall(micro, {a_panel(p), b_panel(q), kc, cp, n, rows, cols, accumulate});
            }
            call_epilogue_if(b, run_epilogue, epilogue, {ctx_ptr, i0, j0, rows, cols});
          });
        });
      });
    });
  });
  release_scratch(b, scratch);
  if (depth_offsets != nullptr) {
    auto release = module.getOrInsertFunction("kiln_rt_free", b.getVoidTy(),
                                              llvm::PointerType::get(context, 0));
    b.CreateCall(release, {depth_offsets});
  }
  b.CreateRetVoid();
  return fn;
}

// Rows of C up to which a matmul may stream B instead of packing it (small_m_body). Each part
// reads a block of B's rows at a stride of N elements (a new page per row when B is wide).
// With up to 3 rows the block is 8 vectors wide and streaming wins; with 4 to 8 rows it is
// narrower, and streaming wins only while the block stays in L2 (measured, 784 × 512 and
// 3136 × 1024 B at 1 to 12 rows: docs/performance.md).
constexpr int64_t kSmallM = 8;
constexpr int64_t kSmallMWide = 3;
constexpr int64_t kSmallMBlockBytes = 512 * 1024;

// Vectors of columns one small-M part computes: rows × vectors accumulators fill the vector
// registers but 8 (for B's vectors and the broadcast A elements), at most 8 vectors.
int64_t small_m_vectors(const Config& cfg, int64_t rows) {
  return std::clamp<int64_t>((cfg.registers - 8) / std::max<int64_t>(rows, 1), 1, 8);
}

std::string small_m_body_name(const Config& cfg, bool transpose_a, int64_t rows) {
  return fmt::format("gemm_small_{}_{}x{}x{}{}", ir::dtype_name(cfg.dtype), rows,
                     small_m_vectors(cfg, rows), cfg.lanes, transpose_a ? "_ta" : "");
}

// body(ctx, begin, end) for a C of `rows` rows (a batch of one at inference): parts are blocks
// of small_m_vectors · lanes columns; acc[r][v] += a[r][k] · B[k][j0 + v·lanes] over k, for all
// rows at once, so B is read once, as it lies (packing would read it and write it again for
// the few rows that use it). Then the block's epilogue.
llvm::Function* small_m_body(llvm::Module& module, const Config& cfg, bool transpose_a,
                             int64_t rows) {
  const int64_t vectors = small_m_vectors(cfg, rows);
  const std::string name = small_m_body_name(cfg, transpose_a, rows);
  if (llvm::Function* existing = module.getFunction(name)) return existing;
  llvm::Function* fn = loop_body(module, name);
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  llvm::Type* t = scalar_type(context, cfg.dtype);
  auto* v = llvm::FixedVectorType::get(t, static_cast<unsigned>(cfg.lanes));
  const llvm::Align align(static_cast<uint64_t>(cfg.element_bytes()));
  const int64_t width = cfg.lanes * vectors;
  const auto count = static_cast<size_t>(rows * vectors);  // accumulators, [r * vectors + q]

  Builder b(llvm::BasicBlock::Create(context, "entry", fn));
  Value* ctx_ptr = fn->getArg(0);
  ContextAccess ctx(b, ctx_ptr);
  Value* a = ctx.get(kA);
  Value* bm = ctx.get(kB);
  Value* c = ctx.get(kC);
  Value* n = ctx.get(kN);
  Value* k = ctx.get(kK);
  Value* epilogue = ctx.get(kEpilogue);
  Value* zero = b.getInt64(0);
  Value* zero_vector = llvm::ConstantAggregateZero::get(v);
  gemm::emit_range(b, fn->getArg(1), fn->getArg(2), 1, [&](Value* part) {
    Value* j0 = b.CreateMul(part, b.getInt64(width));
    Value* cols = gemm::emit_min(b, b.getInt64(width), b.CreateSub(n, j0));
    std::vector<Value*> masks;
    for (int64_t q = 0; q < vectors; ++q)
      masks.push_back(gemm::lanes_below(b, cfg, q * cfg.lanes, cols));

    // The k loop, its accumulators in registers (phi nodes).
    llvm::BasicBlock* pre = b.GetInsertBlock();
    llvm::BasicBlock* loop = llvm::BasicBlock::Create(context, "small_k", fn);
    llvm::BasicBlock* done = llvm::BasicBlock::Create(context, "small_k_done", fn);
    b.CreateCondBr(b.CreateICmpSGT(k, zero), loop, done);
    b.SetInsertPoint(loop);
    llvm::PHINode* kk = b.CreatePHI(i64, 2, "k");
    kk->addIncoming(zero, pre);
    std::vector<llvm::PHINode*> acc;
    for (size_t i = 0; i < count; ++i) {
      acc.push_back(b.CreatePHI(v, 2, "acc"));
      acc.back()->addIncoming(zero_vector, pre);
    }
    Value* row = b.CreateInBoundsGEP(t, bm, b.CreateAdd(b.CreateMul(kk, n), j0));
    std::vector<Value*> bv;
    for (int64_t q = 0; q < vectors; ++q) {
      Value* at = b.CreateGEP(t, row, b.getInt64(q * cfg.lanes));  // may pass n: masked
      bv.push_back(b.CreateMaskedLoad(v, at, align, masks[static_cast<size_t>(q)], zero_vector));
    }
    std::vector<Value*> next(count);
    for (int64_t r = 0; r < rows; ++r) {
      // A is [rows, k] (or [k, rows] transposed).
      Value* a_at = transpose_a ? b.CreateAdd(b.CreateMul(kk, b.getInt64(rows)), b.getInt64(r))
                                : b.CreateAdd(b.CreateMul(b.getInt64(r), k), kk);
      Value* a_rk = b.CreateVectorSplat(static_cast<unsigned>(cfg.lanes),
                                        b.CreateLoad(t, b.CreateInBoundsGEP(t, a, a_at)));
      for (int64_t q = 0; q < vectors; ++q) {
        const auto i = static_cast<size_t>(r * vectors + q);
        Value* args[] = {a_rk, bv[static_cast<size_t>(q)], acc[i]};
        next[i] = b.CreateIntrinsic(llvm::Intrinsic::fma, {v}, args);
      }
    }
    Value* k_next = b.CreateAdd(kk, b.getInt64(1));
    llvm::BasicBlock* latch = b.GetInsertBlock();
    kk->addIncoming(k_next, latch);
    for (size_t i = 0; i < count; ++i)
      acc[i]->addIncoming(next[i], latch);
    b.CreateCondBr(b.CreateICmpSLT(k_next, k), loop, done);

    b.SetInsertPoint(done);
    std::vector<Value*> results;  // phis first: they must open the block
    for (size_t i = 0; i < count; ++i) {
      llvm::PHINode* result = b.CreatePHI(v, 2, "c");
      result->addIncoming(zero_vector, pre);
      result->addIncoming(next[i], latch);
      results.push_back(result);
    }
    for (int64_t r = 0; r < rows; ++r) {
      Value* c_row = b.CreateInBoundsGEP(t, c, b.CreateAdd(b.CreateMul(b.getInt64(r), n), j0));
      for (int64_t q = 0; q < vectors; ++q) {
        b.CreateMaskedStore(results[static_cast<size_t>(r * vectors + q)],
                            b.CreateGEP(t, c_row, b.getInt64(q * cfg.lanes)), align,
                            masks[static_cast<size_t>(q)]);
      }
    }
    call_epilogue_if(b, b.CreateIsNotNull(epilogue), epilogue,
                     {ctx_ptr, zero, j0, b.getInt64(rows), cols});
  });
  b.CreateRetVoid();
  return fn;
}

// Whether a GEMM's parts are column panels rather than row panels: when there are too few row
// panels to go around the threads, or when B is the larger operand (N > M: each part packs all
// of the other operand, so the parts split the larger one; a dense layer's batch of 128 against
// a 3136 × 1024 weight matrix packed the whole matrix on every thread).
bool split_columns(const ir::MatmulDims& dims, int64_t row_panels, int64_t col_panels) {
  if (row_panels < 8 && col_panels > row_panels) return true;
  return dims.n > 2 * dims.m && col_panels >= 8;
}

// Column panels up to which the micro-kernel reads A unpacked.
constexpr int64_t kUnpackedPanels = 2;

// Bytes of packed B a depth block may take when B has few columns (half of L2), and of the
// packed A block that goes with it (in L3).
constexpr int64_t kDeepBlockBytes = 512 * 1024;
constexpr int64_t kDeepBlockABytes = 4 * 1024 * 1024;

}  // namespace

GemmSchedule schedule_gemm(ir::DType dtype, const ir::MatmulDims& dims, const VectorUnit& unit) {
  GemmSchedule s;
  const Config& config = s.config = gemm::choose_config(dtype, dims.n, unit);
  // Depth blocks of config.kc keep a B micro-panel in L1. When B has few columns its packed
  // panels for a much deeper block still fit L2, from where the micro-kernel's two B loads per
  // step are easily fed: then the blocks grow (to the whole depth, often), so that A is read in
  // long runs and C is written once instead of once per block.
  const int64_t b_depth_bytes =
      ceil_div(dims.n, config.nr()) * config.nr() * config.element_bytes();
  // A packed A block (mc_panels · mr rows) must stay within kDeepBlockABytes too.
  const int64_t a_depth_bytes = config.mc_panels * config.mr * config.element_bytes();
  const int64_t max_kc =
      std::max(config.kc, std::min(kDeepBlockBytes / std::max<int64_t>(b_depth_bytes, 1),
                                   kDeepBlockABytes / a_depth_bytes));
  s.k_blocks = std::max<int64_t>(1, ceil_div(dims.k, max_kc));
  s.kc = ceil_div(dims.k, s.k_blocks);
  s.row_panels = ceil_div(dims.m, config.mr);
  s.col_panels = ceil_div(dims.n, config.nr());
  s.unpacked_a = !dims.transpose_a && s.col_panels <= kUnpackedPanels;
  s.split_n = split_columns(dims, s.row_panels, s.col_panels);
  return s;
}

namespace {

// An implicit-GEMM convolution: a conv2d whose windows never read padding (conv_to_gemm pads
// the input explicitly) is C [N·OH·OW, O] = A [N·OH·OW, KH·KW·C] · filter [KH·KW·C, O], where A's
// row (n, oh, ow) at tap (i, j) is the C channels at input [n, oh·sh + i·dh, ow·sw + j·dw]: no
// patch matrix, the micro-kernel reads the input (conv_micro_kernel). Offsets in elements.
// A conv2d_filter_grad's result [KH, KW, C, O] is C = Pᵀ · dy [N·OH·OW, O], P that patch
// matrix: its A panels are packed from the input (emit_pack_patches_panel).
struct ConvGeometry {
  bool filter_grad = false;
  int64_t pixels = 0, out_w = 0, image = 0, row = 0, col = 0, channels = 0, kw = 0, tap_h = 0,
          tap_w = 0, taps = 0;
};

std::optional<ConvGeometry> conv_geometry(const ir::Node& node) {
  if (node.op() != ir::Op::conv2d && node.op() != ir::Op::conv2d_filter_grad) return std::nullopt;
  const bool filter_grad = node.op() == ir::Op::conv2d_filter_grad;
  const ir::Shape& in = node.input(0)->type().shape;
  const ir::Shape& f = filter_grad ? node.output()->type().shape : node.input(1)->type().shape;
  const ir::Window2D w = ir::conv2d_window(in, f, node.attrs());
  for (const ir::WindowDim* d : {&w.h, &w.w}) {
    if (d->pad_before != 0 || (d->out - 1) * d->stride + (d->kernel - 1) * d->dilation >= d->in)
      return std::nullopt;  // a tap reads padding
  }
  ConvGeometry g;
  g.filter_grad = filter_grad;
  const int64_t width = in[2], channels = in[3];
  g.pixels = w.h.out * w.w.out;
  g.out_w = w.w.out;
  g.image = in[1] * width * channels;
  g.row = w.h.stride * width * channels;
  g.col = w.w.stride * channels;
  g.channels = channels;
  g.kw = f[1];
  g.tap_h = w.h.dilation * width * channels;
  g.tap_w = w.w.dilation * channels;
  g.taps = f[0] * f[1];
  return g;
}

// What the per-kernel code needs to know about one matmul kernel, fixed at compile time.
struct Gemm {
  const passes::Kernel& kernel;
  const ir::Node& matmul;
  const ir::Value* out;
  Config config;
  ir::MatmulDims dims;
  int64_t batch_count = 1;
  int64_t k_blocks = 1;  // depth blocks (at least one, so that K = 0 still writes C)
  int64_t kc = 0;        // depth of every block but maybe the last
  int64_t row_panels = 0;
  bool separate_c = false;  // C needs its own buffer (the epilogue changes the element type)
  std::optional<ConvGeometry> conv;  // an implicit-GEMM convolution

  Gemm(const passes::Kernel& k, const ir::Node& node, const VectorUnit& unit)
      : kernel(k), matmul(node), out(k.outputs.front()), conv(conv_geometry(node)) {
    const ir::Value* a = node.input(0);
    if (conv && conv->filter_grad) {
      const ir::Shape& dy = node.input(1)->type().shape;
      dims.m = conv->taps * conv->channels;
      dims.n = dy[3];
      dims.k = dy[0] * dy[1] * dy[2];
      dims.transpose_a = true;  // packed (emit_pack_patches_panel)
    } else if (conv) {
      const ir::Shape& y = node.output()->type().shape;
      dims.m = y[0] * y[1] * y[2];
      dims.n = y[3];
      dims.k = conv->taps * conv->channels;
    } else {
      dims = ir::matmul_dims(a->type().shape, node.input(1)->type().shape, node.attrs());
    }
    const GemmSchedule schedule = schedule_gemm(a->type().dtype, dims, unit);
    config = schedule.config;
    batch_count = dims.batch.num_elements();
    k_blocks = schedule.k_blocks;
    kc = schedule.kc;
    row_panels = schedule.row_panels;
    separate_c = out->type().dtype != a->type().dtype;
    if (conv && !conv->filter_grad) {
      // Depth blocks of whole taps, about as deep as the schedule's.
      const int64_t taps_per_block = std::max<int64_t>(1, kc / conv->channels);
      k_blocks = ceil_div(conv->taps, taps_per_block);
      kc = std::min(conv->taps, taps_per_block) * conv->channels;
    }
  }

  bool has_epilogue() const { return kernel.nodes.size() > 1; }
  // Few rows and B as it lies in memory ([K, N]): stream B (small_m_body).
  bool small_m() const {
    if (conv || dims.m > kSmallM || dims.transpose_b) return false;
    const int64_t block =
        dims.k * config.lanes * small_m_vectors(config, dims.m) * config.element_bytes();
    return dims.m <= kSmallMWide || block <= kSmallMBlockBytes;
  }
  int64_t small_m_parts() const {
    return ceil_div(dims.n, config.lanes * small_m_vectors(config, dims.m));
  }
  int64_t c_elements() const { return batch_count * dims.m * dims.n; }
  int64_t col_panels() const { return ceil_div(dims.n, config.nr()); }
  // A (not transposed) is used by at most kUnpackedPanels micro-kernel calls per element:
  // packing it would cost about as much as using it.
  bool unpacked_a() const {
    if (conv) return !conv->filter_grad;
    return !dims.transpose_a && col_panels() <= kUnpackedPanels;
  }
  AForm a_form() const {
    if (!conv) return AForm::matrix;
    return conv->filter_grad ? AForm::patches : AForm::conv;
  }
  // Parts along N when there are too few row panels to go around the threads.
  bool split_n() const { return split_columns(dims, row_panels, col_panels()); }
};

// The result's multi-index for batch element `batch` and row i, column j.
Index result_index(Builder& b, const Gemm& g, Value* batch, Value* i, Value* j) {
  if (g.conv && g.conv->filter_grad) {  // row i is filter position (kh, kw, c)
    Value* per_kh = b.getInt64(g.conv->kw * g.conv->channels);
    Value* channels = b.getInt64(g.conv->channels);
    return {b.CreateUDiv(i, per_kh), b.CreateUDiv(b.CreateURem(i, per_kh), channels),
            b.CreateURem(i, channels), j};
  }
  if (g.conv) {  // row i is output pixel (n, oh, ow)
    Value* pixels = b.getInt64(g.conv->pixels);
    Value* out_w = b.getInt64(g.conv->out_w);
    return {b.CreateUDiv(i, pixels), b.CreateUDiv(b.CreateURem(i, pixels), out_w),
            b.CreateURem(i, out_w), j};
  }
  Index index;
  const std::vector<int64_t> strides = g.dims.batch.strides();
  for (int64_t d = 0; d < g.dims.batch.rank(); ++d) {
    Value* q = b.CreateUDiv(batch, b.getInt64(strides[static_cast<size_t>(d)]));
    index.push_back(d == 0 ? q : b.CreateURem(q, b.getInt64(g.dims.batch[d])));
  }
  index.push_back(i);
  index.push_back(j);
  return index;
}

// void epilogue(ctx, i0, j0, rows, cols): out[tile] = the epilogue of C[tile], elementwise.
llvm::Function* emit_epilogue(llvm::Module& module, const Gemm& g, const std::string& name) {
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  llvm::Function* fn = new_function(module, name, {ptr, i64, i64, i64, i64});
  Builder b(llvm::BasicBlock::Create(context, "entry", fn));
  ContextAccess ctx(b, fn->getArg(0));
  Value* inputs = ctx.get(kInputs);
  std::unordered_map<const ir::Value*, Value*> buffers;
  for (size_t i = 0; i < g.kernel.inputs.size(); ++i) {
    Value* at = b.CreateConstInBoundsGEP1_64(ptr, inputs, i);
    buffers.emplace(g.kernel.inputs[i], b.CreateLoad(ptr, at));
  }
  buffers[g.matmul.output()] = ctx.get(kCFull);
  Value* out = ctx.get(kOut);
  Value* batch = ctx.get(kBatch);
  Value* i0 = fn->getArg(1);
  Value* j0 = fn->getArg(2);
  const std::vector<int64_t> strides = g.out->type().shape.strides();
  gemm::emit_range(b, b.getInt64(0), fn->getArg(3), 1, [&](Value* r) {
    Value* i = b.CreateAdd(i0, r);
    // Vectorized, but not also unrolled by a run-time count: that unrolls the vectorizer's
    // scalar remainder (fewer elements than a vector's lanes) eight times, whose
    // induction-variable uses then cost loop strength reduction 10-50 ms of compile time per
    // epilogue. The vector loop's code is the same either way.
    gemm::emit_range(
        b, b.getInt64(0), fn->getArg(4), 1,
        [&](Value* c) {
          Index index = result_index(b, g, batch, i, b.CreateAdd(j0, c));
          ElementEmitter emitter(b, buffers);
          Value* v = emitter.element(g.out, index);
          store_element(b, g.out->type().dtype, out, linear_offset(b, index, strides), v);
        },
        /*vectorize=*/true, /*runtime_unroll=*/false);
  });
  b.CreateRetVoid();
  return fn;
}

// Element offset of operand `v`'s matrix for the result's batch element `batch` (broadcast
// batch dimensions of size 1 stay at 0).
Value* batch_offset(Builder& b, const Gemm& g, const ir::Value* v, Value* batch) {
  const ir::Shape& shape = v->type().shape;
  const std::vector<int64_t> strides = shape.strides();
  const int64_t lead = g.dims.batch.rank() - (shape.rank() - 2);
  const std::vector<int64_t> out_strides = g.dims.batch.strides();
  Value* offset = b.getInt64(0);
  for (int64_t d = 0; d < shape.rank() - 2; ++d) {
    if (shape[d] == 1) continue;
    const size_t od = static_cast<size_t>(d + lead);
    Value* idx =
        b.CreateURem(b.CreateUDiv(batch, b.getInt64(out_strides[od])), b.getInt64(shape[d]));
    offset = b.CreateAdd(offset, b.CreateMul(idx, b.getInt64(strides[static_cast<size_t>(d)])));
  }
  return offset;
}

size_t input_position(const passes::Kernel& kernel, const ir::Value* v) {
  auto it = std::find(kernel.inputs.begin(), kernel.inputs.end(), v);
  KILN_CHECK(it != kernel.inputs.end(), "a matmul operand is not a kernel input");
  return static_cast<size_t>(it - kernel.inputs.begin());
}

// The kernel itself: the context, then per batch element one parallel loop over the parts.
void emit_driver(llvm::Function& fn, const Gemm& g) {
  llvm::Module& module = *fn.getParent();
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  llvm::Type* void_type = llvm::Type::getVoidTy(context);
  const Config& cfg = g.config;
  const int64_t es = cfg.element_bytes();
  llvm::Type* t = scalar_type(context, cfg.dtype);

  llvm::Function* part = g.small_m() ? small_m_body(module, cfg, g.dims.transpose_a, g.dims.m)
                                     : part_body(module, cfg, g.dims.transpose_a,
                                                 g.dims.transpose_b, g.unpacked_a(), g.a_form());
  llvm::Function* epilogue =
      g.has_epilogue() ? emit_epilogue(module, g, fn.getName().str() + "_epilogue") : nullptr;
  auto alloc = module.getOrInsertFunction("kiln_rt_alloc", ptr, i64);
  auto release = module.getOrInsertFunction("kiln_rt_free", void_type, ptr);
  auto parallel_for =
      module.getOrInsertFunction("kiln_rt_parallel_for", void_type, i64, i64, ptr, ptr);
  auto num_threads =
      module.getOrInsertFunction("kiln_rt_num_threads", llvm::Type::getInt32Ty(context));

  Builder b(llvm::BasicBlock::Create(context, "entry", &fn));
  Value* ctx_ptr = b.CreateAlloca(context_type(context), nullptr, "ctx");
  ContextAccess ctx(b, ctx_ptr);
  const size_t num_inputs = g.kernel.inputs.size();
  Value* inputs = b.CreateAlloca(ptr, b.getInt64(std::max<size_t>(num_inputs, 1)), "inputs");
  for (size_t i = 0; i < num_inputs; ++i) {
    b.CreateStore(fn.getArg(static_cast<unsigned>(i)),
                  b.CreateConstInBoundsGEP1_64(ptr, inputs, i));
  }
  Value* out = fn.getArg(static_cast<unsigned>(num_inputs));
  Value* c_full = g.separate_c ? b.CreateCall(alloc, {b.getInt64(g.c_elements() * es)}) : out;
  ctx.set(kOut, out);
  ctx.set(kCFull, c_full);
  ctx.set(kInputs, inputs);
  ctx.set(kEpilogue, epilogue != nullptr
                         ? static_cast<Value*>(epilogue)
                         : llvm::ConstantPointerNull::get(llvm::PointerType::get(context, 0)));
  ctx.set(kM, g.dims.m);
  ctx.set(kN, g.dims.n);
  ctx.set(kK, g.dims.k);
  ctx.set(kSplitN, g.split_n() ? 1 : 0);
  ctx.set(kKBlocks, g.k_blocks);
  ctx.set(kKc, g.kc);
  if (const std::optional<ConvGeometry>& conv = g.conv) {
    ctx.set(kConvPixels, conv->pixels);
    ctx.set(kConvOutW, conv->out_w);
    ctx.set(kConvImage, conv->image);
    ctx.set(kConvRow, conv->row);
    ctx.set(kConvCol, conv->col);
    ctx.set(kConvChannels, conv->channels);
    ctx.set(kConvKw, conv->kw);
    ctx.set(kConvTapH, conv->tap_h);
    ctx.set(kConvTapW, conv->tap_w);
    if (!conv->filter_grad)
      ctx.set(kConvMicro, gemm::conv_micro_kernel(module, cfg, {conv->col, conv->channels}));
  }
  // One part per thread (each packs its own copy of the other operand); a problem too small to
  // be worth waking a thread for runs on the calling thread.
  const int64_t parts = g.small_m()   ? g.small_m_parts()
                        : g.split_n() ? g.col_panels()
                                      : g.row_panels;
  Value* grain = b.getInt64(parts);
  if (g.dims.m * g.dims.n * std::max<int64_t>(g.dims.k, 1) >= kGemmParallelWork) {
    Value* threads = b.CreateSExt(b.CreateCall(num_threads), i64);
    grain = b.CreateUDiv(b.CreateAdd(grain, b.CreateSub(threads, b.getInt64(1))), threads);
  }
  Value* a_arg = fn.getArg(static_cast<unsigned>(input_position(g.kernel, g.matmul.input(0))));
  Value* b_arg = fn.getArg(static_cast<unsigned>(input_position(g.kernel, g.matmul.input(1))));
  emit_for(b, g.batch_count, [&](Value* batch) {
    ctx.set(kBatch, batch);
    if (g.conv) {  // one "batch element": the whole convolution
      ctx.set(kA, a_arg);
      ctx.set(kB, b_arg);
    } else {
      ctx.set(kA, b.CreateGEP(t, a_arg, batch_offset(b, g, g.matmul.input(0), batch)));
      ctx.set(kB, b.CreateGEP(t, b_arg, batch_offset(b, g, g.matmul.input(1), batch)));
    }
    ctx.set(kC, b.CreateGEP(t, c_full, b.CreateMul(batch, b.getInt64(g.dims.m * g.dims.n))));
    b.CreateCall(parallel_for, {b.getInt64(parts), grain, part, ctx_ptr});
  });
  if (g.separate_c) b.CreateCall(release, {c_full});
  b.CreateRetVoid();
}

}  // namespace

llvm::Function* gemm_part_function(llvm::Module& module, const gemm::Config& config,
                                   bool transpose_a, bool transpose_b, bool unpacked_a) {
  return part_body(module, config, transpose_a, transpose_b, unpacked_a);
}

bool gemm_handles(const passes::Kernel& kernel) {
  if (kernel.nodes.empty()) return false;
  if (kernel.kind != passes::KernelKind::matmul && kernel.kind != passes::KernelKind::conv2d)
    return false;
  const ir::Node* root = kernel.nodes.front();
  if (root->inputs().size() < 2 || !ir::is_floating(root->input(0)->type().dtype)) return false;
  if (kernel.outputs.size() != 1 || kernel.outputs.front() != kernel.nodes.back()->output())
    return false;
  if (kernel.kind == passes::KernelKind::conv2d) {
    if (!conv_geometry(*root)) return false;
    // The same multiply-adds either way: result elements times window taps times channels.
    const ir::Shape& x = root->input(0)->type().shape;
    if (x[3] == 0) return false;  // no channels: the elemental loop writes the zeros
    const ir::Shape& y =
        root->op() == ir::Op::conv2d ? root->output()->type().shape : root->input(1)->type().shape;
    const ir::Shape& f =
        root->op() == ir::Op::conv2d ? root->input(1)->type().shape : root->output()->type().shape;
    return y.num_elements() * std::max<int64_t>(f[0] * f[1] * x[3], 1) >= kGemmMinWork;
  }
  if (kernel.kind != passes::KernelKind::matmul || root->op() != ir::Op::matmul) return false;
  const ir::MatmulDims d =
      ir::matmul_dims(root->input(0)->type().shape, root->input(1)->type().shape, root->attrs());
  return d.m * d.n * std::max<int64_t>(d.k, 1) >= kGemmMinWork;
}

std::vector<std::string> gemm_helpers(const passes::Kernel& kernel, const VectorUnit& unit) {
  KILN_CHECK(gemm_handles(kernel), "gemm_helpers called for a kernel emit_gemm_kernel leaves");
  const Gemm g(kernel, *kernel.nodes.front(), unit);
  const Config& cfg = g.config;
  if (g.small_m()) return {small_m_body_name(cfg, g.dims.transpose_a, g.dims.m)};
  // The part body and the micro-kernels it calls, by the names their emitters give them.
  std::vector<std::string> helpers{
      part_body_name(cfg, g.dims.transpose_a, g.dims.transpose_b, g.unpacked_a(), g.a_form())};
  switch (g.a_form()) {
    case AForm::matrix:
      helpers.push_back(
          gemm::micro_kernel_name(cfg, g.unpacked_a() ? gemm::AReads::rows : gemm::AReads::packed));
      break;
    case AForm::conv:
      helpers.push_back(gemm::conv_micro_kernel_name(cfg, {}));
      helpers.push_back(gemm::conv_micro_kernel_name(cfg, {g.conv->col, g.conv->channels}));
      break;
    case AForm::patches:
      helpers.push_back(gemm::micro_kernel_name(cfg, gemm::AReads::packed));
      helpers.push_back(gemm::micro_kernel_name(cfg, gemm::AReads::table));
      break;
  }
  return helpers;
}

void emit_gemm_helper(llvm::Module& module, const passes::Kernel& kernel, const VectorUnit& unit,
                      const std::string& name) {
  const std::vector<std::string> helpers = gemm_helpers(kernel, unit);
  KILN_CHECK(std::find(helpers.begin(), helpers.end(), name) != helpers.end(),
             "emit_gemm_helper: the kernel calls no helper named " + name);
  // Every helper the kernel calls, by the emitters emit_driver uses (the part body emits the
  // micro-kernels it calls); then all but `name` become declarations.
  const Gemm g(kernel, *kernel.nodes.front(), unit);
  const Config& cfg = g.config;
  if (g.small_m())
    small_m_body(module, cfg, g.dims.transpose_a, g.dims.m);
  else
    part_body(module, cfg, g.dims.transpose_a, g.dims.transpose_b, g.unpacked_a(), g.a_form());
  if (g.a_form() == AForm::conv)
    gemm::conv_micro_kernel(module, cfg, {g.conv->col, g.conv->channels});
  for (const std::string& helper : helpers) {
    llvm::Function* fn = module.getFunction(helper);
    KILN_CHECK(fn != nullptr, "emit_gemm_helper did not emit " + helper);
    if (helper == name) {
      fn->setLinkage(llvm::GlobalValue::ExternalLinkage);
      fn->setDSOLocal(false);
    } else {
      make_external_declaration(*fn);
    }
  }
}

bool is_gemm_micro_kernel(const std::string& name) {
  return gemm::is_micro_kernel_name(name);
}

void emit_gemm_kernel(llvm::Function& fn, const passes::Kernel& kernel, const VectorUnit& unit) {
  KILN_CHECK(gemm_handles(kernel), "emit_gemm_kernel called for a kernel it does not handle");
  const Gemm g(kernel, *kernel.nodes.front(), unit);
  if (g.c_elements() == 0) {
    Builder b(llvm::BasicBlock::Create(fn.getContext(), "entry", &fn));
    b.CreateRetVoid();
    return;
  }
  emit_driver(fn, g);
}

}  // namespace kiln::codegen
