// opcodes.h: Spindle's instruction set and its operand encoding.
//
// An instruction is one opcode byte followed by its operands. Operand kinds:
//   - index operands (constant, local slot, upvalue, global slot, argument count,
//     inline-cache slot, list length, case count): one byte (0..255) normally. An
//     OP_WIDE prefix byte makes EVERY index operand of the next instruction a 4-byte
//     little-endian unsigned integer. The compiler emits WIDE only when some operand
//     exceeds 255, so the common case stays compact and nothing has a fixed limit.
//   - jump operands: always 4 bytes little-endian unsigned, a distance counted from the
//     end of the instruction: forward for JUMP / JUMP_IF_FALSE, backward for LOOP.
//   - compare-with-constant-and-branch (shape IndexJump): the constant's index operand,
//     then the 4-byte forward jump distance.
//   - ADD_TO_LOCAL_LOOP (shape Index2Jump): two index operands, then a 4-byte BACKWARD
//     distance (as LOOP's).
//   - OP_SELECT: count (index operand), flags (1 byte: bit 0 = has a default case),
//     then `count` kind bytes (0 = receive, 1 = send).
//   - OP_JUMP_TABLE: count (index operand), then `count` 4-byte BACKWARD distances, each
//     counted from the end of the whole instruction (after the table): target = end -
//     entry. (The select compiler puts every case body before its jump table.)
// `operandShape(op)` describes each opcode; `decode` (below) is the one reader of this
// format, shared by the disassembler, the tests and (if it likes) the VM.
//
// The opcodes after JUMP_TABLE (up to WIDE) are superinstructions: the compiler's
// peephole emits each in place of a short sequence it behaves exactly like (see
// compiler.cc and the table in docs/ARCHITECTURE.md). The opcodes after WIDE are ordinary
// instructions again: the error instructions (TRY depth, dist: a handler; END_TRY; THROW;
// END_FINALLY dist; UNWIND_TO depth; vm/error.cc), then maps and for-in (MAP n;
// FOR_IN_PREP; FOR_IN_NEXT dist; vm/map.cc), then SPAWN_FIBER argc (a spawn expression:
// OP_SPAWN that pushes the Fiber), then IMPORT path (pushes the module object of the
// path constant, a string; vm/module.cc). The last ones are superinstructions again:
// GET_INDEX_LOCAL slot (`GET_LOCAL slot; GET_INDEX`) and SET_INDEX_POP (`SET_INDEX; POP`),
// then JUMP_UNLESS_<cmp>_GLOBAL g and JUMP_UNLESS_<cmp>_LOCAL slot (shape IndexJump, the
// index operand a global slot or a frame slot: `GET_GLOBAL g; <cmp>; POP_JUMP_IF_FALSE`,
// `GET_LOCAL slot; <cmp>; POP_JUMP_IF_FALSE`), then ADD_TO_LOCAL_LOOP slot, k, dist (shape
// Index2Jump: `ADD_TO_LOCAL slot k; LOOP; GET_LOCAL slot`, a for loop's increment and
// back edge when its condition starts by reading the same local: the backward jump lands
// after that GET_LOCAL, whose push it does).
//
// Stack effects are documented in docs/ARCHITECTURE.md next to the VM's contract.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

