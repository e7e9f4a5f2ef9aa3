// The gradient of `scan`: another scan, running the other way, whose body is the gradient of the
// forward body (docs/autodiff.md, "Scan"). The forward saves the carry each step read
// (save_carries); the gradient body recomputes the step from it and differentiates that step.
#include <fmt/format.h>

#include <memory>
#include <unordered_map>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/control.h"
#include "kiln/passes/autodiff.h"
#include "kiln/passes/grad_rules.h"

namespace kiln::passes::grad {

namespace {

bool floating(const ir::TensorType& t) {
  return ir::is_floating(t.dtype);
}

std::vector<V> scan_rule(const Context& c) {
  const ir::Node& node = c.node;
  const ir::ScanAttrs s = ir::scan_attrs(node.attrs(), node.inputs().size());
  const ir::Function& body = *s.body;
  const auto C = static_cast<size_t>(s.carries);
  const auto X = static_cast<size_t>(s.xs);
  const auto K = static_cast<size_t>(s.consts);
  const auto Y = static_cast<size_t>(s.ys);
  Builder& b = c.builder;

  // Which operands can take a gradient and which results brought one.
  std::vector<size_t> fc, fx, fk, ysel, hsel;
  for (size_t i = 0; i < C; ++i)
    if (floating(node.input(i)->type())) fc.push_back(i);
  for (size_t j = 0; j < X; ++j)
    if (floating(node.input(C + j)->type())) fx.push_back(j);
  for (size_t k = 0; k < K; ++k)
    if (floating(node.input(C + X + k)->type())) fk.push_back(k);
  for (size_t y = 0; y < Y; ++y)
    if (c.dys[C + y]) ysel.push_back(y);
  if (s.save_carries) {
    for (size_t i = 0; i < C; ++i)
      if (c.dys[C + Y + i]) hsel.push_back(i);
  }
  std::vector<V> result(node.inputs().size());
  if (fc.empty() && fx.empty() && fk.empty()) return result;

  // The carries each step read: the node's own, or those of a copy that saves them.
  std::vector<V> saved;
  if (s.save_carries) {
    for (size_t i = 0; i < C; ++i)
      saved.push_back(c.y(C + Y + i));
  } else {
    std::vector<V> operands;
    for (size_t i = 0; i < node.inputs().size(); ++i)
      operands.push_back(c.x(i));
    ir::Attrs attrs = node.attrs();
    attrs.set_bool("save_carries", true);
    std::vector<V> again = b.ops(ir::Op::scan, operands, std::move(attrs));
    saved.assign(again.begin() + static_cast<ptrdiff_t>(C + Y), again.end());
  }

  // The gradient body. Carries: cotangents of the floating carries, then accumulators of the
  // floating consts. Steps: carry read, x, cotangents of ys and saved carries. Consts: consts.
  auto g = std::make_shared<ir::Function>(fmt::format("{}_grad", body.name()));
  std::vector<ir::Value*> gc, gk, carry_in, x_in, ybar, hbar, k_in;
  for (size_t i : fc)
    gc.push_back(g->add_param(body.param(i)->type(), fmt::format("d_{}", body.param(i)->name())));
  for (size_t k : fk) {
    const ir::Value* p = body.param(C + X + k);
    gk.push_back(g->add_param(p->type(), fmt::format("d_{}", p->name())));
  }
  for (size_t i = 0; i < C; ++i)
    carry_in.push_back(g->add_param(body.param(i)->type(), body.param(i)->name()));
  for (size_t j = 0; j < X; ++j)
    x_in.push_back(g->add_param(body.param(C + j)->type(), body.param(C + j)->name()));
  for (size_t y : ysel)
    ybar.push_back(g->add_param(body.outputs()[C + y]->type(), fmt::format("d_y{}", y)));
  for (size_t i : hsel)
    hbar.push_back(g->add_param(body.param(i)->type(), fmt::format("d_saved{}", i)));
  for (size_t k = 0; k < K; ++k)
    k_in.push_back(g->add_param(body.param(C + X + k)->type(), body.param(C + X + k)->name()));

  // The forward step, recomputed from the saved carry.
  std::unordered_map<const ir::Value*, ir::Value*> map;
  for (size_t i = 0; i < C; ++i)
    map[body.param(i)] = carry_in[i];
  for (size_t j = 0; j < X; ++j)
    map[body.param(C + j)] = x_in[j];
  for (size_t k = 0; k < K; ++k)
    map[body.param(C + X + k)] = k_in[k];
  for (const auto& n : body.nodes()) {
    std::vector<ir::Value*> inputs;
    for (const ir::Value* v : n->inputs())
      inputs.push_back(map.at(v));
    ir::Node* made = g->append_unchecked(n->op(), std::move(inputs), n->attrs(), n->output_types(),
                                         n->scope(), n->loc());
    for (size_t i = 0; i < n->num_outputs(); ++i)
      map[n->output(i)] = made->output(i);
  }

  std::vector<ir::Value*> targets, seeds, sources;
  for (size_t a = 0; a < fc.size(); ++a) {
    targets.push_back(map.at(body.outputs()[fc[a]]));
    seeds.push_back(gc[a]);
  }
  for (size_t a = 0; a < ysel.size(); ++a) {
    targets.push_back(map.at(body.outputs()[C + ysel[a]]));
    seeds.push_back(ybar[a]);
  }
  for (size_t i : fc)
    sources.push_back(carry_in[i]);
  for (size_t j : fx)
    sources.push_back(x_in[j]);
  for (size_t k : fk)
    sources.push_back(k_in[k]);
  std::vector<ir::Value*> d = append_gradients(*g, targets, seeds, sources);

  Builder gb(*g);
  gb.set_origin(node);
  auto or_zeros = [&](ir::Value* v, const ir::TensorType& type) {
    return v != nullptr ? gb.wrap(v) : gb.full(type, 0.0);
  };
  std::vector<ir::Value*> outputs;
  for (size_t a = 0; a < fc.size(); ++a) {
    V dc = or_zeros(d[a], carry_in[fc[a]]->type());
    for (size_t h = 0; h < hsel.size(); ++h)
      if (hsel[h] == fc[a]) dc = dc + gb.wrap(hbar[h]);
    outputs.push_back(dc.value);
  }
  for (size_t a = 0; a < fk.size(); ++a) {
    ir::Value* dk = d[fc.size() + fx.size() + a];
    outputs.push_back(dk != nullptr ? (gb.wrap(gk[a]) + gb.wrap(dk)).value : gk[a]);
  }
  for (size_t a = 0; a < fx.size(); ++a)
    outputs.push_back(or_zeros(d[fc.size() + a], x_in[fx[a]]->type()).value);
  g->set_outputs(std::move(outputs));

  // The reverse scan.
  std::vector<V> operands;
  for (size_t i : fc)
    operands.push_back(c.dy_or_zeros(i));
  for (size_t k : fk)
    operands.push_back(zeros_like(c.x(C + X + k)));
  operands.insert(operands.end(), saved.begin(), saved.end());
  for (size_t j = 0; j < X; ++j)
    operands.push_back(c.x(C + j));
  for (size_t y : ysel)
    operands.push_back(c.dys[C + y]);
  for (size_t i : hsel)
    operands.push_back(c.dys[C + Y + i]);
  for (size_t k = 0; k < K; ++k)
    operands.push_back(c.x(C + X + k));
  ir::Attrs attrs;
  attrs.set_int("carries", static_cast<int64_t>(fc.size() + fk.size()));
  attrs.set_int("xs", static_cast<int64_t>(C + X + ysel.size() + hsel.size()));
  attrs.set_int("length", s.length);
  attrs.set_bool("reverse", !s.reverse);
  attrs.set_bool("save_carries", false);
  attrs.set_function("body", std::move(g));
  std::vector<V> r = b.ops(ir::Op::scan, operands, std::move(attrs));

  for (size_t a = 0; a < fc.size(); ++a)
    result[fc[a]] = r[a];
  for (size_t a = 0; a < fk.size(); ++a)
    result[C + X + fk[a]] = r[fc.size() + a];
  for (size_t a = 0; a < fx.size(); ++a)
    result[C + fx[a]] = r[fc.size() + fk.size() + a];
  return result;
}

}  // namespace

void add_control_rules(RuleTable& t) {
  t[static_cast<size_t>(ir::Op::scan)] = scan_rule;
}

}  // namespace kiln::passes::grad
