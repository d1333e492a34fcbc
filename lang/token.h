// token.h: the tokens of Lox and of Spindle's extensions.
//
// A Token is a view into the source text (it owns nothing), so the source must outlive
// every token taken from it. `line` is the line the scanner was on when the token ended
// (as in clox: a multi-line string reports its last line). For TokenType::Error the
// lexeme is the scanner's message (a string literal with static storage), not source.
#pragma once

#include <cstdint>
#include <string_view>

namespace spindle::lang {

enum class TokenType : std::uint8_t {
  // Single-character tokens.
  LeftParen, RightParen, LeftBrace, RightBrace, LeftBracket, RightBracket,
  Comma, Dot, Minus, Plus, Semicolon, Slash, Star, Percent, Colon,
  // One or two character tokens.
  Bang, BangEqual, Equal, EqualEqual, Greater, GreaterEqual, Less, LessEqual,
  // Literals.
  Identifier, String, Number,
  // Keywords of Lox.
  And, Class, Else, False, For, Fun, If, Nil, Or, Print, Return, Super, This, True, Var,
  While,
  // Keywords of the extensions.
  Spawn, Select, Case, Default,
  Try, Catch, Finally, Throw,
  Import,  // import "path" as name; (`as` is an identifier, special only there)
  // Control.
  Error, Eof,
};

struct Token {
  TokenType type = TokenType::Eof;
  std::string_view lexeme;
  int line = 1;
};

}  // namespace spindle::lang
