// compiler.cc: the single-pass Pratt compiler (see compiler.h).
//
// Structure, as in clox: a Parser holds the token stream and the error state; one
// FunctionState per function being compiled (a stack through `enclosing`) holds its
// proto, locals and scope depth; one ClassState per class being compiled holds whether
// it has a superclass. Expressions are compiled by parsePrecedence() driven by the
// rule table; statements by recursive descent.
//
// Stack discipline: every expression leaves exactly one value; every statement leaves
// the stack as it found it. Local slot i of a frame is locals[i] (slot 0 is the callee,
// or `this` in methods).
//
// Extensions:
//   - spawn: the call's callee and arguments are compiled as usual (a method call is
//     compiled as a property get plus a call, never as OP_INVOKE) and the final OP_CALL
//     is rewritten in place to OP_SPAWN, which has the same operands. A spawn
//     expression (`var f = spawn work(x);`, the prefix rule of `spawn`) is compiled
//     the same way and rewritten to OP_SPAWN_FIBER, which pushes the new Fiber; a
//     statement that begins with `spawn` is always the spawn statement.
//   - select: each case head (the channel, and for a send the value) is compiled where
//     it stands, followed by a jump over the case body to the next head; after the last
//     head come OP_SELECT and OP_JUMP_TABLE, whose entries point back at the bodies.
//     So the heads run in source order and the code stays single-pass.
//
// Superinstructions (a peephole over the last three instructions emitted; see
// docs/ARCHITECTURE.md): a condition (if, while, for) is consumed by POP_JUMP_IF_FALSE,
// or, when it ends with a comparison, by JUMP_UNLESS_<cmp> (compare and branch), or
// JUMP_UNLESS_<cmp>_CONSTANT k when the right operand is a constant (_GLOBAL g, _LOCAL
// slot when it is a variable read on the comparison's line); `CONSTANT k; ADD`
// and `; SUBTRACT` become ADD_CONSTANT k / SUBTRACT_CONSTANT k (k a number); `SET_x; POP`
// becomes SET_x_POP, and the statement `x = x + k;` becomes ADD_TO_x (locals, globals).
// A fused instruction behaves exactly as the sequence it replaces, so the rewrite is
// valid whenever no jump lands inside the sequence: every offset that becomes a jump
// target is recorded (markTarget; the last one recorded is never beyond the code's end),
// and nothing is fused across it. The fused instruction starts where the sequence did;
// its bytes carry the line of the part that can raise an error (fusions whose parts could
// raise errors on different lines are not made), so runtime errors keep their lines.
//
// for loops: the increment's code is moved after the body (cutCode / pasteCode).
//
// try/catch/finally (tryStatement): OP_TRY pushes a handler whose error slot is the try's
// local count; a `return` inside a try or catch block goes through the try's return path
// (pops its handler, runs its finally block), so a handler never outlives its frame.
#include "lang/compiler.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <variant>

#include "lang/flat_index.h"
#include "lang/number_format.h"
#include "lang/opcodes.h"
#include "lang/scanner.h"

namespace spindle::lang {

namespace {

enum Precedence : int {
  PREC_NONE,
  PREC_ASSIGNMENT,  // =
  PREC_OR,          // or
  PREC_AND,         // and
  PREC_EQUALITY,    // == !=
  PREC_COMPARISON,  // < > <= >=
  PREC_TERM,        // + -
  PREC_FACTOR,      // * / %
  PREC_UNARY,       // ! -
  PREC_CALL,        // . () []
  PREC_PRIMARY
};

struct Local {
  std::string_view name;
  int depth;  // -1 while declared but not yet initialised
  bool isCaptured;
};

// One instruction as the peephole sees it.
struct Emitted {
  OpCode op = OpCode::NIL;
  std::size_t start = SIZE_MAX;   // its first byte (the WIDE prefix, if any)
  std::size_t opByte = SIZE_MAX;  // its opcode byte
  std::size_t end = SIZE_MAX;     // one past its last byte
  std::uint32_t operand = 0;      // its first index operand
  int line = 0;
};

// A function's locals, innermost last. Name lookups scan from the top while there are
// at most kScannedLocals (clox's fast path); past that, `byName` (a FlatIndex) maps each
// name to its innermost slot and `shadowed[i]` is the slot local i hides (the next-inner
// local of its name, or kNone), so lookups in huge scopes stay O(1) and compiling n
// locals is linear. Invariant: when byName is built, it holds exactly the innermost slot
// of every name in `slots` (every push and pop goes through push/pop).
class LocalStack {
 public:
  static constexpr std::size_t kScannedLocals = 32;
  std::size_t size() const { return slots_.size(); }
  bool empty() const { return slots_.empty(); }
  Local& operator[](std::size_t i) { return slots_[i]; }
  Local& back() { return slots_.back(); }
  void push(const Local& l) {
    slots_.push_back(l);
    shadowed_.push_back(FlatIndex::kNone);
    if (byName_.size() != 0) {
      index(slots_.size() - 1);
    } else if (slots_.size() > kScannedLocals) {
      for (std::size_t i = 0; i < slots_.size(); ++i) index(i);
    }
  }
  void pop() {
    if (byName_.size() != 0) {
      const std::string_view name = slots_.back().name;
      const std::uint32_t hidden = shadowed_.back();
      const std::uint32_t hash = FlatIndex::hashText(name);
      auto same = [&](std::uint32_t p) { return slots_[p].name == name; };
      if (hidden == FlatIndex::kNone) {
        byName_.erase(hash, same);
      } else {
        *byName_.insert(hash, same, hidden).first = hidden;
      }
    }
    slots_.pop_back();
    shadowed_.pop_back();
  }
  // The innermost local named `name`, or -1.
  std::int64_t find(std::string_view name) const {
    if (byName_.size() != 0) {
      const std::uint32_t i =
          byName_.find(FlatIndex::hashText(name), [&](std::uint32_t p) { return slots_[p].name == name; });
      return i == FlatIndex::kNone ? -1 : static_cast<std::int64_t>(i);
    }
    for (std::size_t i = slots_.size(); i-- > 0;) {
      if (slots_[i].name == name) return static_cast<std::int64_t>(i);
    }
    return -1;
  }

 private:
  // Makes slot i the innermost of its name.
  void index(std::size_t i) {
    const std::string_view name = slots_[i].name;
    const auto slot = static_cast<std::uint32_t>(i);
    auto [entry, added] =
        byName_.insert(FlatIndex::hashText(name), [&](std::uint32_t p) { return slots_[p].name == name; }, slot);
    if (!added) {
      shadowed_[i] = *entry;
      *entry = slot;
    }
  }

  std::vector<Local> slots_;
  std::vector<std::uint32_t> shadowed_;
  FlatIndex byName_;
};

struct FunctionState {
  FunctionState* enclosing = nullptr;
  std::shared_ptr<FunctionProto> proto;
  LocalStack locals;
  int scopeDepth = 0;
  // The number and string constants of proto->chunk.constants by value (numbers by
  // their bits), so each is stored once.
  FlatIndex numberConstants;
  FlatIndex stringConstants;
  // Peephole: the last instructions emitted by emitOp / emitJump (recent[0] the newest)
  // and the offset most recently made a jump target.
  Emitted recent[3];
  std::size_t lastTarget = SIZE_MAX;
  // The try statements whose body or catch block encloses the code being compiled,
  // innermost last: a `return` inside one jumps to its return path (returnTop).
  struct Try {
    bool inBody = true;  // false while compiling its catch block
    // The jumps of the `return`s inside its body / its catch block to its return paths.
    std::vector<std::size_t> bodyReturns, catchReturns;
  };
  std::vector<Try> tries;
};

struct ClassState {
  ClassState* enclosing = nullptr;
  bool hasSuperclass = false;
};

// The head of one select case while it is being parsed.
struct SelectHead {
  bool done = false;  // the .recv() / .send(x) has been parsed
  std::uint8_t kind = kSelectRecv;
};

constexpr std::size_t kNoOffset = SIZE_MAX;

std::vector<std::string> topLevelNames(std::string_view source);

class Parser;
using ParseFn = void (Parser::*)(bool canAssign);

struct ParseRule {
  ParseFn prefix;
  ParseFn infix;
  Precedence precedence;
};

class Parser {
 public:
  Parser(std::string_view source, GlobalTable& globals, const ModuleOptions* module = nullptr)
      : scanner_(source), globals_(globals), module_(module) {
    if (module_ != nullptr) moduleNames_ = topLevelNames(source);
  }
  const std::vector<std::string>& moduleNames() const { return moduleNames_; }

  CompileResult run();

  // Parse functions referenced from the rule table.
  void grouping(bool canAssign);
  void number(bool canAssign);
  void string(bool canAssign);
  void literal(bool canAssign);
  void variable(bool canAssign);
  void unary(bool canAssign);
  void binary(bool canAssign);
  void and_(bool canAssign);
  void or_(bool canAssign);
  void call(bool canAssign);
  void dot(bool canAssign);
  void this_(bool canAssign);
  void super_(bool canAssign);
  void spawnExpression(bool canAssign);
  void list(bool canAssign);
  void index(bool canAssign);
  void map(bool canAssign);

