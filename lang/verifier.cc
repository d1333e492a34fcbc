// verifier.cc: see verifier.h.
#include "lang/verifier.h"

#include <fmt/format.h>

#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "lang/opcodes.h"

namespace spindle::lang {

namespace {

class Verifier {
 public:
  Verifier(std::size_t globalCount, std::vector<std::string>& problems)
      : globalCount_(globalCount), problems_(problems) {}

  void check(const FunctionProto& fn, const FunctionProto* enclosing);

 private:
  template <typename... Args>
  void problem(const FunctionProto& fn, std::size_t offset, fmt::format_string<Args...> f,
               Args&&... args) {
    problems_.push_back(fmt::format("{} @{}: {}", fn.name.empty() ? "<script>" : fn.name,
                                    offset, fmt::format(f, std::forward<Args>(args)...)));
  }

  std::size_t globalCount_;
  std::vector<std::string>& problems_;
};

void Verifier::check(const FunctionProto& fn, const FunctionProto* enclosing) {
  const Chunk& c = fn.chunk;
  std::set<std::size_t> boundaries;
  std::vector<std::pair<std::size_t, std::size_t>> jumps;  // (from, to)
  std::set<std::uint32_t> icUsed;
  std::map<std::size_t, Instruction> endingAt;  // each instruction by its end offset
  std::vector<std::tuple<std::size_t, std::size_t, std::uint32_t>> loopReads;  // (from, to, slot)
  OpCode last = OpCode::NIL;

  auto isString = [&](std::uint32_t i) {
    return i < c.constants.size() && std::holds_alternative<std::string>(c.constants[i]);
  };
  auto isNumber = [&](std::uint32_t i) {
    return i < c.constants.size() && std::holds_alternative<double>(c.constants[i]);
  };

  for (std::size_t offset = 0; offset < c.code.size();) {
    Instruction in;
    if (!decode(c.code.data(), c.code.size(), offset, in)) {
      problem(fn, offset, "undecodable instruction");
      return;
    }
    boundaries.insert(offset);
    const auto* ops = in.operands;
    auto useIc = [&](std::uint32_t slot) {
      if (slot >= fn.icSlots) problem(fn, offset, "ic slot {} >= {}", slot, fn.icSlots);
      if (!icUsed.insert(slot).second) problem(fn, offset, "ic slot {} used twice", slot);
    };
    switch (in.op) {
      case OpCode::ADD_CONSTANT:
      case OpCode::SUBTRACT_CONSTANT:
        if (!isNumber(ops[0])) problem(fn, offset, "constant {} not a number", ops[0]);
        break;
      case OpCode::CONSTANT:
        if (ops[0] >= c.constants.size() ||
            std::holds_alternative<std::shared_ptr<const FunctionProto>>(c.constants[ops[0]])) {
          problem(fn, offset, "bad constant {}", ops[0]);
        }
        break;
      case OpCode::ADD_TO_LOCAL:
      case OpCode::ADD_TO_GLOBAL:
        if (in.op == OpCode::ADD_TO_GLOBAL && ops[0] >= globalCount_) {
          problem(fn, offset, "global slot {} out of range", ops[0]);
        }
        if (!isNumber(ops[1])) problem(fn, offset, "constant {} not a number", ops[1]);
        break;
      case OpCode::CLASS:
      case OpCode::METHOD:
      case OpCode::IMPORT:
        if (!isString(ops[0])) problem(fn, offset, "name constant {} not a string", ops[0]);
        break;
      case OpCode::GET_PROPERTY:
      case OpCode::SET_PROPERTY:
      case OpCode::GET_SUPER:
        if (!isString(ops[0])) problem(fn, offset, "name constant {} not a string", ops[0]);
        useIc(ops[1]);
        break;
      case OpCode::INVOKE:
      case OpCode::SUPER_INVOKE:
        if (!isString(ops[0])) problem(fn, offset, "name constant {} not a string", ops[0]);
        useIc(ops[2]);
        break;
      case OpCode::GET_GLOBAL:
      case OpCode::SET_GLOBAL:
      case OpCode::SET_GLOBAL_POP:
      case OpCode::DEFINE_GLOBAL:
        if (ops[0] >= globalCount_) problem(fn, offset, "global slot {} out of range", ops[0]);
        break;
      case OpCode::GET_UPVALUE:
      case OpCode::SET_UPVALUE:
      case OpCode::SET_UPVALUE_POP:
        if (ops[0] >= fn.upvalues.size()) problem(fn, offset, "upvalue {} out of range", ops[0]);
        break;
      case OpCode::CLOSURE: {
        const std::shared_ptr<const FunctionProto>* inner =
            ops[0] < c.constants.size()
                ? std::get_if<std::shared_ptr<const FunctionProto>>(&c.constants[ops[0]])
                : nullptr;
        if (inner == nullptr || !*inner) {
          problem(fn, offset, "closure constant {} not a function", ops[0]);
        } else {
          check(**inner, &fn);
        }
        break;
      }
      case OpCode::ADD_TO_LOCAL_LOOP:  // lands right after a GET_LOCAL of its slot
        if (!isNumber(ops[1])) problem(fn, offset, "constant {} not a number", ops[1]);
        if (ops[2] > offset + in.length) {
          problem(fn, offset, "loop before the start");
        } else {
          jumps.emplace_back(offset, in.jumpTarget());
          loopReads.emplace_back(offset, in.jumpTarget(), ops[0]);
        }
        break;
      case OpCode::LOOP:
        if (ops[0] > offset + in.length) {
          problem(fn, offset, "loop before the start");
        } else {
          jumps.emplace_back(offset, in.jumpTarget());
        }
        break;
      case OpCode::TRY:  // the handler's stack depth (the VM checks it), then its offset
        jumps.emplace_back(offset, in.jumpTarget());
        break;
      case OpCode::JUMP_TABLE: {
        std::size_t end = offset + in.length;
        for (std::uint32_t i = 0; i < ops[0]; ++i) {
          std::uint32_t back = readU32(&c.code[in.tableOffset + 4 * i]);
          if (back > end) {
            problem(fn, offset, "jump table entry before the start");
          } else {
            jumps.emplace_back(offset, end - back);
          }
        }
        break;
      }
      default:
        // Forward jumps (JUMP, the conditional jumps, compare-and-branch), some comparing
        // with a constant, a global or a local (a frame slot: unchecked, as GET_LOCAL's).
        if (comparesGlobal(in.op)) {
          if (ops[0] >= globalCount_) problem(fn, offset, "global slot {} out of range", ops[0]);
        } else if (comparesLocal(in.op)) {
        } else if (operandShape(in.op) == OperandShape::IndexJump) {
          const bool equality = in.op == OpCode::JUMP_UNLESS_EQUAL_CONSTANT ||
                                in.op == OpCode::JUMP_UNLESS_NOT_EQUAL_CONSTANT;
          if (ops[0] >= c.constants.size() ||
              std::holds_alternative<std::shared_ptr<const FunctionProto>>(c.constants[ops[0]])) {
            problem(fn, offset, "bad constant {}", ops[0]);
          } else if (!equality && !isNumber(ops[0])) {
            problem(fn, offset, "constant {} not a number", ops[0]);
          }
        }
        if (operandShape(in.op) == OperandShape::Jump ||
            operandShape(in.op) == OperandShape::IndexJump) {
          jumps.emplace_back(offset, in.jumpTarget());
        }
        break;
    }
    last = in.op;
    endingAt[offset + in.length] = in;
    offset += in.length;
  }
  if (c.code.empty() || last != OpCode::RETURN) problem(fn, c.code.size(), "no final OP_RETURN");
  for (auto [from, to] : jumps) {
    if (!boundaries.count(to)) problem(fn, from, "jump to {} is not an instruction", to);
  }
  for (auto [from, to, slot] : loopReads) {
    auto before = endingAt.find(to);
    if (before == endingAt.end() || before->second.op != OpCode::GET_LOCAL ||
        before->second.operands[0] != slot) {
      problem(fn, from, "ADD_TO_LOCAL_LOOP to {}: not after GET_LOCAL {}", to, slot);
    }
  }
  for (const UpvalueDesc& up : fn.upvalues) {
    if (enclosing == nullptr) {
      problem(fn, 0, "script has upvalues");
    } else if (!up.isLocal && up.index >= enclosing->upvalues.size()) {
      problem(fn, 0, "upvalue refers to missing enclosing upvalue {}", up.index);
    }
  }
  if (c.lines.runs().empty() && !c.code.empty()) problem(fn, 0, "no line table");
}

}  // namespace

std::vector<std::string> verify(const FunctionProto& script, std::size_t globalCount) {
  std::vector<std::string> problems;
  Verifier(globalCount, problems).check(script, nullptr);
  return problems;
}

}  // namespace spindle::lang