namespace spindle::lang {

// X(name, shape)
#define SPINDLE_OPCODES(X)          \
  X(CONSTANT, Index1)               \
  X(NIL, None)                      \
  X(TRUE, None)                     \
  X(FALSE, None)                    \
  X(POP, None)                      \
  X(GET_LOCAL, Index1)              \
  X(SET_LOCAL, Index1)              \
  X(GET_GLOBAL, Index1)             \
  X(DEFINE_GLOBAL, Index1)          \
  X(SET_GLOBAL, Index1)             \
  X(GET_UPVALUE, Index1)            \
  X(SET_UPVALUE, Index1)            \
  X(GET_PROPERTY, Index2)           \
  X(SET_PROPERTY, Index2)           \
  X(GET_SUPER, Index2)              \
  X(EQUAL, None)                    \
  X(NOT_EQUAL, None)                \
  X(GREATER, None)                  \
  X(GREATER_EQUAL, None)            \
  X(LESS, None)                     \
  X(LESS_EQUAL, None)               \
  X(ADD, None)                      \
  X(SUBTRACT, None)                 \
  X(MULTIPLY, None)                 \
  X(DIVIDE, None)                   \
  X(MODULO, None)                   \
  X(NOT, None)                      \
  X(NEGATE, None)                   \
  X(PRINT, None)                    \
  X(JUMP, Jump)                     \
  X(JUMP_IF_FALSE, Jump)            \
  X(LOOP, Jump)                     \
  X(CALL, Index1)                   \
  X(INVOKE, Index3)                 \
  X(SUPER_INVOKE, Index3)           \
  X(CLOSURE, Index1)                \
  X(CLOSE_UPVALUE, None)            \
  X(RETURN, None)                   \
  X(CLASS, Index1)                  \
  X(INHERIT, None)                  \
  X(METHOD, Index1)                 \
  X(LIST, Index1)                   \
  X(GET_INDEX, None)                \
  X(SET_INDEX, None)                \
  X(SPAWN, Index1)                  \
  X(SELECT, Select)                 \
  X(JUMP_TABLE, JumpTable)          \
  X(SET_LOCAL_POP, Index1)          \
  X(SET_GLOBAL_POP, Index1)         \
  X(SET_UPVALUE_POP, Index1)        \
  X(POP_JUMP_IF_FALSE, Jump)        \
  X(JUMP_UNLESS_EQUAL, Jump)        \
  X(JUMP_UNLESS_NOT_EQUAL, Jump)    \
  X(JUMP_UNLESS_GREATER, Jump)      \
  X(JUMP_UNLESS_GREATER_EQUAL, Jump) \
  X(JUMP_UNLESS_LESS, Jump)         \
  X(JUMP_UNLESS_LESS_EQUAL, Jump)   \
  X(ADD_CONSTANT, Index1)           \
  X(SUBTRACT_CONSTANT, Index1)      \
  X(JUMP_UNLESS_EQUAL_CONSTANT, IndexJump)         \
  X(JUMP_UNLESS_NOT_EQUAL_CONSTANT, IndexJump)     \
  X(JUMP_UNLESS_GREATER_CONSTANT, IndexJump)       \
  X(JUMP_UNLESS_GREATER_EQUAL_CONSTANT, IndexJump) \
  X(JUMP_UNLESS_LESS_CONSTANT, IndexJump)          \
  X(JUMP_UNLESS_LESS_EQUAL_CONSTANT, IndexJump)    \
  X(ADD_TO_LOCAL, Index2)           \
  X(ADD_TO_GLOBAL, Index2)          \
  X(WIDE, None)                      \
  X(TRY, IndexJump)                 \
  X(END_TRY, None)                  \
  X(THROW, None)                    \
  X(END_FINALLY, Jump)              \
  X(UNWIND_TO, Index1)              \
  X(MAP, Index1)                    \
  X(FOR_IN_PREP, None)              \
  X(FOR_IN_NEXT, Jump)              \
  X(SPAWN_FIBER, Index1)           \
  X(IMPORT, Index1)                 \
  X(GET_INDEX_LOCAL, Index1)        \
  X(SET_INDEX_POP, None)            \
  X(JUMP_UNLESS_EQUAL_GLOBAL, IndexJump) \
  X(JUMP_UNLESS_NOT_EQUAL_GLOBAL, IndexJump) \
  X(JUMP_UNLESS_GREATER_GLOBAL, IndexJump) \
  X(JUMP_UNLESS_GREATER_EQUAL_GLOBAL, IndexJump) \
  X(JUMP_UNLESS_LESS_GLOBAL, IndexJump) \
  X(JUMP_UNLESS_LESS_EQUAL_GLOBAL, IndexJump) \
  X(JUMP_UNLESS_EQUAL_LOCAL, IndexJump) \
  X(JUMP_UNLESS_NOT_EQUAL_LOCAL, IndexJump) \
  X(JUMP_UNLESS_GREATER_LOCAL, IndexJump) \
  X(JUMP_UNLESS_GREATER_EQUAL_LOCAL, IndexJump) \
  X(JUMP_UNLESS_LESS_LOCAL, IndexJump) \
  X(JUMP_UNLESS_LESS_EQUAL_LOCAL, IndexJump) \
  X(ADD_TO_LOCAL_LOOP, Index2Jump)

enum class OpCode : std::uint8_t {
#define SPINDLE_OPCODE_ENUM(name, shape) name,
  SPINDLE_OPCODES(SPINDLE_OPCODE_ENUM)
#undef SPINDLE_OPCODE_ENUM
};

#define SPINDLE_OPCODE_COUNT(name, shape) +1
inline constexpr int kOpCodeCount = 0 SPINDLE_OPCODES(SPINDLE_OPCODE_COUNT);
#undef SPINDLE_OPCODE_COUNT

enum class OperandShape : std::uint8_t {
  None,       // no operands
  Index1,     // one index operand
  Index2,     // two index operands (name constant, inline-cache slot)
  Index3,     // three index operands (name constant, argument count, inline-cache slot)
  Jump,       // one 4-byte jump distance
  IndexJump,  // one index operand (a constant), then a 4-byte jump distance
  Index2Jump, // two index operands (a local slot, a constant), then a 4-byte jump distance
  Select,     // see above
  JumpTable,  // see above
};

// "OP_CONSTANT", ...
std::string_view opcodeName(OpCode op);
OperandShape operandShape(OpCode op);

// Sizes of the two operand encodings.
inline constexpr std::size_t kNarrowIndexBytes = 1;
inline constexpr std::size_t kWideIndexBytes = 4;
inline constexpr std::size_t kJumpBytes = 4;

// Select case kinds (OP_SELECT's kind bytes).
inline constexpr std::uint8_t kSelectRecv = 0;
inline constexpr std::uint8_t kSelectSend = 1;
inline constexpr std::uint8_t kSelectHasDefault = 1;  // flags bit

inline std::uint32_t readU32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
         std::uint32_t(p[3]) << 24;
}

