// opcodes.cc: names, shapes and the decoder of the instruction set (see opcodes.h).
#include "lang/opcodes.h"

namespace spindle::lang {

namespace {

constexpr std::string_view kNames[] = {
#define SPINDLE_OPCODE_NAME(name, shape) "OP_" #name,
    SPINDLE_OPCODES(SPINDLE_OPCODE_NAME)
#undef SPINDLE_OPCODE_NAME
};

constexpr OperandShape kShapes[] = {
#define SPINDLE_OPCODE_SHAPE(name, shape) OperandShape::shape,
    SPINDLE_OPCODES(SPINDLE_OPCODE_SHAPE)
#undef SPINDLE_OPCODE_SHAPE
};

}  // namespace

std::string_view opcodeName(OpCode op) {
  auto i = static_cast<std::size_t>(op);
  return i < std::size(kNames) ? kNames[i] : std::string_view("OP_<invalid>");
}

OperandShape operandShape(OpCode op) { return kShapes[static_cast<std::size_t>(op)]; }

bool decode(const std::uint8_t* code, std::size_t size, std::size_t offset, Instruction& out) {
  out = Instruction{};
  out.offset = offset;
  std::size_t p = offset;
  if (p >= size) return false;
  if (code[p] == static_cast<std::uint8_t>(OpCode::WIDE)) {
    out.wide = true;
    ++p;
    if (p >= size) return false;
  }
  if (code[p] >= kOpCodeCount) return false;
  out.op = static_cast<OpCode>(code[p++]);
  if (out.wide && (operandShape(out.op) == OperandShape::None ||
                   operandShape(out.op) == OperandShape::Jump)) {
    return false;  // WIDE only prefixes instructions with index operands.
  }
  const std::size_t indexBytes = out.wide ? kWideIndexBytes : kNarrowIndexBytes;

  auto readIndex = [&](std::uint32_t& v) {
    if (size - p < indexBytes) return false;
    v = out.wide ? readU32(code + p) : code[p];
    p += indexBytes;
    return true;
  };

  int indexCount = 0;
  switch (operandShape(out.op)) {
    case OperandShape::None: break;
    case OperandShape::Index1: indexCount = 1; break;
    case OperandShape::Index2: indexCount = 2; break;
    case OperandShape::Index3: indexCount = 3; break;
    case OperandShape::Jump:
      if (size - p < kJumpBytes) return false;
      out.operands[0] = readU32(code + p);
      out.operandCount = 1;
      p += kJumpBytes;
      break;
    case OperandShape::IndexJump:
      if (!readIndex(out.operands[0])) return false;
      if (size - p < kJumpBytes) return false;
      out.operands[1] = readU32(code + p);
      out.operandCount = 2;
      p += kJumpBytes;
      break;
    case OperandShape::Index2Jump:
      if (!readIndex(out.operands[0]) || !readIndex(out.operands[1])) return false;
      if (size - p < kJumpBytes) return false;
      out.operands[2] = readU32(code + p);
      out.operandCount = 3;
      p += kJumpBytes;
      break;
    case OperandShape::Select:
      if (!readIndex(out.operands[0])) return false;
      out.operandCount = 1;
      if (p >= size) return false;
      out.selectFlags = code[p++];
      out.tableOffset = p;
      if (size - p < out.operands[0]) return false;
      p += out.operands[0];
      break;
    case OperandShape::JumpTable:
      if (!readIndex(out.operands[0])) return false;
      out.operandCount = 1;
      out.tableOffset = p;
      if ((size - p) / kJumpBytes < out.operands[0]) return false;
      p += std::size_t(out.operands[0]) * kJumpBytes;
      break;
  }
  for (int i = 0; i < indexCount; ++i) {
    if (!readIndex(out.operands[i])) return false;
  }
  if (indexCount > 0) out.operandCount = indexCount;
  out.length = p - offset;
  return true;
}

std::size_t encode(std::vector<std::uint8_t>& code, OpCode op, std::initializer_list<std::uint32_t> operands) {
  bool wide = false;
  for (std::uint32_t v : operands) wide |= v > 0xff;
  if (wide) code.push_back(static_cast<std::uint8_t>(OpCode::WIDE));
  const std::size_t opByte = code.size();
  code.push_back(static_cast<std::uint8_t>(op));
  for (std::uint32_t v : operands) {
    if (!wide) {
      code.push_back(static_cast<std::uint8_t>(v));
      continue;
    }
    for (int i = 0; i < 4; ++i) code.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  return opByte;
}

}  // namespace spindle::lang
