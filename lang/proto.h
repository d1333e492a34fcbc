// proto.h: the compiler's output, plain C++ data with no tie to the runtime.
//
// A FunctionProto is a function's template: its bytecode (Chunk), arity, the upvalues
// its closures capture, and the number of inline-cache slots its instructions use.
// The VM turns each proto into a heap function object once, when it loads a program.
//
// Chunk invariants (checked by lang's tests over the whole corpus):
//   - `code` is a sequence of whole instructions as described in opcodes.h; every jump
//     lands on an instruction boundary inside the chunk (or at its end: never, since
//     every chunk ends with OP_RETURN).
//   - every constant operand indexes `constants`; CLOSURE's constant is a proto, CLASS,
//     METHOD, GET/SET_PROPERTY, GET_SUPER, INVOKE and SUPER_INVOKE name constants are
//     strings; CONSTANT's may be a number or a string.
//   - every inline-cache operand is < FunctionProto::icSlots, and each such instruction
//     has its own slot (slots are numbered 0..icSlots-1 in source order; a for loop's
//     increment is moved after its body, so code order may differ).
//   - `lines` maps every code offset to a source line (run-length encoded, runs sorted by
//     start offset, the first run starting at 0).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace spindle::lang {

struct FunctionProto;

// A constant: a number, a string (its bytes, not yet interned) or a nested function.
using Constant = std::variant<double, std::string, std::shared_ptr<const FunctionProto>>;

// Run-length encoded line numbers: each run says "from this code offset on, line N".
class LineTable {
 public:
  void add(std::size_t offset, int line);  // offsets must not decrease
  int lineAt(std::size_t offset) const;    // 0 when the table is empty
  // Forgets the lines of the code from `size` on (the code was cut back to `size` bytes).
  void truncate(std::size_t size);

  struct Run {
    std::uint32_t start;
    int line;
  };
  const std::vector<Run>& runs() const { return runs_; }

 private:
  std::vector<Run> runs_;
};

struct Chunk {
  std::vector<std::uint8_t> code;
  std::vector<Constant> constants;
  LineTable lines;
};

enum class FunctionKind : std::uint8_t {
  Script,       // the top level of one compile call
  Function,     // fun declarations
  Method,       // methods other than init
  Initializer,  // a class's init: returns `this` (the compiler emits that return)
};

// Where a closure's upvalue comes from when OP_CLOSURE creates it: a local slot of the
// enclosing function's frame (isLocal) or one of the enclosing closure's upvalues.
struct UpvalueDesc {
  bool isLocal;
  std::uint32_t index;
};

struct FunctionProto {
  std::string name;  // empty for the script
  // The file an imported module's code comes from, as traces name it ("lib/util.lox");
  // empty for the main script's code (its traces keep clox's format).
  std::string file;
  FunctionKind kind = FunctionKind::Script;
  std::uint32_t arity = 0;
  std::vector<UpvalueDesc> upvalues;
  std::uint32_t icSlots = 0;  // inline-cache slots used by this function's code
  Chunk chunk;
};

}  // namespace spindle::lang
