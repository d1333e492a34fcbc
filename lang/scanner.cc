// scanner.cc: see scanner.h. Keywords are recognised by a switch on the first letters
// of an identifier (clox's trie), which is both fast and easy to check by eye.
#include "lang/scanner.h"

#include <cstdint>

namespace spindle::lang {

namespace {

bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void appendUtf8(std::uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

bool unescape(std::string_view body, std::string* out) {
  std::string scratch;
  std::string* to = out != nullptr ? out : &scratch;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c != '\\') {
      if (out != nullptr) *to += c;
      continue;
    }
    if (++i == body.size()) return false;
    switch (body[i]) {
      case 'n': *to += '\n'; break;
      case 't': *to += '\t'; break;
      case 'r': *to += '\r'; break;
      case '"': *to += '"'; break;
      case '\\': *to += '\\'; break;
      case '0': *to += '\0'; break;
      case 'x': {
        if (i + 2 >= body.size()) return false;
        const int hi = hexValue(body[i + 1]), lo = hexValue(body[i + 2]);
        if (hi < 0 || lo < 0) return false;
        *to += static_cast<char>(hi * 16 + lo);
        i += 2;
        break;
      }
      case 'u': {
        if (i + 1 >= body.size() || body[i + 1] != '{') return false;
        std::size_t j = i + 2;
        std::uint32_t cp = 0;
        int digits = 0;
        for (; j < body.size() && body[j] != '}'; ++j) {
          const int h = hexValue(body[j]);
          if (h < 0 || ++digits > 6) return false;
          cp = cp * 16 + static_cast<std::uint32_t>(h);
        }
        if (j == body.size() || digits == 0) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        appendUtf8(cp, to);
        i = j;
        break;
      }
      default: return false;
    }
    if (out == nullptr) scratch.clear();
  }
  return true;
}

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
    if (peek() == '\\' && current_ + 1 < source_.size()) advance();  // takes the next character
    if (peek() == '\n') ++line_;
    advance();
  }
  if (atEnd()) return error("Unterminated string.");
  advance();  // The closing quote.
  if (!unescape(source_.substr(start_ + 1, current_ - start_ - 2), nullptr)) {
    return error("Invalid escape sequence.");
  }
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
    case 'i': return word.size() > 1 && word[1] == 'm' ? is("import", TokenType::Import) : is("if", TokenType::If);
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