 private:
  // --- tokens and errors --------------------------------------------------------
  void advance();
  void consume(TokenType type, const char* message);
  bool check(TokenType type) const { return current_.type == type; }
  bool match(TokenType type);
  Token peekAfterCurrent() const { return Scanner(scanner_).next(); }
  void errorAt(const Token& token, const char* message);
  void error(const char* message) { errorAt(previous_, message); }
  void errorAtCurrent(const char* message) { errorAt(current_, message); }
  void synchronize();
  bool enterNesting();

  // --- emitting -----------------------------------------------------------------
  Chunk& chunk() { return fn_->proto->chunk; }
  void emitByte(std::uint8_t byte);
  void emitByte(std::uint8_t byte, int line);
  void emitOp(OpCode op, std::initializer_list<std::uint32_t> operands = {});
  void emitOp(OpCode op, std::initializer_list<std::uint32_t> operands, int line);
  std::size_t emitJump(OpCode op);
  // Peephole (see the top of the file).
  void markTarget() { fn_->lastTarget = chunk().code.size(); }
  void record(OpCode op, std::size_t start, std::size_t opByte, std::uint32_t operand, int line);
  void forgetRecent() { fn_->recent[0] = Emitted{}; }
  bool fusable(int n) const;
  bool lastIs(OpCode op) const { return fusable(1) && fn_->recent[0].op == op; }
  void rewriteLast(OpCode op);
  void emitFoldingConstant(OpCode op, OpCode withConstant);
  std::size_t emitConditionJump();
  void emitPop();
  // Code motion (for loops): removes the code from `start` on, returning it with the line
  // of each byte; pasteCode appends such code back (nothing is fused across either edge).
  struct CodeRange {
    std::vector<std::uint8_t> code;
    std::vector<int> lines;
  };
  CodeRange cutCode(std::size_t start);
  void pasteCode(const CodeRange& range);
  void patchJump(std::size_t operandOffset);
  void patchU32(std::size_t at, std::uint32_t value);
  void emitLoop(std::size_t loopStart);
  void emitIncrementLoop(const CodeRange& increment, std::size_t loopStart);
  void emitReturn();
  std::uint32_t newIcSlot() { return fn_->proto->icSlots++; }
  std::uint32_t makeConstant(Constant value);
  bool isNumberConstant(std::uint32_t index) const {
    return std::holds_alternative<double>(fn_->proto->chunk.constants[index]);
  }
  std::uint32_t numberConstant(double value);
  std::uint32_t stringConstant(std::string_view text);
  std::uint32_t identifierConstant(const Token& name) { return stringConstant(name.lexeme); }

  // --- functions and scopes -----------------------------------------------------
  void beginFunction(FunctionState& state, FunctionKind kind, std::string_view name);
  std::shared_ptr<FunctionProto> endFunction();
  void beginScope() { ++fn_->scopeDepth; }
  void endScope();

  // --- variables ----------------------------------------------------------------
  std::int64_t resolveLocal(FunctionState& state, const Token& name);
  std::int64_t addUpvalue(FunctionState& state, std::uint32_t index, bool isLocal);
  std::int64_t resolveUpvalue(FunctionState& state, const Token& name);
  void addLocal(const Token& name);
  void declareVariable();
  std::uint32_t parseVariable(const char* message);
  void markInitialized();
  void defineVariable(std::uint32_t global);
  void namedVariable(const Token& name, bool canAssign);
  void emitStore(const Token& name);
  std::uint32_t argumentList();

  // --- expressions --------------------------------------------------------------
  void expression();
  void parsePrecedence(Precedence precedence);

  // --- declarations and statements ----------------------------------------------
  void declaration();
  void classDeclaration();
  void method();
  void funDeclaration();
  void function(FunctionKind kind);
  void varDeclaration();
  void statement();
  void block();
  void printStatement();
  void expressionStatement();
  void ifStatement();
  void whileStatement();
  void forStatement();
  void forInStatement(Token name);
  void finishVarDeclaration(std::uint32_t global);
  void returnStatement();
  void spawnStatement();
  // The call chain after `spawn`, its final call rewritten to `op`; false after an error.
  bool spawnCall(OpCode op);
  void selectStatement();
  void tryStatement();
  void returnTop();
  void emitReturnValue();
  void throwStatement();
  void selectCaseBody();

  // A global's slot: in a module, a name it declares at its top level is its own
  // (GlobalTable's name plus the module's suffix); any other is the program's.
  std::uint32_t globalSlot(std::string_view name) {
    if (module_ != nullptr &&
        std::find(moduleNames_.begin(), moduleNames_.end(), name) != moduleNames_.end()) {
      return globals_.slotFor(std::string(name) + module_->suffix);
    }
    return globals_.slotFor(name);
  }
  void importDeclaration();

  Scanner scanner_;
  GlobalTable& globals_;
  const ModuleOptions* module_ = nullptr;
  std::vector<std::string> moduleNames_;
  Token current_;
  Token previous_;
  bool panicMode_ = false;
  // Set by enterNesting on too much nesting: the parse is over, errors are not reported.
  bool abandoned_ = false;
  std::vector<Diagnostic> diagnostics_;
  FunctionState* fn_ = nullptr;
  ClassState* class_ = nullptr;
  int nesting_ = 0;

