// disassembler.h: clox-style listings of compiled code (for `spindle --disasm`).
//
//   == fib ==
//   0000    2 OP_GET_LOCAL        1
//   0002    | OP_CONSTANT         0 '2'
//   0004    | OP_LESS
//   0005    | OP_JUMP_IF_FALSE    5 -> 15
//
// Each line: offset, source line ("|" when unchanged), opcode, operands. Constants are
// shown as clox prints values; global slots with their names when a GlobalTable is given;
// property instructions with their inline-cache slot ("ic N"); WIDE-prefixed
// instructions with a "WIDE " prefix. Nested functions are listed after their parent,
// depth first. Malformed code is reported in the listing, never crashes it.
#pragma once

#include <cstddef>
#include <string>

#include "lang/global_table.h"
#include "lang/proto.h"

namespace spindle::lang {

// The listing of `proto` and every function nested in it.
std::string disassemble(const FunctionProto& proto, const GlobalTable* globals = nullptr);

// Appends one instruction's line to `out`; returns the offset of the next instruction
// (the end of the chunk when the bytes there cannot be decoded).
std::size_t disassembleInstruction(const FunctionProto& proto, std::size_t offset,
                                   std::string& out, const GlobalTable* globals = nullptr);

}  // namespace spindle::lang
