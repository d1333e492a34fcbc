// number_format.h: how Lox prints numbers, exactly as clox does.
//
// clox prints a number with printf("%g"): six significant digits, trailing zeros
// dropped, exponent form outside [1e-4, 1e6). So `print 1.0;` prints 1, `print 0.1 + 0.2;`
// prints 0.3, `print 1/3;` prints 0.333333, `print 1000000;` prints 1e+06, `print -0;`
// prints -0. Infinities print inf / -inf, NaNs nan or -nan (the C library's spelling).
// The VM uses this for print and string conversion; the disassembler for constants.
#pragma once

#include <string>

namespace spindle::lang {

std::string formatNumber(double value);

}  // namespace spindle::lang
