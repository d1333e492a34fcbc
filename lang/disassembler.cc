// disassembler.cc: see disassembler.h. All decoding goes through lang::decode.
#include "lang/disassembler.h"

#include <fmt/format.h>

#include "lang/number_format.h"
#include "lang/opcodes.h"

namespace spindle::lang {

namespace {

std::string functionName(const FunctionProto& proto) {
  return proto.name.empty() ? std::string("<script>") : "<fn " + proto.name + ">";
}

std::string constantText(const FunctionProto& proto, std::uint32_t index) {
  const auto& constants = proto.chunk.constants;
  if (index >= constants.size()) return "<bad constant>";
  const Constant& c = constants[index];
  if (const double* d = std::get_if<double>(&c)) return formatNumber(*d);
  if (const std::string* s = std::get_if<std::string>(&c)) return *s;
  const auto& fn = std::get<std::shared_ptr<const FunctionProto>>(c);
  return fn ? functionName(*fn) : "<null fn>";
}

void listFunction(const FunctionProto& proto, const GlobalTable* globals, std::string& out) {
  out += fmt::format("== {} ==\n", proto.name.empty() ? "<script>" : proto.name);
  for (std::size_t offset = 0; offset < proto.chunk.code.size();) {
    offset = disassembleInstruction(proto, offset, out, globals);
  }
  for (const Constant& c : proto.chunk.constants) {
    if (const auto* fn = std::get_if<std::shared_ptr<const FunctionProto>>(&c)) {
      if (*fn) listFunction(**fn, globals, out);
    }
  }
}

}  // namespace

std::string disassemble(const FunctionProto& proto, const GlobalTable* globals) {
  std::string out;
  listFunction(proto, globals, out);
  return out;
}

std::size_t disassembleInstruction(const FunctionProto& proto, std::size_t offset,
                                   std::string& out, const GlobalTable* globals) {
  const Chunk& chunk = proto.chunk;
  out += fmt::format("{:04} ", offset);
  int line = chunk.lines.lineAt(offset);
  if (offset > 0 && line == chunk.lines.lineAt(offset - 1)) {
    out += "   | ";
  } else {
    out += fmt::format("{:4} ", line);
  }

  Instruction in;
  if (!decode(chunk.code.data(), chunk.code.size(), offset, in)) {
    out += fmt::format("<malformed instruction, byte {}>\n", chunk.code[offset]);
    return chunk.code.size();
  }
  std::string name = std::string(in.wide ? "WIDE " : "") + std::string(opcodeName(in.op));
  const auto* ops = in.operands;

  switch (in.op) {
    case OpCode::CONSTANT:
    case OpCode::ADD_CONSTANT:
    case OpCode::SUBTRACT_CONSTANT:
    case OpCode::CLASS:
    case OpCode::METHOD:
      out += fmt::format("{:<16} {:4} '{}'\n", name, ops[0], constantText(proto, ops[0]));
      break;
    case OpCode::CLOSURE: {
      out += fmt::format("{:<16} {:4} {}\n", name, ops[0], constantText(proto, ops[0]));
      const auto& constants = chunk.constants;
      if (ops[0] < constants.size()) {
        if (const auto* fn = std::get_if<std::shared_ptr<const FunctionProto>>(&constants[ops[0]])) {
          for (const UpvalueDesc& up : (*fn)->upvalues) {
            out += fmt::format("     |                     {} {}\n",
                               up.isLocal ? "local" : "upvalue", up.index);
          }
        }
      }
      break;
    }
    case OpCode::GET_GLOBAL:
    case OpCode::SET_GLOBAL:
    case OpCode::SET_GLOBAL_POP:
    case OpCode::DEFINE_GLOBAL:
      if (globals != nullptr && ops[0] < globals->size()) {
        out += fmt::format("{:<16} {:4} '{}'\n", name, ops[0], globals->name(ops[0]));
      } else {
        out += fmt::format("{:<16} {:4}\n", name, ops[0]);
      }
      break;
    case OpCode::ADD_TO_LOCAL_LOOP:
      out += fmt::format("{:<16} {:4} += {} '{}' {:4} -> {}\n", name, ops[0], ops[1],
                         constantText(proto, ops[1]), offset, in.jumpTarget());
      break;
    case OpCode::ADD_TO_LOCAL:
    case OpCode::ADD_TO_GLOBAL: {
      std::string global;
      if (in.op == OpCode::ADD_TO_GLOBAL && globals != nullptr && ops[0] < globals->size()) {
        global = fmt::format(" '{}'", globals->name(ops[0]));
      }
      out += fmt::format("{:<16} {:4}{} += {} '{}'\n", name, ops[0], global, ops[1],
                         constantText(proto, ops[1]));
      break;
    }
    case OpCode::GET_PROPERTY:
    case OpCode::SET_PROPERTY:
    case OpCode::GET_SUPER:
      out += fmt::format("{:<16} {:4} '{}' ic {}\n", name, ops[0], constantText(proto, ops[0]),
                         ops[1]);
      break;
    case OpCode::INVOKE:
    case OpCode::SUPER_INVOKE:
      out += fmt::format("{:<16} ({} args) {:4} '{}' ic {}\n", name, ops[1], ops[0],
                         constantText(proto, ops[0]), ops[2]);
      break;
    case OpCode::SELECT: {
      std::string kinds;
      for (std::uint32_t i = 0; i < ops[0]; ++i) {
        if (i > 0) kinds += ", ";
        kinds += chunk.code[in.tableOffset + i] == kSelectSend ? "send" : "recv";
      }
      out += fmt::format("{:<16} {:4} [{}]{}\n", name, ops[0], kinds,
                         (in.selectFlags & kSelectHasDefault) ? " default" : "");
      break;
    }
    case OpCode::TRY:
      out += fmt::format("{:<16} {:4} depth {:4} -> {}\n", name, offset, ops[0], in.jumpTarget());
      break;
    case OpCode::JUMP_TABLE: {
      std::string targets;
      std::size_t end = offset + in.length;
      for (std::uint32_t i = 0; i < ops[0]; ++i) {
        if (i > 0) targets += ", ";
        targets += fmt::format("{}", end - readU32(&chunk.code[in.tableOffset + 4 * i]));
      }
      out += fmt::format("{:<16} {:4} -> [{}]\n", name, ops[0], targets);
      break;
    }
    default:
      switch (operandShape(in.op)) {
        case OperandShape::None: out += name + "\n"; break;
        case OperandShape::Jump:  // JUMP, LOOP, the conditional jumps
          out += fmt::format("{:<16} {:4} -> {}\n", name, offset, in.jumpTarget());
          break;
        case OperandShape::IndexJump:  // compare with a constant, a global or a local and branch
          if (comparesLocal(in.op) || (comparesGlobal(in.op) && (globals == nullptr || ops[0] >= globals->size()))) {
            out += fmt::format("{:<16} {:4} {:4} -> {}\n", name, ops[0], offset, in.jumpTarget());
          } else {
            out += fmt::format("{:<16} {:4} '{}' {:4} -> {}\n", name, ops[0],
                               comparesGlobal(in.op) ? std::string(globals->name(ops[0])) : constantText(proto, ops[0]),
                               offset, in.jumpTarget());
          }
          break;
        default: out += fmt::format("{:<16} {:4}\n", name, ops[0]); break;
      }
      break;
  }
  return offset + in.length;
}

}  // namespace spindle::lang
