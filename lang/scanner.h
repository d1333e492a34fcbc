// scanner.h: turns Lox source text into tokens on demand (clox's design).
//
// The scanner is a cheap value type: two positions into the source and a line number.
// Copying it gives a lookahead that costs nothing to throw away. It never fails: bad
// input becomes TokenType::Error tokens whose lexeme is the message ("Unexpected
// character.", "Unterminated string." or "Invalid escape sequence."), and after the end
// it returns Eof forever. Invariant: start_ <= current_ <= source_.size().
//
// A UTF-8 byte order mark (EF BB BF) at the very start of the source is skipped, as
// editors on some systems write one; anywhere else it is an unexpected character.
//
// String literals: a String token's lexeme is the source text with its quotes and
// escapes; the scanner has checked every escape with unescape (a backslash always takes
// the next character with it, so `\"` does not end the string), and the compiler decodes
// the body with the same function.
#pragma once

#include <string>
#include <string_view>

#include "lang/token.h"

namespace spindle::lang {

// Decodes the body of a string literal (without its quotes): `\n \t \r \" \\ \0`,
// `\xHH` (two hex digits: one byte) and `\u{H...}` (1 to 6 hex digits, a Unicode scalar
// value: at most 10FFFF and not a surrogate, UTF-8 encoded). Appends the bytes to *out
// (when out is not null); false at the first invalid escape.
bool unescape(std::string_view body, std::string* out);

class Scanner {
 public:
  explicit Scanner(std::string_view source)
      : source_(source), start_(bomSize(source)), current_(start_) {}

  Token next();

 private:
  bool atEnd() const { return current_ >= source_.size(); }
  char advance() { return source_[current_++]; }
  char peek() const { return atEnd() ? '\0' : source_[current_]; }
  char peekNext() const {
    return current_ + 1 >= source_.size() ? '\0' : source_[current_ + 1];
  }
  bool match(char expected);
  void skipWhitespace();
  Token make(TokenType type) const;
  Token error(const char* message) const;
  Token string();
  Token number();
  Token identifier();
  TokenType identifierType() const;
  static std::size_t bomSize(std::string_view source) {
    return source.starts_with("\xEF\xBB\xBF") ? 3 : 0;
  }

  std::string_view source_;
  std::size_t start_ = 0;
  std::size_t current_ = 0;
  int line_ = 1;
};

}  // namespace spindle::lang
