// number_format.h: how Lox writes numbers as text.
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
#pragma once

#include <string>

namespace spindle::lang {

std::string formatNumber(double value);
std::string formatNumberRoundTrip(double value);

}  // namespace spindle::lang
