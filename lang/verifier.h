// verifier.h: checks the structural invariants of compiled code (proto.h, opcodes.h).
//
// For a proto and every proto nested in it: every instruction decodes; every jump and
// jump-table entry lands on an instruction boundary; every constant operand is in
// range and of the kind its opcode needs; every global slot is < globalCount; every
// inline-cache slot is < icSlots and used by one instruction only; upvalue descriptors
// point at existing slots / upvalues of the enclosing function; the chunk ends with
// OP_RETURN. Returns the problems found (empty = valid). Used by lang's tests over
// everything the compiler produces; a VM may also run it on code it did not compile.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "lang/proto.h"

namespace spindle::lang {

std::vector<std::string> verify(const FunctionProto& script, std::size_t globalCount);

}  // namespace spindle::lang
