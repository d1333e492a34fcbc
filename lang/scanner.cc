// scanner.cc: see scanner.h. Keywords are recognised by a switch on the first letters
// of an identifier (clox's trie), which is both fast and easy to check by eye.
#include "lang/scanner.h"

namespace spindle::lang {

namespace {

bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool Scanner::match(char expected) {
  if (atEnd() || source_[current_] != expected) return false;
  ++current_;
  return true;
}

void Scanner::skipWhitespace() {
  for (;;) {
    switch (peek()) {
      case ' ':
      case '\r':
      case '\t':
        advance();
        break;
      case '\n':
        ++line_;
        advance();
        break;
      case '/':
        if (peekNext() != '/') return;
        while (peek() != '\n' && !atEnd()) advance();
        break;
      default:
        return;
    }
  }
}

Token Scanner::make(TokenType type) const {
  return Token{type, source_.substr(start_, current_ - start_), line_};
}

Token Scanner::error(const char* message) const {
  return Token{TokenType::Error, std::string_view(message), line_};
}

Token Scanner::string() {
  while (peek() != '"' && !atEnd()) {
    if (peek() == '\n') ++line_;
    advance();
  }
  if (atEnd()) return error("Unterminated string.");
  advance();  // The closing quote.
  return make(TokenType::String);
}

Token Scanner::number() {
  while (isDigit(peek())) advance();
  if (peek() == '.' && isDigit(peekNext())) {
    advance();
    while (isDigit(peek())) advance();
  }
  return make(TokenType::Number);
}

TokenType Scanner::identifierType() const {
  std::string_view word = source_.substr(start_, current_ - start_);
  auto is = [&](std::string_view kw, TokenType t) {
    return word == kw ? t : TokenType::Identifier;
  };
  switch (word[0]) {
    case 'a': return is("and", TokenType::And);
    case 'c':
      if (word.size() > 1 && word[1] == 'l') return is("class", TokenType::Class);
      if (word.size() > 2 && word[2] == 't') return is("catch", TokenType::Catch);
      return is("case", TokenType::Case);
    case 'd': return is("default", TokenType::Default);
    case 'e': return is("else", TokenType::Else);
    case 'f':
      if (word.size() > 1) {
        switch (word[1]) {
          case 'a': return is("false", TokenType::False);
          case 'i': return is("finally", TokenType::Finally);
          case 'o': return is("for", TokenType::For);
          case 'u': return is("fun", TokenType::Fun);
        }
      }
      break;
    case 'i': return is("if", TokenType::If);
    case 'n': return is("nil", TokenType::Nil);
    case 'o': return is("or", TokenType::Or);
    case 'p': return is("print", TokenType::Print);
    case 'r': return is("return", TokenType::Return);
    case 's':
      if (word.size() > 1) {
        switch (word[1]) {
          case 'e': return is("select", TokenType::Select);
          case 'p': return is("spawn", TokenType::Spawn);
          case 'u': return is("super", TokenType::Super);
        }
      }
      break;
    case 't':
      if (word.size() > 2 && word[1] == 'h') {
        return word[2] == 'r' ? is("throw", TokenType::Throw) : is("this", TokenType::This);
      }
      if (word.size() > 2 && word[2] == 'y') return is("try", TokenType::Try);
      return is("true", TokenType::True);
    case 'v': return is("var", TokenType::Var);
    case 'w': return is("while", TokenType::While);
  }
  return TokenType::Identifier;
}

Token Scanner::identifier() {
  while (isAlpha(peek()) || isDigit(peek())) advance();
  return make(identifierType());
}

Token Scanner::next() {
  skipWhitespace();
  start_ = current_;
  if (atEnd()) return make(TokenType::Eof);

  char c = advance();
  if (isAlpha(c)) return identifier();
  if (isDigit(c)) return number();

  switch (c) {
    case '(': return make(TokenType::LeftParen);
    case ')': return make(TokenType::RightParen);
    case '{': return make(TokenType::LeftBrace);
    case '}': return make(TokenType::RightBrace);
    case '[': return make(TokenType::LeftBracket);
    case ']': return make(TokenType::RightBracket);
    case ';': return make(TokenType::Semicolon);
    case ':': return make(TokenType::Colon);
    case ',': return make(TokenType::Comma);
    case '.': return make(TokenType::Dot);
    case '-': return make(TokenType::Minus);
    case '+': return make(TokenType::Plus);
    case '/': return make(TokenType::Slash);
    case '*': return make(TokenType::Star);
    case '%': return make(TokenType::Percent);
    case '!': return make(match('=') ? TokenType::BangEqual : TokenType::Bang);
    case '=': return make(match('=') ? TokenType::EqualEqual : TokenType::Equal);
    case '<': return make(match('=') ? TokenType::LessEqual : TokenType::Less);
    case '>': return make(match('=') ? TokenType::GreaterEqual : TokenType::Greater);
    case '"': return string();
  }
  return error("Unexpected character.");
}

}  // namespace spindle::lang
