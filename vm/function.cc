// function.cc: functions and closures: converting compiled protos into heap functions
// (load, convert), and the ownership of the protos.
//
// A proto (lang::FunctionProto: code, constants, upvalue descriptors, line table) is C++
// memory; a heap ObjFunction points at its proto and at its code (frames keep an ip into
// it). Each converted tree (a script with its nested function protos, or one host
// method's proto) gets one owner: an ObjHostData holding a shared_ptr to the root proto,
// which owns the nested ones through its constants. Every ObjFunction made from the tree
// points at that owner (ObjFunction::protos, traced), so the tree lives exactly as long
// as one of its functions, whether the script's or a nested one a closure escaped with.
// The owner's cleanup (owned.cc) frees the tree once the collector freed the owner (no
// fiber can reach a function, a closure of it or a frame running it then); ~VM frees
// the trees still alive (VM::freeOwned). So a host that runs many snippets, or a REPL,
// keeps only the protos its globals and objects still reach.
#include <memory>

#include "lang/opcodes.h"
#include "vm/barrier.h"
#include "vm/shape.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace {
using ProtoRef = std::shared_ptr<const lang::FunctionProto>;
constexpr char kProtoTag = 0;  // ObjHostData::tag of a proto owner
void destroyProtos(void* data) { delete static_cast<ProtoRef*>(data); }
}  // namespace

ObjHostData* VM::newProtoOwner(std::shared_ptr<const lang::FunctionProto> tree) {
  return newOwned(new ProtoRef(std::move(tree)), &kProtoTag, destroyProtos);
}

// `fn` may be held only by the caller (load): if a mark began at a checkpoint of an
// allocation since fn was made, fn is white and the closure born black, so the store
// shades fn (the hybrid barrier), or nothing would ever mark it.
ObjClosure* VM::newClosure(ObjFunction* fn) {
  auto* c = allocate<ObjClosure>(
      ObjKind::Closure, sizeof(ObjClosure) + fn->upvalueCount * sizeof(ObjUpvalue*));
  writeBarrierPtr<ObjFunction>(c, &c->function, fn);
  c->upvalueCount = fn->upvalueCount;
  return c;
}

// Runs within one G run without a safepoint: the owner, held only here until the script
// function points at it, outlives the stretch (see VM::transition in shape.cc).
ObjClosure* VM::load(std::shared_ptr<const lang::FunctionProto> script) {
  const lang::FunctionProto& root = *script;
  ObjHostData* owner = newProtoOwner(std::move(script));
  return newClosure(convert(root, owner));
}

// A mark may begin at a checkpoint of any allocation here (the zeroing of a large
// constant array passes them): the function is then born black while `constants` and
// `protos`, made before, are white and held only here, so they are stored through the
// write barrier, which shades them.
ObjFunction* VM::convert(const lang::FunctionProto& proto, ObjHostData* protos) {
  const auto& chunk = proto.chunk;
  ValueArray* constants = newValueArray(static_cast<std::uint32_t>(chunk.constants.size()));
  auto* fn = allocate<ObjFunction>(ObjKind::Function,
                                   sizeof(ObjFunction) + proto.icSlots * sizeof(InlineCache*));
  fn->proto = &proto;
  writeBarrierPtr<ObjHostData>(fn, &fn->protos, protos);
  fn->code = chunk.code.data();
  writeBarrierPtr<ValueArray>(fn, &fn->constants, constants);
  if (!proto.name.empty()) writeBarrierPtr<ObjString>(fn, &fn->name, intern(proto.name));
  fn->arity = proto.arity;
  fn->upvalueCount = static_cast<std::uint32_t>(proto.upvalues.size());
  fn->icCount = proto.icSlots;
  for (std::uint32_t i = 0; i < fn->icCount; ++i) fn->ics()[i] = nullptr;  // empty
  // Every instruction pushes at most one value (SELECT two, with a 3+ byte encoding),
  // so the instruction count bounds the slots a frame uses beyond its arguments.
  std::uint32_t instructions = 0;
  for (std::size_t off = 0; off < chunk.code.size();) {
    lang::Instruction in;
    if (!lang::decode(chunk.code.data(), chunk.code.size(), off, in)) break;
    off += in.length;
    instructions += in.op == lang::OpCode::SELECT ? 2 : 1;
  }
  fn->maxStack = instructions + proto.arity + 2;
  for (std::size_t i = 0; i < chunk.constants.size(); ++i) {
    const lang::Constant& c = chunk.constants[i];
    Value v;
    if (const double* d = std::get_if<double>(&c)) {
      v = Value::number(*d);
    } else if (const std::string* s = std::get_if<std::string>(&c)) {
      v = Value::object(intern(*s));
    } else {
      v = Value::object(convert(*std::get<ProtoRef>(c), protos));
    }
    writeBarrier(constants, &constants->data()[i], v);
  }
  return fn;
}

}  // namespace spindle::vm
