// scanner_test.cc: the scanner's token stream, keywords, lines and errors.
#include "lang/scanner.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace spindle::lang {
namespace {

std::vector<Token> scanAll(std::string_view src) {
  Scanner s(src);
  std::vector<Token> out;
  for (;;) {
    Token t = s.next();
    out.push_back(t);
    if (t.type == TokenType::Eof) break;
  }
  return out;
}

std::vector<TokenType> typesOf(std::string_view src) {
  std::vector<TokenType> out;
  for (const Token& t : scanAll(src)) out.push_back(t.type);
  return out;
}

using T = TokenType;

TEST_CASE("punctuation and operators") {
  CHECK(typesOf("(){}[],.-+;/*%:") ==
        std::vector<T>{T::LeftParen, T::RightParen, T::LeftBrace, T::RightBrace,
                       T::LeftBracket, T::RightBracket, T::Comma, T::Dot, T::Minus, T::Plus,
                       T::Semicolon, T::Slash, T::Star, T::Percent, T::Colon, T::Eof});
  CHECK(typesOf("! != = == > >= < <=") ==
        std::vector<T>{T::Bang, T::BangEqual, T::Equal, T::EqualEqual, T::Greater,
                       T::GreaterEqual, T::Less, T::LessEqual, T::Eof});
}

TEST_CASE("keywords and identifiers") {
  CHECK(typesOf("and class else false for fun if nil or print return super this true var "
                "while spawn select case default try catch finally throw") ==
        std::vector<T>{T::And, T::Class, T::Else, T::False, T::For, T::Fun, T::If, T::Nil,
                       T::Or, T::Print, T::Return, T::Super, T::This, T::True, T::Var,
                       T::While, T::Spawn, T::Select, T::Case, T::Default, T::Try, T::Catch,
                       T::Finally, T::Throw, T::Eof});
  // Prefixes and extensions of keywords are identifiers.
  for (const char* word : {"an", "andy", "classy", "c", "cas", "cases", "f", "fa", "fo",
                           "funny", "s", "sp", "spawner", "selec", "supers", "t", "th",
                           "thisx", "tru", "v", "wh", "_x", "x1", "recv", "send", "tr",
                           "tryx", "thr", "throws", "cat", "catcher", "fin", "finall",
                           "tray", "thus", "cut"}) {
    CAPTURE(word);
    auto toks = scanAll(word);
    REQUIRE(toks.size() == 2);
    CHECK(toks[0].type == T::Identifier);
    CHECK(toks[0].lexeme == word);
  }
}

TEST_CASE("numbers and strings") {
  auto toks = scanAll("123 4.5 6. .7 \"hi there\"");
  REQUIRE(toks.size() == 8);
  CHECK(toks[0].type == T::Number);
  CHECK(toks[0].lexeme == "123");
  CHECK(toks[1].lexeme == "4.5");
  CHECK(toks[2].lexeme == "6");  // the dot is a separate token
  CHECK(toks[3].type == T::Dot);
  CHECK(toks[4].type == T::Dot);
  CHECK(toks[5].lexeme == "7");
  CHECK(toks[6].type == T::String);
  CHECK(toks[6].lexeme == "\"hi there\"");
}

TEST_CASE("lines, comments and multi-line strings") {
  auto toks = scanAll("a // comment ( \n b\n\"x\ny\" c");
  REQUIRE(toks.size() == 5);
  CHECK(toks[0].line == 1);
  CHECK(toks[1].line == 2);
  CHECK(toks[2].type == T::String);
  CHECK(toks[2].line == 4);  // clox: a string token reports the line it ends on
  CHECK(toks[3].line == 4);
  CHECK(toks[4].type == T::Eof);
}

TEST_CASE("errors") {
  auto toks = scanAll("a @ b \"open");
  REQUIRE(toks.size() == 5);
  CHECK(toks[1].type == T::Error);
  CHECK(toks[1].lexeme == "Unexpected character.");
  CHECK(toks[2].lexeme == "b");
  CHECK(toks[3].type == T::Error);
  CHECK(toks[3].lexeme == "Unterminated string.");
  CHECK(toks[4].type == T::Eof);
}

TEST_CASE("a UTF-8 byte order mark is skipped at the start only") {
  CHECK(typesOf("\xEF\xBB\xBFprint 1;") ==
        std::vector<TokenType>{T::Print, T::Number, T::Semicolon, T::Eof});
  CHECK(scanAll("\xEF\xBB\xBFx")[0].lexeme == "x");
  CHECK(typesOf("\xEF\xBB\xBF") == std::vector<TokenType>{T::Eof});
  // Elsewhere it is not whitespace.
  auto toks = scanAll("x \xEF\xBB\xBF");
  REQUIRE(toks.size() >= 2);
  CHECK(toks[1].type == T::Error);
}

TEST_CASE("string escapes: an escaped quote does not end the string; a bad escape is an error") {
  auto toks = scanAll(R"("a\"b" "\q" "\x4g" x)");
  REQUIRE(toks.size() == 5);
  CHECK(toks[0].type == T::String);
  CHECK(toks[0].lexeme == R"("a\"b")");
  CHECK(toks[1].type == T::Error);
  CHECK(toks[1].lexeme == "Invalid escape sequence.");
  CHECK(toks[2].type == T::Error);
  CHECK(toks[3].lexeme == "x");
  auto multi = scanAll("\"a\n\\z\" y");  // the error is on the line the string ends on
  REQUIRE(multi.size() == 3);
  CHECK(multi[0].type == T::Error);
  CHECK(multi[0].line == 2);
  CHECK(multi[1].line == 2);
}

TEST_CASE("unescape decodes every escape") {
  std::string out;
  REQUIRE(unescape(R"(n\n t\t r\r q\" b\\ z\0)", &out));
  CHECK(out == std::string("n\n t\t r\r q\" b\\ z\0", 17));
  out.clear();
  REQUIRE(unescape(R"(\x41\xfF\u{41}\u{e9}\u{20ac}\u{1F600}\u{10ffff})", &out));
  CHECK(out == "A\xff" "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
  for (const char* bad : {"\\", "\\a", "\\x", "\\x1", "\\xz1", "\\u41", "\\u{", "\\u{}", "\\u{41",
                          "\\u{110000}", "\\u{d800}", "\\u{dfff}", "\\u{0000041}", "\\u{4g}"}) {
    CAPTURE(bad);
    CHECK_FALSE(unescape(bad, nullptr));
  }
  CHECK(unescape("plain", nullptr));
}

TEST_CASE("Eof forever") {
  Scanner s("");
  for (int i = 0; i < 3; ++i) CHECK(s.next().type == T::Eof);
}

}  // namespace
}  // namespace spindle::lang