  // spawn: true while parsing the outermost call chain of a spawn statement.
  bool spawnChain_ = false;
  // The first token of the expression statement being compiled (Parser::map).
  const char* expressionStatementStart_ = nullptr;
  // The last OP_CALL emitted: where it starts (WIDE prefix included) and ends.
  std::size_t lastCallStart_ = kNoOffset;
  std::size_t lastCallEnd_ = kNoOffset;
  // select: the case head whose outermost call chain is being parsed.
  SelectHead* selectHead_ = nullptr;
};

// The rule table, indexed by TokenType.
const ParseRule& getRule(TokenType type) {
  static const auto rules = [] {
    std::vector<ParseRule> r(static_cast<std::size_t>(TokenType::Eof) + 1,
                             ParseRule{nullptr, nullptr, PREC_NONE});
    auto set = [&](TokenType t, ParseFn prefix, ParseFn infix, Precedence p) {
      r[static_cast<std::size_t>(t)] = ParseRule{prefix, infix, p};
    };
    using P = Parser;
    set(TokenType::LeftParen, &P::grouping, &P::call, PREC_CALL);
    set(TokenType::LeftBracket, &P::list, &P::index, PREC_CALL);
    set(TokenType::LeftBrace, &P::map, nullptr, PREC_NONE);  // a statement's `{` is a block
    set(TokenType::Dot, nullptr, &P::dot, PREC_CALL);
    set(TokenType::Minus, &P::unary, &P::binary, PREC_TERM);
    set(TokenType::Plus, nullptr, &P::binary, PREC_TERM);
    set(TokenType::Slash, nullptr, &P::binary, PREC_FACTOR);
    set(TokenType::Star, nullptr, &P::binary, PREC_FACTOR);
    set(TokenType::Percent, nullptr, &P::binary, PREC_FACTOR);
    set(TokenType::Bang, &P::unary, nullptr, PREC_NONE);
    set(TokenType::BangEqual, nullptr, &P::binary, PREC_EQUALITY);
    set(TokenType::EqualEqual, nullptr, &P::binary, PREC_EQUALITY);
    set(TokenType::Greater, nullptr, &P::binary, PREC_COMPARISON);
    set(TokenType::GreaterEqual, nullptr, &P::binary, PREC_COMPARISON);
    set(TokenType::Less, nullptr, &P::binary, PREC_COMPARISON);
    set(TokenType::LessEqual, nullptr, &P::binary, PREC_COMPARISON);
    set(TokenType::Identifier, &P::variable, nullptr, PREC_NONE);
    set(TokenType::String, &P::string, nullptr, PREC_NONE);
    set(TokenType::Number, &P::number, nullptr, PREC_NONE);
    set(TokenType::And, nullptr, &P::and_, PREC_AND);
    set(TokenType::Or, nullptr, &P::or_, PREC_OR);
    set(TokenType::False, &P::literal, nullptr, PREC_NONE);
    set(TokenType::True, &P::literal, nullptr, PREC_NONE);
    set(TokenType::Nil, &P::literal, nullptr, PREC_NONE);
    set(TokenType::This, &P::this_, nullptr, PREC_NONE);
    set(TokenType::Super, &P::super_, nullptr, PREC_NONE);
    set(TokenType::Spawn, &P::spawnExpression, nullptr, PREC_NONE);
    return r;
  }();
  return rules[static_cast<std::size_t>(type)];
}

Token syntheticToken(std::string_view text) { return Token{TokenType::Identifier, text, 0}; }

// --- tokens and errors ------------------------------------------------------------

void Parser::advance() {
  previous_ = current_;
  for (;;) {
    current_ = scanner_.next();
    if (current_.type != TokenType::Error) break;
    errorAtCurrent(current_.lexeme.data());
  }
}

void Parser::consume(TokenType type, const char* message) {
  if (current_.type == type) {
    advance();
    return;
  }
  errorAtCurrent(message);
}

bool Parser::match(TokenType type) {
  if (!check(type)) return false;
  advance();
  return true;
}

void Parser::errorAt(const Token& token, const char* message) {
  if (panicMode_ || abandoned_) return;
  panicMode_ = true;
  Diagnostic d;
  d.line = token.line;
  if (token.type == TokenType::Eof) {
    d.where = " at end";
  } else if (token.type != TokenType::Error) {
    d.where = " at '" + std::string(token.lexeme) + "'";
  }
  d.message = message;
  diagnostics_.push_back(std::move(d));
}

void Parser::synchronize() {
  panicMode_ = false;
  while (current_.type != TokenType::Eof) {
    if (previous_.type == TokenType::Semicolon) return;
    switch (current_.type) {
      case TokenType::Class:
      case TokenType::Fun:
      case TokenType::Var:
      case TokenType::For:
      case TokenType::If:
      case TokenType::While:
      case TokenType::Print:
      case TokenType::Return:
      case TokenType::Try:
      case TokenType::Throw:
      case TokenType::Spawn:
      case TokenType::Select:
      case TokenType::Case:
      case TokenType::Default:
      case TokenType::Import:
        return;
      default:
        break;
    }
    advance();
  }
}

// Counts one level of nesting (declarations, statements, expressions: every recursion of
// the parser passes through one of them); on too much, reports it once and abandons the
// parse: the rest of the source is skipped to Eof and no further error is reported, so
// that the enclosing levels unwind without one "Expect '}'" per level. Returns false
// then. Callers pair a true with --nesting_.
bool Parser::enterNesting() {
  if (nesting_ >= kMaxNesting) {
    errorAtCurrent("Too much nesting.");
    abandoned_ = true;
    while (!check(TokenType::Eof)) advance();
    return false;
  }
  ++nesting_;
  return true;
}

// --- emitting -----------------------------------------------------------------------

void Parser::emitByte(std::uint8_t byte) { emitByte(byte, previous_.line); }

void Parser::emitByte(std::uint8_t byte, int line) {
  Chunk& c = chunk();
  c.lines.add(c.code.size(), line);
  c.code.push_back(byte);
}

void Parser::emitOp(OpCode op, std::initializer_list<std::uint32_t> operands) {
  emitOp(op, operands, previous_.line);
}

void Parser::emitOp(OpCode op, std::initializer_list<std::uint32_t> operands, int line) {
  Chunk& c = chunk();
  const std::size_t start = c.code.size();
  c.lines.add(start, line);  // one run covers the whole instruction
  const std::size_t opByte = encode(c.code, op, operands);
  record(op, start, opByte, operands.size() > 0 ? *operands.begin() : 0, line);
}

// Pushes the instruction just emitted (ending at the code's end) into the window.
void Parser::record(OpCode op, std::size_t start, std::size_t opByte, std::uint32_t operand,
                    int line) {
  Emitted* recent = fn_->recent;
  recent[2] = recent[1];
  recent[1] = recent[0];
  recent[0] = Emitted{op, start, opByte, chunk().code.size(), operand, line};
}

// True when the last `n` instructions were emitted back to back, nothing came after them,
// and no jump lands after the first of them (on the others or right after the last):
// then they and the next instruction may be fused.
bool Parser::fusable(int n) const {
  const Emitted* recent = fn_->recent;
  const std::size_t end = fn_->proto->chunk.code.size();
  if (recent[0].end != end) return false;
  for (int i = 1; i < n; ++i) {
    if (recent[i].end != recent[i - 1].start) return false;
  }
  const std::size_t target = fn_->lastTarget;
  return target == kNoOffset || target <= recent[n - 1].start;
}

// Replaces the last instruction's opcode (same operands).
void Parser::rewriteLast(OpCode op) {
  chunk().code[fn_->recent[0].opByte] = static_cast<std::uint8_t>(op);
  fn_->recent[0].op = op;
}

// `op` (ADD or SUBTRACT), or `CONSTANT k; op` fused into `withConstant k` when k is a
// number and both are on one line (an error of the fused instruction reports the
// constant's line).
void Parser::emitFoldingConstant(OpCode op, OpCode withConstant) {
  if (lastIs(OpCode::CONSTANT) && isNumberConstant(fn_->recent[0].operand) &&
      fn_->recent[0].line == previous_.line) {
    rewriteLast(withConstant);
  } else {
    emitOp(op);
  }
}

// The jump that consumes a condition: a comparison just before it becomes the matching
// JUMP_UNLESS_<cmp> (1 + 4 bytes, all with the comparison's line), or, when its right
// operand is a constant (a number, except for == and !=), `CONSTANT k; <cmp>` becomes
// JUMP_UNLESS_<cmp>_CONSTANT k (also with the comparison's line); when its right operand
// is a global or local read on the comparison's line (an undefined global's error keeps
// its line), `GET_GLOBAL g; <cmp>` becomes JUMP_UNLESS_<cmp>_GLOBAL g and `GET_LOCAL
// slot; <cmp>` JUMP_UNLESS_<cmp>_LOCAL slot (`i < n` of a loop); anything else is
// followed by POP_JUMP_IF_FALSE. Returns the jump operand's offset (for patchJump).
std::size_t Parser::emitConditionJump() {
  static constexpr struct {
    OpCode compare, fused, withConstant, withGlobal, withLocal;
  } kFused[] = {
      {OpCode::EQUAL, OpCode::JUMP_UNLESS_EQUAL, OpCode::JUMP_UNLESS_EQUAL_CONSTANT,
       OpCode::JUMP_UNLESS_EQUAL_GLOBAL, OpCode::JUMP_UNLESS_EQUAL_LOCAL},
      {OpCode::NOT_EQUAL, OpCode::JUMP_UNLESS_NOT_EQUAL, OpCode::JUMP_UNLESS_NOT_EQUAL_CONSTANT,
       OpCode::JUMP_UNLESS_NOT_EQUAL_GLOBAL, OpCode::JUMP_UNLESS_NOT_EQUAL_LOCAL},
      {OpCode::GREATER, OpCode::JUMP_UNLESS_GREATER, OpCode::JUMP_UNLESS_GREATER_CONSTANT,
       OpCode::JUMP_UNLESS_GREATER_GLOBAL, OpCode::JUMP_UNLESS_GREATER_LOCAL},
      {OpCode::GREATER_EQUAL, OpCode::JUMP_UNLESS_GREATER_EQUAL,
       OpCode::JUMP_UNLESS_GREATER_EQUAL_CONSTANT, OpCode::JUMP_UNLESS_GREATER_EQUAL_GLOBAL,
       OpCode::JUMP_UNLESS_GREATER_EQUAL_LOCAL},
      {OpCode::LESS, OpCode::JUMP_UNLESS_LESS, OpCode::JUMP_UNLESS_LESS_CONSTANT,
       OpCode::JUMP_UNLESS_LESS_GLOBAL, OpCode::JUMP_UNLESS_LESS_LOCAL},
      {OpCode::LESS_EQUAL, OpCode::JUMP_UNLESS_LESS_EQUAL, OpCode::JUMP_UNLESS_LESS_EQUAL_CONSTANT,
       OpCode::JUMP_UNLESS_LESS_EQUAL_GLOBAL, OpCode::JUMP_UNLESS_LESS_EQUAL_LOCAL},
  };
  const Emitted* recent = fn_->recent;
  // Replaces `X operand; <cmp>` (the last two instructions) with `fused operand` and its
  // jump operand, every byte with the comparison's line; returns the jump operand's offset.
  auto fuseOperand = [&](OpCode fused) {
    const std::uint32_t operand = recent[1].operand;
    const int line = recent[0].line;
    const std::size_t start = recent[1].start;
    chunk().code.resize(start);
    chunk().lines.truncate(start);
    fn_->recent[0] = fn_->recent[1] = fn_->recent[2] = Emitted{};
    emitOp(fused, {operand}, line);
    std::size_t at = chunk().code.size();
    for (int i = 0; i < 4; ++i) emitByte(0xff, line);
    fn_->recent[0].end = chunk().code.size();
    return at;
  };
  for (const auto& f : kFused) {
    if (!lastIs(f.compare)) continue;
    const bool equality = f.compare == OpCode::EQUAL || f.compare == OpCode::NOT_EQUAL;
    if (fusable(2) && recent[1].op == OpCode::CONSTANT &&
        (equality || isNumberConstant(recent[1].operand))) {
      return fuseOperand(f.withConstant);
    }
    if (fusable(2) && (recent[1].op == OpCode::GET_GLOBAL || recent[1].op == OpCode::GET_LOCAL) &&
        recent[1].line == recent[0].line) {
      return fuseOperand(recent[1].op == OpCode::GET_GLOBAL ? f.withGlobal : f.withLocal);
    }
    rewriteLast(f.fused);
    std::size_t at = chunk().code.size();
    for (int i = 0; i < 4; ++i) emitByte(0xff, fn_->recent[0].line);
    fn_->recent[0].end = chunk().code.size();
    return at;
  }
  return emitJump(OpCode::POP_JUMP_IF_FALSE);
}

Parser::CodeRange Parser::cutCode(std::size_t start) {
  Chunk& c = chunk();
  CodeRange range;
  range.code.assign(c.code.begin() + static_cast<std::ptrdiff_t>(start), c.code.end());
  for (std::size_t i = start; i < c.code.size(); ++i) range.lines.push_back(c.lines.lineAt(i));
  c.code.resize(start);
  c.lines.truncate(start);
  forgetRecent();
  markTarget();  // targets recorded inside the range are gone; none is beyond the end
  return range;
}

void Parser::pasteCode(const CodeRange& range) {
  markTarget();
  for (std::size_t i = 0; i < range.code.size(); ++i) emitByte(range.code[i], range.lines[i]);
  forgetRecent();
}

// POP, or `SET_x i; POP` fused into `SET_x_POP i` (`SET_INDEX; POP` into SET_INDEX_POP),
// or the whole statement `x = x + k;`
// (`GET_x i; ADD_CONSTANT k; SET_x i; POP`, all on one line) into `ADD_TO_x i k`.
void Parser::emitPop() {
  static constexpr struct {
    OpCode get, set, setPop, addTo;
  } kFused[] = {
      {OpCode::GET_LOCAL, OpCode::SET_LOCAL, OpCode::SET_LOCAL_POP, OpCode::ADD_TO_LOCAL},
      {OpCode::GET_GLOBAL, OpCode::SET_GLOBAL, OpCode::SET_GLOBAL_POP, OpCode::ADD_TO_GLOBAL},
      {OpCode::GET_UPVALUE, OpCode::SET_UPVALUE, OpCode::SET_UPVALUE_POP, OpCode::NIL},
  };
  const Emitted* recent = fn_->recent;
  for (const auto& f : kFused) {
    if (!lastIs(f.set)) continue;
    if (f.addTo != OpCode::NIL && fusable(3) && recent[2].op == f.get &&
        recent[2].operand == recent[0].operand && recent[1].op == OpCode::ADD_CONSTANT &&
        recent[2].line == recent[1].line) {
      const std::uint32_t variable = recent[0].operand, constant = recent[1].operand;
      const int line = recent[2].line;
      const std::size_t start = recent[2].start;
      chunk().code.resize(start);
      chunk().lines.truncate(start);
      fn_->recent[0] = fn_->recent[1] = fn_->recent[2] = Emitted{};
      emitOp(f.addTo, {variable, constant}, line);
      return;
    }
    rewriteLast(f.setPop);
    return;
  }
  if (lastIs(OpCode::SET_INDEX)) {
    rewriteLast(OpCode::SET_INDEX_POP);
    return;
  }
  emitOp(OpCode::POP);
}

std::size_t Parser::emitJump(OpCode op) {
  const std::size_t start = chunk().code.size();
  emitByte(static_cast<std::uint8_t>(op));
  std::size_t at = chunk().code.size();
  for (int i = 0; i < 4; ++i) emitByte(0xff);
  record(op, start, start, 0, previous_.line);
  return at;
}

void Parser::patchU32(std::size_t at, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) chunk().code[at + i] = static_cast<std::uint8_t>(value >> (8 * i));
}

void Parser::patchJump(std::size_t operandOffset) {
  std::size_t distance = chunk().code.size() - (operandOffset + kJumpBytes);
  patchU32(operandOffset, static_cast<std::uint32_t>(distance));
  markTarget();
}

void Parser::emitLoop(std::size_t loopStart) {
  emitByte(static_cast<std::uint8_t>(OpCode::LOOP));
  std::size_t distance = chunk().code.size() + kJumpBytes - loopStart;
  for (int i = 0; i < 4; ++i) emitByte(static_cast<std::uint8_t>(distance >> (8 * i)));
}

void Parser::emitReturnValue() {
  if (fn_->proto->kind == FunctionKind::Initializer) {
    emitOp(OpCode::GET_LOCAL, {0});
  } else {
    emitOp(OpCode::NIL);
  }
}

void Parser::emitReturn() {
  emitReturnValue();
  emitOp(OpCode::RETURN);
}

std::uint32_t Parser::makeConstant(Constant value) {
  auto& constants = chunk().constants;
  constants.push_back(std::move(value));
  return static_cast<std::uint32_t>(constants.size() - 1);
}

std::uint32_t Parser::numberConstant(double value) {
  const auto& constants = chunk().constants;
  auto same = [&](std::uint32_t p) {
    const double* d = std::get_if<double>(&constants[p]);
    return d != nullptr && std::memcmp(d, &value, sizeof value) == 0;
  };
  const auto next = static_cast<std::uint32_t>(constants.size());
  const auto [entry, added] = fn_->numberConstants.insert(FlatIndex::hashNumber(value), same, next);
  const std::uint32_t index = *entry;
  if (added) makeConstant(value);
  return index;
}

std::uint32_t Parser::stringConstant(std::string_view text) {
  const auto& constants = chunk().constants;
  auto same = [&](std::uint32_t p) {
    const std::string* s = std::get_if<std::string>(&constants[p]);
    return s != nullptr && *s == text;
  };
  const auto next = static_cast<std::uint32_t>(constants.size());
  const auto [entry, added] = fn_->stringConstants.insert(FlatIndex::hashText(text), same, next);
  const std::uint32_t index = *entry;
  if (added) makeConstant(std::string(text));
  return index;
}

// --- functions and scopes -----------------------------------------------------------

void Parser::beginFunction(FunctionState& state, FunctionKind kind, std::string_view name) {
  state.enclosing = fn_;
  state.proto = std::make_shared<FunctionProto>();
  state.proto->kind = kind;
  state.proto->name = std::string(name);
  if (module_ != nullptr) state.proto->file = module_->file;
  fn_ = &state;
  // Slot 0 holds the callee, or the receiver in methods (named "this" so that `this`
  // resolves to it; "" can never be referenced).
  Local slot0{"", 0, false};
  if (kind == FunctionKind::Method || kind == FunctionKind::Initializer) slot0.name = "this";
  state.locals.push(slot0);
}

std::shared_ptr<FunctionProto> Parser::endFunction() {
  emitReturn();
  std::shared_ptr<FunctionProto> proto = std::move(fn_->proto);
  fn_ = fn_->enclosing;
  return proto;
}

void Parser::endScope() {
  --fn_->scopeDepth;
  auto& locals = fn_->locals;
  while (!locals.empty() && locals.back().depth > fn_->scopeDepth) {
    emitOp(locals.back().isCaptured ? OpCode::CLOSE_UPVALUE : OpCode::POP);
    locals.pop();
  }
}

// --- variables ----------------------------------------------------------------------

std::int64_t Parser::resolveLocal(FunctionState& state, const Token& name) {
  const std::int64_t i = state.locals.find(name.lexeme);
  if (i != -1 && state.locals[static_cast<std::size_t>(i)].depth == -1) {
    error("Can't read local variable in its own initializer.");
  }
  return i;
}

std::int64_t Parser::addUpvalue(FunctionState& state, std::uint32_t index, bool isLocal) {
  auto& upvalues = state.proto->upvalues;
  for (std::size_t i = 0; i < upvalues.size(); ++i) {
    if (upvalues[i].index == index && upvalues[i].isLocal == isLocal) {
      return static_cast<std::int64_t>(i);
    }
  }
  upvalues.push_back(UpvalueDesc{isLocal, index});
  return static_cast<std::int64_t>(upvalues.size() - 1);
}

std::int64_t Parser::resolveUpvalue(FunctionState& state, const Token& name) {
  if (state.enclosing == nullptr) return -1;
  std::int64_t local = resolveLocal(*state.enclosing, name);
  if (local != -1) {
    state.enclosing->locals[static_cast<std::size_t>(local)].isCaptured = true;
    return addUpvalue(state, static_cast<std::uint32_t>(local), true);
  }
  std::int64_t upvalue = resolveUpvalue(*state.enclosing, name);
  if (upvalue != -1) return addUpvalue(state, static_cast<std::uint32_t>(upvalue), false);
  return -1;
}

void Parser::addLocal(const Token& name) { fn_->locals.push(Local{name.lexeme, -1, false}); }

// Locals are pushed in scope order (depths never decrease toward the top, -1 being the
// current scope's), so the name is in this scope iff its innermost local is.
void Parser::declareVariable() {
  if (fn_->scopeDepth == 0) return;
  const Token& name = previous_;
  const std::int64_t i = fn_->locals.find(name.lexeme);
  if (i != -1) {
    const int depth = fn_->locals[static_cast<std::size_t>(i)].depth;
    if (depth == -1 || depth >= fn_->scopeDepth) error("Already a variable with this name in this scope.");
  }
  addLocal(name);
}

std::uint32_t Parser::parseVariable(const char* message) {
  consume(TokenType::Identifier, message);
  declareVariable();
  if (fn_->scopeDepth > 0) return 0;
  return globalSlot(previous_.lexeme);
}

void Parser::markInitialized() {
  if (fn_->scopeDepth == 0) return;
  fn_->locals.back().depth = fn_->scopeDepth;
}

void Parser::defineVariable(std::uint32_t global) {
  if (fn_->scopeDepth > 0) {
    markInitialized();
    return;
  }
  emitOp(OpCode::DEFINE_GLOBAL, {global});
}

void Parser::namedVariable(const Token& name, bool canAssign) {
  OpCode getOp, setOp;
  std::int64_t arg = resolveLocal(*fn_, name);
  if (arg != -1) {
    getOp = OpCode::GET_LOCAL;
    setOp = OpCode::SET_LOCAL;
  } else if ((arg = resolveUpvalue(*fn_, name)) != -1) {
    getOp = OpCode::GET_UPVALUE;
    setOp = OpCode::SET_UPVALUE;
  } else {
    arg = globalSlot(name.lexeme);
    getOp = OpCode::GET_GLOBAL;
    setOp = OpCode::SET_GLOBAL;
  }
  auto operand = static_cast<std::uint32_t>(arg);
  if (canAssign && match(TokenType::Equal)) {
    expression();
    emitOp(setOp, {operand});
  } else {
    emitOp(getOp, {operand});
  }
}

// Stores the value on top of the stack into the variable `name` (leaving it there).
void Parser::emitStore(const Token& name) {
  std::int64_t arg = resolveLocal(*fn_, name);
  OpCode op = OpCode::SET_LOCAL;
  if (arg == -1) {
    arg = resolveUpvalue(*fn_, name);
    op = OpCode::SET_UPVALUE;
  }
  if (arg == -1) {
    arg = globalSlot(name.lexeme);
    op = OpCode::SET_GLOBAL;
  }
  emitOp(op, {static_cast<std::uint32_t>(arg)});
}

std::uint32_t Parser::argumentList() {
  std::uint32_t argc = 0;
  if (!check(TokenType::RightParen)) {
    do {
      expression();
      ++argc;
    } while (match(TokenType::Comma));
  }
  consume(TokenType::RightParen, "Expect ')' after arguments.");
  return argc;
}

// --- expressions --------------------------------------------------------------------

void Parser::expression() {
  // A nested expression is never the outermost chain of a spawn or select head.
  bool savedSpawn = spawnChain_;
  SelectHead* savedHead = selectHead_;
  spawnChain_ = false;
  selectHead_ = nullptr;
  parsePrecedence(PREC_ASSIGNMENT);
  spawnChain_ = savedSpawn;
  selectHead_ = savedHead;
}

void Parser::parsePrecedence(Precedence precedence) {
  if (!enterNesting()) return;
  advance();
  ParseFn prefix = getRule(previous_.type).prefix;
  if (prefix == nullptr) {
    error("Expect expression.");
    --nesting_;
    return;
  }
  bool canAssign = precedence <= PREC_ASSIGNMENT;
  (this->*prefix)(canAssign);

  while (precedence <= getRule(current_.type).precedence) {
    if (selectHead_ != nullptr && selectHead_->done) break;
    advance();
    (this->*getRule(previous_.type).infix)(canAssign);
  }
  if (canAssign && match(TokenType::Equal)) error("Invalid assignment target.");
  --nesting_;
}

void Parser::grouping(bool) {
  expression();
  consume(TokenType::RightParen, "Expect ')' after expression.");
}

void Parser::number(bool) {
  double value = 0;
  // A number token (digits, optionally a fraction) always parses; beyond the doubles it is
  // inf (as clox's strtod reads it).
  parseNumber(previous_.lexeme, value);
  emitOp(OpCode::CONSTANT, {numberConstant(value)});
}

void Parser::string(bool) {
  std::string_view text = previous_.lexeme;
  std::string decoded;
  unescape(text.substr(1, text.size() - 2), &decoded);  // the scanner checked every escape
  emitOp(OpCode::CONSTANT, {stringConstant(decoded)});
}

void Parser::literal(bool) {
  switch (previous_.type) {
    case TokenType::False: emitOp(OpCode::FALSE); break;
    case TokenType::Nil: emitOp(OpCode::NIL); break;
    case TokenType::True: emitOp(OpCode::TRUE); break;
    default: break;
  }
}

void Parser::variable(bool canAssign) { namedVariable(previous_, canAssign); }

void Parser::unary(bool) {
  TokenType op = previous_.type;
  parsePrecedence(PREC_UNARY);
  emitOp(op == TokenType::Minus ? OpCode::NEGATE : OpCode::NOT);
}

void Parser::binary(bool) {
  TokenType op = previous_.type;
  parsePrecedence(static_cast<Precedence>(getRule(op).precedence + 1));
  switch (op) {
    case TokenType::BangEqual: emitOp(OpCode::NOT_EQUAL); break;
    case TokenType::EqualEqual: emitOp(OpCode::EQUAL); break;
    case TokenType::Greater: emitOp(OpCode::GREATER); break;
    case TokenType::GreaterEqual: emitOp(OpCode::GREATER_EQUAL); break;
    case TokenType::Less: emitOp(OpCode::LESS); break;
    case TokenType::LessEqual: emitOp(OpCode::LESS_EQUAL); break;
    case TokenType::Plus: emitFoldingConstant(OpCode::ADD, OpCode::ADD_CONSTANT); break;
    case TokenType::Minus: emitFoldingConstant(OpCode::SUBTRACT, OpCode::SUBTRACT_CONSTANT); break;
    case TokenType::Star: emitOp(OpCode::MULTIPLY); break;
    case TokenType::Slash: emitOp(OpCode::DIVIDE); break;
    case TokenType::Percent: emitOp(OpCode::MODULO); break;
    default: break;
  }
}

void Parser::and_(bool) {
  std::size_t endJump = emitJump(OpCode::JUMP_IF_FALSE);
  emitOp(OpCode::POP);
  parsePrecedence(PREC_AND);
  patchJump(endJump);
}

void Parser::or_(bool) {
  std::size_t elseJump = emitJump(OpCode::JUMP_IF_FALSE);
  std::size_t endJump = emitJump(OpCode::JUMP);
  patchJump(elseJump);
  emitOp(OpCode::POP);
  parsePrecedence(PREC_OR);
  patchJump(endJump);
}

void Parser::call(bool) {
  std::uint32_t argc = argumentList();
  lastCallStart_ = chunk().code.size();
  emitOp(OpCode::CALL, {argc});
  lastCallEnd_ = chunk().code.size();
}

void Parser::dot(bool canAssign) {
  consume(TokenType::Identifier, "Expect property name after '.'.");
  Token name = previous_;

  // The channel operation of a select case head: `CHANNEL.recv()` / `CHANNEL.send(v)`.
  if (selectHead_ != nullptr && check(TokenType::LeftParen) &&
      (name.lexeme == "recv" || name.lexeme == "send")) {
    SelectHead* head = selectHead_;
    advance();  // '('
    if (name.lexeme == "send") {
      head->kind = kSelectSend;
      expression();
    } else {
      head->kind = kSelectRecv;
    }
    consume(TokenType::RightParen, "Expect ')' after arguments.");
    head->done = true;
    return;
  }

  std::uint32_t constant = identifierConstant(name);
  if (canAssign && match(TokenType::Equal)) {
    expression();
    emitOp(OpCode::SET_PROPERTY, {constant, newIcSlot()});
  } else if (!spawnChain_ && match(TokenType::LeftParen)) {
    std::uint32_t argc = argumentList();
    emitOp(OpCode::INVOKE, {constant, argc, newIcSlot()});
  } else {
    emitOp(OpCode::GET_PROPERTY, {constant, newIcSlot()});
  }
}

void Parser::this_(bool) {
  if (class_ == nullptr) {
    error("Can't use 'this' outside of a class.");
    return;
  }
  variable(false);
}

void Parser::super_(bool) {
  if (class_ == nullptr) {
    error("Can't use 'super' outside of a class.");
  } else if (!class_->hasSuperclass) {
    error("Can't use 'super' in a class with no superclass.");
  }
  consume(TokenType::Dot, "Expect '.' after 'super'.");
  consume(TokenType::Identifier, "Expect superclass method name.");
  std::uint32_t name = identifierConstant(previous_);
  if (class_ == nullptr || !class_->hasSuperclass) return;  // nothing to resolve against

  namedVariable(syntheticToken("this"), false);
  if (!spawnChain_ && match(TokenType::LeftParen)) {
    std::uint32_t argc = argumentList();
    namedVariable(syntheticToken("super"), false);
    emitOp(OpCode::SUPER_INVOKE, {name, argc, newIcSlot()});
  } else {
    namedVariable(syntheticToken("super"), false);
    emitOp(OpCode::GET_SUPER, {name, newIcSlot()});
  }
}

void Parser::list(bool) {
  std::uint32_t count = 0;
  if (!check(TokenType::RightBracket)) {
    do {
      if (check(TokenType::RightBracket)) break;  // a trailing comma
      expression();
      ++count;
    } while (match(TokenType::Comma));
  }
  consume(TokenType::RightBracket, "Expect ']' after list elements.");
  emitOp(OpCode::LIST, {count});
}

void Parser::index(bool canAssign) {
  expression();
  consume(TokenType::RightBracket, "Expect ']' after index.");
  if (canAssign && match(TokenType::Equal)) {
    expression();
    emitOp(OpCode::SET_INDEX);
  } else if (lastIs(OpCode::GET_LOCAL) && fn_->recent[0].line == previous_.line) {
    rewriteLast(OpCode::GET_INDEX_LOCAL);  // `GET_LOCAL slot; GET_INDEX`, on one line
  } else {
    emitOp(OpCode::GET_INDEX);
  }
}

// {k: v, ...}: keys and values in source order, then MAP with the number of pairs.
// A `{` that starts a statement is a block (statement()); one that starts an expression
// statement (a `for` initializer) is no expression either, as in clox.
void Parser::map(bool) {
  if (previous_.lexeme.data() == expressionStatementStart_) {
    error("Expect expression.");
    return;
  }
  std::uint32_t count = 0;
  if (!check(TokenType::RightBrace)) {
    do {
      if (check(TokenType::RightBrace)) break;  // a trailing comma
      expression();
      consume(TokenType::Colon, "Expect ':' after map key.");
      expression();
      ++count;
    } while (match(TokenType::Comma));
  }
  consume(TokenType::RightBrace, "Expect '}' after map entries.");
  emitOp(OpCode::MAP, {count});
}

// --- declarations -------------------------------------------------------------------

// A statement counts its own level of nesting (statement()); a class, fun or var
// declaration counts one here.
void Parser::declaration() {
  if (match(TokenType::Import)) {
    importDeclaration();
  } else if (check(TokenType::Class) || check(TokenType::Fun) || check(TokenType::Var)) {
    if (!enterNesting()) return;
    if (match(TokenType::Class)) {
      classDeclaration();
    } else if (match(TokenType::Fun)) {
      funDeclaration();
    } else {
      advance();  // var
      varDeclaration();
    }
    --nesting_;
  } else {
    statement();
  }
  if (panicMode_) synchronize();
}

void Parser::classDeclaration() {
  consume(TokenType::Identifier, "Expect class name.");
  Token className = previous_;
  std::uint32_t nameConstant = identifierConstant(previous_);
  declareVariable();

  emitOp(OpCode::CLASS, {nameConstant});
  std::uint32_t global = fn_->scopeDepth > 0 ? 0 : globalSlot(className.lexeme);
  defineVariable(global);

  ClassState state;
  state.enclosing = class_;
  class_ = &state;

  if (match(TokenType::Less)) {
    consume(TokenType::Identifier, "Expect superclass name.");
    variable(false);
    if (className.lexeme == previous_.lexeme) error("A class can't inherit from itself.");
    beginScope();
    addLocal(syntheticToken("super"));
    defineVariable(0);
    namedVariable(className, false);
    emitOp(OpCode::INHERIT);
    state.hasSuperclass = true;
  }

  namedVariable(className, false);
  consume(TokenType::LeftBrace, "Expect '{' before class body.");
  while (!check(TokenType::RightBrace) && !check(TokenType::Eof)) method();
  consume(TokenType::RightBrace, "Expect '}' after class body.");
  emitOp(OpCode::POP);

  if (state.hasSuperclass) endScope();
  class_ = state.enclosing;
}

void Parser::method() {
  consume(TokenType::Identifier, "Expect method name.");
  std::uint32_t constant = identifierConstant(previous_);
  FunctionKind kind =
      previous_.lexeme == "init" ? FunctionKind::Initializer : FunctionKind::Method;
  function(kind);
  emitOp(OpCode::METHOD, {constant});
}

void Parser::funDeclaration() {
  std::uint32_t global = parseVariable("Expect function name.");
  markInitialized();
  function(FunctionKind::Function);
  defineVariable(global);
}

void Parser::function(FunctionKind kind) {
  FunctionState state;
  beginFunction(state, kind, previous_.lexeme);
  beginScope();

  consume(TokenType::LeftParen, "Expect '(' after function name.");
  if (!check(TokenType::RightParen)) {
    do {
      ++fn_->proto->arity;
      std::uint32_t constant = parseVariable("Expect parameter name.");
      defineVariable(constant);
    } while (match(TokenType::Comma));
  }
  consume(TokenType::RightParen, "Expect ')' after parameters.");
  consume(TokenType::LeftBrace, "Expect '{' before function body.");
  block();

  std::shared_ptr<FunctionProto> proto = endFunction();
  emitOp(OpCode::CLOSURE, {makeConstant(std::shared_ptr<const FunctionProto>(proto))});
}

void Parser::varDeclaration() { finishVarDeclaration(parseVariable("Expect variable name.")); }

void Parser::finishVarDeclaration(std::uint32_t global) {
  if (match(TokenType::Equal)) {
    expression();
  } else {
    emitOp(OpCode::NIL);
  }
  consume(TokenType::Semicolon, "Expect ';' after variable declaration.");
  defineVariable(global);
}

// --- statements ---------------------------------------------------------------------

void Parser::statement() {
  // if / while / for / else bodies recurse here without passing through declaration().
  if (!enterNesting()) return;
  if (match(TokenType::Print)) {
    printStatement();
  } else if (match(TokenType::For)) {
    forStatement();
  } else if (match(TokenType::If)) {
    ifStatement();
  } else if (match(TokenType::Return)) {
    returnStatement();
  } else if (match(TokenType::While)) {
    whileStatement();
  } else if (match(TokenType::Spawn)) {
    spawnStatement();
  } else if (match(TokenType::Select)) {
    selectStatement();
  } else if (match(TokenType::Try)) {
    tryStatement();
  } else if (match(TokenType::Throw)) {
    throwStatement();
  } else if (match(TokenType::LeftBrace)) {
    beginScope();
    block();
    endScope();
  } else {
    expressionStatement();
  }
  --nesting_;
}

void Parser::block() {
  while (!check(TokenType::RightBrace) && !check(TokenType::Eof)) declaration();
  consume(TokenType::RightBrace, "Expect '}' after block.");
}

void Parser::printStatement() {
  expression();
  consume(TokenType::Semicolon, "Expect ';' after value.");
  emitOp(OpCode::PRINT);
}

void Parser::expressionStatement() {
  expressionStatementStart_ = current_.lexeme.data();
  expression();
  consume(TokenType::Semicolon, "Expect ';' after expression.");
  emitPop();
}

void Parser::ifStatement() {
  consume(TokenType::LeftParen, "Expect '(' after 'if'.");
  expression();
  consume(TokenType::RightParen, "Expect ')' after condition.");

  std::size_t thenJump = emitConditionJump();
  statement();
  if (match(TokenType::Else)) {
    std::size_t elseJump = emitJump(OpCode::JUMP);
    patchJump(thenJump);
    statement();
    patchJump(elseJump);
  } else {
    patchJump(thenJump);
  }
}

void Parser::whileStatement() {
  std::size_t loopStart = chunk().code.size();
  markTarget();
  consume(TokenType::LeftParen, "Expect '(' after 'while'.");
  expression();
  consume(TokenType::RightParen, "Expect ')' after condition.");

  std::size_t exitJump = emitConditionJump();
  statement();
  emitLoop(loopStart);
  patchJump(exitJump);
}

void Parser::forStatement() {
  beginScope();
  consume(TokenType::LeftParen, "Expect '(' after 'for'.");
  if (match(TokenType::Semicolon)) {
    // No initializer.
  } else if (match(TokenType::Var)) {
    const std::uint32_t global = parseVariable("Expect variable name.");
    if (check(TokenType::Identifier) && current_.lexeme == "in") {
      forInStatement(previous_);
      return;
    }
    finishVarDeclaration(global);
  } else {
    expressionStatement();
  }

  std::size_t loopStart = chunk().code.size();
  markTarget();
  std::size_t exitJump = kNoOffset;
  if (!match(TokenType::Semicolon)) {
    expression();
    consume(TokenType::Semicolon, "Expect ';' after loop condition.");
    exitJump = emitConditionJump();
  }

  // The increment is compiled where it stands (its errors, constants and inline caches
  // come in source order) and then moved after the body, so that an iteration is the
  // body, the increment and one backward jump to the condition (clox jumps over the
  // increment to the body and back). Its jumps are relative and internal, so the code
  // moves as it is.
  CodeRange increment;
  if (!match(TokenType::RightParen)) {
    const std::size_t incrementStart = chunk().code.size();
    markTarget();
    expression();
    emitPop();
    consume(TokenType::RightParen, "Expect ')' after for clauses.");
    increment = cutCode(incrementStart);
  }

  statement();
  emitIncrementLoop(increment, loopStart);
  if (exitJump != kNoOffset) patchJump(exitJump);
  endScope();
}

// A for loop's end: the moved increment and the jump back to loopStart. An increment
// that is one `ADD_TO_LOCAL slot k` (`i = i + k`) with loopStart reading the same local
// first (`GET_LOCAL slot`, as `i < n` does) becomes one ADD_TO_LOCAL_LOOP slot k (with
// the increment's line: its error is the add's) whose jump lands after that GET_LOCAL.
void Parser::emitIncrementLoop(const CodeRange& increment, std::size_t loopStart) {
  Instruction add, head;
  const std::vector<std::uint8_t>& code = chunk().code;
  if (!increment.code.empty() &&
      decode(increment.code.data(), increment.code.size(), 0, add) &&
      add.op == OpCode::ADD_TO_LOCAL && add.length == increment.code.size() &&
      decode(code.data(), code.size(), loopStart, head) && head.op == OpCode::GET_LOCAL &&
      head.operands[0] == add.operands[0]) {
    const int line = increment.lines[0];
    markTarget();
    emitOp(OpCode::ADD_TO_LOCAL_LOOP, {add.operands[0], add.operands[1]}, line);
    const std::size_t distance = chunk().code.size() + kJumpBytes - (loopStart + head.length);
    for (int i = 0; i < 4; ++i) emitByte(static_cast<std::uint8_t>(distance >> (8 * i)), line);
    forgetRecent();
    return;
  }
  pasteCode(increment);
  emitLoop(loopStart);
}

// for (var x in seq) body, inside forStatement's scope, `x` just declared. `in` is not a
// keyword: it is recognised only here. Two hidden locals (names no identifier can spell)
// hold the sequence, as FOR_IN_PREP leaves it, and the step state; each iteration's `x`
// is a fresh local (closures capture one per iteration):
//   seq FOR_IN_PREP  loop: FOR_IN_NEXT exit  [x] body  POP x  LOOP loop  exit: POP POP
void Parser::forInStatement(Token name) {
  fn_->locals.pop();  // `x` is declared again inside the loop, after the hidden ones
  advance();               // `in`
  expression();
  consume(TokenType::RightParen, "Expect ')' after for-in sequence.");
  emitOp(OpCode::FOR_IN_PREP);
  addLocal(syntheticToken(" for-in sequence"));
  markInitialized();
  addLocal(syntheticToken(" for-in state"));
  markInitialized();
  const std::size_t loopStart = chunk().code.size();
  markTarget();
  const std::size_t exitJump = emitJump(OpCode::FOR_IN_NEXT);
  beginScope();
  addLocal(name);
  markInitialized();
  statement();
  endScope();
  emitLoop(loopStart);
  patchJump(exitJump);
  endScope();
}

void Parser::returnStatement() {
  if (fn_->proto->kind == FunctionKind::Script) error("Can't return from top-level code.");
  if (match(TokenType::Semicolon)) {
    emitReturnValue();
  } else {
    if (fn_->proto->kind == FunctionKind::Initializer) {
      error("Can't return a value from an initializer.");
    }
    expression();
    consume(TokenType::Semicolon, "Expect ';' after return value.");
  }
  returnTop();
}

// Returns the value on the top of the stack from here: RETURN, or, inside a try or catch
// block of this function, a jump to that try's return path (tryStatement), which pops its
// handler, runs its finally block, and goes on the same way.
void Parser::returnTop() {
  if (fn_->tries.empty()) {
    emitOp(OpCode::RETURN);
    return;
  }
  FunctionState::Try& t = fn_->tries.back();
  (t.inBody ? t.bodyReturns : t.catchReturns).push_back(emitJump(OpCode::JUMP));
}

// try { body } catch (name) { handler } finally { cleanup }   (catch, finally or both)
//
//       TRY depth -> H1          (depth: the locals in scope, where the error will sit)
//       body
//       END_TRY
//       JUMP -> N
//   H1: catch: [error in local `name`] (TRY depth -> H2, with a finally) handler
//              (END_TRY) pop name (JUMP -> N, with a finally)
//       H2 / H1 without catch: TRUE; JUMP -> F
//   N:  NIL; FALSE
//   F:  cleanup with two hidden locals [error, flag]; END_FINALLY -> R
//       (flag FALSE: pops both and goes on; TRUE: throws the error; NIL: a return is
//       under way with the value in `error`: jumps to R)
//       JUMP -> E
//   R:  return the top (returnTop: the enclosing try's return path, or RETURN)
//   Return paths, for the `return`s inside the body / the handler:
//       END_TRY (the body's / H2's handler); with a finally: UNWIND_TO depth; NIL; LOOP F;
//       without: as R.
//   E:
// A catch block is compiled before the parser knows whether a finally follows; then its
// code is cut and pasted back behind its TRY (its jumps are relative and internal; the
// recorded return jumps move with it).
void Parser::tryStatement() {
  const auto depth = static_cast<std::uint32_t>(fn_->locals.size());
  auto emitTry = [&] {
    emitOp(OpCode::TRY, {depth});
    const std::size_t at = chunk().code.size();
    for (int i = 0; i < 4; ++i) emitByte(0xff);
    fn_->recent[0].end = chunk().code.size();
    return at;
  };
  consume(TokenType::LeftBrace, "Expect '{' after 'try'.");
  const std::size_t bodyHandler = emitTry();
  fn_->tries.push_back({});
  beginScope();
  block();
  endScope();
  emitOp(OpCode::END_TRY);
  std::size_t toNormal[2] = {emitJump(OpCode::JUMP), kNoOffset};
  patchJump(bodyHandler);
  fn_->tries.back().inBody = false;
  const bool hasCatch = match(TokenType::Catch);
  std::size_t catchStart = 0;
  Token name;
  if (hasCatch) {
    consume(TokenType::LeftParen, "Expect '(' after 'catch'.");
    consume(TokenType::Identifier, "Expect variable name after '('.");
    name = previous_;
    consume(TokenType::RightParen, "Expect ')' after catch variable.");
    consume(TokenType::LeftBrace, "Expect '{' after catch variable.");
    beginScope();
    addLocal(name);
    markInitialized();
    catchStart = chunk().code.size();
    beginScope();
    block();
    endScope();
  }
  FunctionState::Try self = std::move(fn_->tries.back());
  fn_->tries.pop_back();
  const bool hasFinally = match(TokenType::Finally);
  if (!hasFinally && !hasCatch) errorAt(current_, "Expect 'catch' or 'finally' after try block.");
  std::size_t finallyStart = kNoOffset, endJump = kNoOffset, returnJump = kNoOffset;
  if (!hasFinally) {
    if (hasCatch) endScope();
    patchJump(toNormal[0]);
  } else {
    std::size_t handler = kNoOffset;  // H2: the catch block's handler
    if (hasCatch) {
      CodeRange catchBody = cutCode(catchStart);
      handler = emitTry();
      const std::size_t shift = chunk().code.size() - catchStart;
      for (std::size_t& j : self.catchReturns) j += shift;
      pasteCode(catchBody);
      emitOp(OpCode::END_TRY);
      endScope();
      toNormal[1] = emitJump(OpCode::JUMP);
      patchJump(handler);
    }
    emitOp(OpCode::TRUE);
    const std::size_t toFinally = emitJump(OpCode::JUMP);
    for (std::size_t j : toNormal) {
      if (j != kNoOffset) patchJump(j);
    }
    emitOp(OpCode::NIL);
    emitOp(OpCode::FALSE);
    patchJump(toFinally);
    finallyStart = chunk().code.size();
    consume(TokenType::LeftBrace, "Expect '{' after 'finally'.");
    beginScope();
    addLocal(syntheticToken("(error)"));
    markInitialized();
    addLocal(syntheticToken("(flag)"));
    markInitialized();
    beginScope();
    block();
    endScope();
    // END_FINALLY pops the two hidden locals (nothing can capture them: no name spells them).
    returnJump = emitJump(OpCode::END_FINALLY);
    --fn_->scopeDepth;
    fn_->locals.pop();
    fn_->locals.pop();
    endJump = emitJump(OpCode::JUMP);
    patchJump(returnJump);
    returnTop();
  }
  // The return paths (only where a return needs them).
  const bool returns = !self.bodyReturns.empty() || !self.catchReturns.empty();
  if (returns && endJump == kNoOffset) endJump = emitJump(OpCode::JUMP);
  for (const auto* list : {&self.bodyReturns, &self.catchReturns}) {
    if (list->empty()) continue;
    for (std::size_t j : *list) patchJump(j);
    const bool fromCatch = list == &self.catchReturns;
    if (!fromCatch || hasFinally) emitOp(OpCode::END_TRY);  // the body's handler, or H2
    if (hasFinally) {
      emitOp(OpCode::UNWIND_TO, {depth});
      emitOp(OpCode::NIL);
      emitLoop(finallyStart);
    } else {
      returnTop();
    }
  }
  if (endJump != kNoOffset) patchJump(endJump);
}

// throw expr;  Raises the value (THROW never continues: the stack effect does not matter).
void Parser::throwStatement() {
  expression();
  consume(TokenType::Semicolon, "Expect ';' after thrown value.");
  emitOp(OpCode::THROW);
}

// spawn CALL;  The callee and arguments are evaluated here; OP_SPAWN starts the call
// in a new fiber and pushes nil (the statement then pops it).
void Parser::spawnStatement() {
  if (!spawnCall(OpCode::SPAWN)) return;
  consume(TokenType::Semicolon, "Expect ';' after spawn call.");
  emitOp(OpCode::POP);
}

// spawn CALL as an expression: OP_SPAWN_FIBER pushes the new Fiber (join, done).
void Parser::spawnExpression(bool) { (void)spawnCall(OpCode::SPAWN_FIBER); }

bool Parser::spawnCall(OpCode op) {
  spawnChain_ = true;
  lastCallStart_ = kNoOffset;
  parsePrecedence(PREC_CALL);
  spawnChain_ = false;
  if (lastCallStart_ == kNoOffset || lastCallEnd_ != chunk().code.size()) {
    error("Expect function call after 'spawn'.");
    return false;
  }
  std::size_t opAt = lastCallStart_;
  if (chunk().code[opAt] == static_cast<std::uint8_t>(OpCode::WIDE)) ++opAt;
  chunk().code[opAt] = static_cast<std::uint8_t>(op);
  return true;
}

// select {
//   case var v = ch.recv(): statements     (binds a new variable scoped to the case)
//   case v = ch.recv(): statements         (assigns an existing variable)
//   case ch.recv(): statements
//   case ch.send(x): statements
//   default: statements
// }
//
// Code layout (heads in source order; each head jumps over its body to the next):
//   head0; JUMP H1; body0; JUMP END; H1: head1; JUMP H2; body1; JUMP END; ...
//   Hn: SELECT n flags kinds...; JUMP_TABLE m -> body0, body1, ..., default; END:
// OP_SELECT leaves [value, index]; JUMP_TABLE pops the index; each body starts with
// the received value (nil for sends and default) on top of the stack.
void Parser::selectStatement() {
  const Token selectToken = previous_;
  consume(TokenType::LeftBrace, "Expect '{' after 'select'.");
  std::vector<std::uint8_t> kinds;
  std::vector<std::size_t> bodies;  // body start offsets, channel cases in order
  std::size_t defaultBody = kNoOffset;
  std::vector<std::size_t> exitJumps;

  while (!check(TokenType::RightBrace) && !check(TokenType::Eof)) {
    if (match(TokenType::Default)) {
      if (defaultBody != kNoOffset) error("Already a default case in this select.");
      consume(TokenType::Colon, "Expect ':' after 'default'.");
      std::size_t skip = emitJump(OpCode::JUMP);
      defaultBody = chunk().code.size();
      markTarget();
      beginScope();
      emitOp(OpCode::POP);
      selectCaseBody();
      endScope();
      exitJumps.push_back(emitJump(OpCode::JUMP));
      patchJump(skip);
      continue;
    }
    if (!match(TokenType::Case)) {
      errorAtCurrent("Expect 'case' or 'default' in select.");
      break;
    }
    bool declare = false;
    bool assign = false;
    Token target;
    if (match(TokenType::Var)) {
      consume(TokenType::Identifier, "Expect variable name.");
      target = previous_;
      consume(TokenType::Equal, "Expect '=' after variable name.");
      declare = true;
    } else if (check(TokenType::Identifier) &&
               peekAfterCurrent().type == TokenType::Equal) {
      advance();
      target = previous_;
      advance();  // '='
      assign = true;
    }

    SelectHead head;
    selectHead_ = &head;
    parsePrecedence(PREC_CALL);
    selectHead_ = nullptr;
    if (!head.done) error("Expect channel send or receive in select case.");
    if ((declare || assign) && head.kind == kSelectSend) {
      error("Can only bind the value of a receive.");
    }
    consume(TokenType::Colon, "Expect ':' after select case.");
    kinds.push_back(head.kind);

    // Heads are reached from the previous head's jump, never by falling out of a body.
    std::size_t toNextHead = emitJump(OpCode::JUMP);
    bodies.push_back(chunk().code.size());
    markTarget();
    beginScope();
    if (declare) {
      addLocal(target);
      markInitialized();
    } else {
      if (assign) emitStore(target);
      emitPop();
    }
    selectCaseBody();
    endScope();
    exitJumps.push_back(emitJump(OpCode::JUMP));
    patchJump(toNextHead);
  }
  consume(TokenType::RightBrace, "Expect '}' after select cases.");

  // OP_SELECT and the jump table carry the line of the `select` keyword: a runtime
  // error in the select (a send on a closed channel, a deadlock) reports that line.
  const Token savedPrevious = previous_;
  previous_ = selectToken;

  // OP_SELECT count flags kinds...
  auto count = static_cast<std::uint32_t>(kinds.size());
  emitOp(OpCode::SELECT, {count});
  emitByte(defaultBody != kNoOffset ? kSelectHasDefault : 0);
  for (std::uint8_t kind : kinds) emitByte(kind);

  // OP_JUMP_TABLE entries: channel cases, then default.
  std::vector<std::size_t> targets = bodies;
  if (defaultBody != kNoOffset) targets.push_back(defaultBody);
  emitOp(OpCode::JUMP_TABLE, {static_cast<std::uint32_t>(targets.size())});
  std::size_t table = chunk().code.size();
  for (std::size_t i = 0; i < targets.size(); ++i) {
    for (int b = 0; b < 4; ++b) emitByte(0);
  }
  // Bodies lie before the table: encode each entry as a backward distance from the end
  // of the instruction, i.e. end - target (the VM computes end - entry).
  std::size_t end = chunk().code.size();
  for (std::size_t i = 0; i < targets.size(); ++i) {
    patchU32(table + i * kJumpBytes, static_cast<std::uint32_t>(end - targets[i]));
  }
  previous_ = savedPrevious;
  for (std::size_t jump : exitJumps) patchJump(jump);
}

void Parser::selectCaseBody() {
  while (!check(TokenType::Case) && !check(TokenType::Default) &&
         !check(TokenType::RightBrace) && !check(TokenType::Eof)) {
    declaration();
  }
}

// import "path" as name;  IMPORT pushes the module object, which the name is then
// defined to (a global at the top level, else a local), as a var declaration's value.
// `as` is an identifier everywhere else.
void Parser::importDeclaration() {
  consume(TokenType::String, "Expect a module path string after 'import'.");
  std::string path;
  if (previous_.type == TokenType::String) {
    std::string_view text = previous_.lexeme;
    unescape(text.substr(1, text.size() - 2), &path);
  }
  const std::uint32_t pathConstant = stringConstant(path);
  if (check(TokenType::Identifier) && current_.lexeme == "as") {
    advance();
  } else {
    errorAtCurrent("Expect 'as' after the module path.");
  }
  const std::uint32_t global = parseVariable("Expect a module name after 'as'.");
  emitOp(OpCode::IMPORT, {pathConstant});
  defineVariable(global);
  consume(TokenType::Semicolon, "Expect ';' after import.");
}

// The names a module declares at its top level (var, fun, class, import ... as), in
// order: a token scan at brace depth 0, before the parse, so that code above a
// declaration already refers to the module's own name.
std::vector<std::string> topLevelNames(std::string_view source) {
  std::vector<std::string> names;
  Scanner s(source);
  int depth = 0;
  bool afterAs = false;
  TokenType prev = TokenType::Eof;
  for (Token t = s.next(); t.type != TokenType::Eof; t = s.next()) {
    if (t.type == TokenType::LeftBrace) ++depth;
    if (t.type == TokenType::RightBrace && depth > 0) --depth;
    const bool declares = prev == TokenType::Var || prev == TokenType::Fun ||
                          prev == TokenType::Class || afterAs;
    if (depth == 0 && t.type == TokenType::Identifier && declares &&
        std::find(names.begin(), names.end(), t.lexeme) == names.end()) {
      names.emplace_back(t.lexeme);
    }
    afterAs = prev == TokenType::String && t.type == TokenType::Identifier && t.lexeme == "as";
    prev = t.type;
  }
  return names;
}

CompileResult Parser::run() {
  FunctionState script;
  beginFunction(script, FunctionKind::Script, "");
  advance();
  while (!match(TokenType::Eof)) declaration();
  std::shared_ptr<FunctionProto> proto = endFunction();

  CompileResult result;
  result.diagnostics = std::move(diagnostics_);
  if (result.diagnostics.empty()) result.script = std::move(proto);
  return result;
}

}  // namespace

CompileResult compile(std::string_view source, GlobalTable& globals) {
  Parser parser(source, globals);
  return parser.run();
}

CompileResult compile(std::string_view source, GlobalTable& globals, const ModuleOptions& module) {
  Parser parser(source, globals, &module);
  CompileResult r = parser.run();
  r.moduleNames = parser.moduleNames();
  return r;
}

}  // namespace spindle::lang
