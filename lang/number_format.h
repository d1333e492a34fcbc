// number_format.h: how Lox writes numbers as text, and reads them.
//
// formatNumber is how `print` shows a number, exactly as clox does: printf("%g"), six
// significant digits, trailing zeros dropped, exponent form outside [1e-4, 1e6). So
// `print 1.0;` prints 1, `print 0.1 + 0.2;` prints 0.3, `print 1/3;` prints 0.333333,
// `print 1000000;` prints 1e+06, `print -0;` prints -0. Infinities print inf / -inf, NaNs
// nan or -nan (the C library's spelling). The VM uses it for print and string conversion
// of list elements; the disassembler for constants.
//
// formatNumberRoundTrip is str()'s form: the fewest significant digits that read back as
// exactly the same double (std::to_chars' shortest form), laid out as ECMAScript's
// Number::toString lays them out: plain digits while the decimal exponent n (the value is
// 0.d1d2... x 10^n) is in (-6, 21], else d1.d2...e+X / e-X. So 0.1 -> 0.1, 1e21 -> 1e+21,
// 4999950000 -> 4999950000, 1/3 -> 0.3333333333333333, 1e-7 -> 1e-7. Unlike ECMAScript,
// -0 -> -0 (it reads back exactly), and the non-finite values are inf, -inf, nan (what
// num() reads).
//
// parseNumber reads all of a text as a double (std::from_chars' syntax: digits, fraction,
// exponent; inf, nan): number literals (the compiler) and num(). A magnitude beyond the
// doubles reads as +-inf, one below them as 0 or a denormal, as C's strtod (and clox) read
// them: 1e309 is inf, never 0.
#pragma once

#include <string>
#include <string_view>

namespace spindle::lang {

std::string formatNumber(double value);
std::string formatNumberRoundTrip(double value);
// False (out untouched) when text is empty or not wholly a number.
bool parseNumber(std::string_view text, double& out);

}  // namespace spindle::lang