// One decoded instruction. For WIDE-prefixed instructions `op` is the real opcode,
// `wide` is true and `offset` is the prefix's offset.
struct Instruction {
  OpCode op = OpCode::NIL;
  bool wide = false;
  std::size_t offset = 0;  // first byte (the prefix, if any)
  std::size_t length = 0;  // all bytes, prefix and trailing tables included
  int operandCount = 0;    // index operands, plus 1 for a jump distance (the last operand)
  std::uint32_t operands[3] = {0, 0, 0};
  // SELECT: flags and the offset of the kind bytes; JUMP_TABLE: offset of the table.
  std::uint8_t selectFlags = 0;
  std::size_t tableOffset = 0;

  // Absolute target of a jump (LOOP jumps backward, every other jump forward).
  std::size_t jumpTarget() const {
    const std::uint32_t distance = operands[operandCount - 1];
    return op == OpCode::LOOP || op == OpCode::ADD_TO_LOCAL_LOOP ? offset + length - distance
                                                                  : offset + length + distance;
  }
};

// The compare-and-branch superinstructions whose right operand is a global (index operand:
// the global slot) or a local (the frame slot) instead of a constant.
inline bool comparesGlobal(OpCode op) {
  return op >= OpCode::JUMP_UNLESS_EQUAL_GLOBAL && op <= OpCode::JUMP_UNLESS_LESS_EQUAL_GLOBAL;
}
inline bool comparesLocal(OpCode op) {
  return op >= OpCode::JUMP_UNLESS_EQUAL_LOCAL && op <= OpCode::JUMP_UNLESS_LESS_EQUAL_LOCAL;
}

// Decodes the instruction at `offset`. Returns false (leaving `out` unspecified) when
// the bytes there are not a whole, well-formed instruction.
bool decode(const std::uint8_t* code, std::size_t size, std::size_t offset, Instruction& out);

// Appends `op` and its index operands to `code`: one byte each, or (when any needs more)
// a WIDE prefix and four little-endian bytes each. Returns the offset of the opcode byte.
std::size_t encode(std::vector<std::uint8_t>& code, OpCode op, std::initializer_list<std::uint32_t> operands);

}  // namespace spindle::lang
