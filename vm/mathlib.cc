// mathlib.cc: the `math` global (as Lua's lmathlib.c): an instance of the class Math
// whose fields are natives (floor ceil round trunc abs sqrt pow exp log log2 log10 sin cos
// tan asin acos atan atan2 min max isNan isInf random randomInt seed) and constants (pi,
// e, inf, nan). A script calls them as methods of any instance: INVOKE finds the field
// (its inline cache keeps the slot) and calls the native with the arguments only. The
// fields are ordinary fields: a script may overwrite them, as a Lua script may its math
// table's.
//
// Every function takes numbers (anything else: "math.f() argument i must be a number.").
// round is half away from zero (C's round); min and max are NaN when either operand is.
//
// Random numbers: splitmix64 over VM::randomState_, a counter advanced by fetch_add, so
// fibers drawing at once each get a distinct step and never race; after math.seed(n) the
// sequence is a function of n alone. Unseeded, a Vm's state is the next step of a
// process-wide splitmix64 sequence that starts from getrandom(2) once per process
// (opening the device is most of a Vm's creation cost when done per Vm).
// random() is 53 random bits scaled into [0, 1); randomInt(lo, hi) is uniform over the
// integers of [lo, hi] (Lemire's multiply-shift over 64 random bits).
#include <atomic>
#include <bit>
#include <cmath>
#include <numbers>
#include <random>

#include <sys/random.h>

#include "vm/lib.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace {

constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ull;

std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t nextRandom(VM& vm) {
  return mix(vm.randomState_.fetch_add(kGolden, std::memory_order_relaxed) + kGolden);
}

struct Unary {
  const char* name;  // as errors show it: "math.floor"
  double (*fn)(double);
};
struct Binary {
  const char* name;
  double (*fn)(double, double);
};

constexpr Unary kUnary[] = {
    {"math.floor", [](double x) { return std::floor(x); }},
    {"math.ceil", [](double x) { return std::ceil(x); }},
    {"math.round", [](double x) { return std::round(x); }},
    {"math.trunc", [](double x) { return std::trunc(x); }},
    {"math.abs", [](double x) { return std::fabs(x); }},
    {"math.sqrt", [](double x) { return std::sqrt(x); }},
    {"math.exp", [](double x) { return std::exp(x); }},
    {"math.log", [](double x) { return std::log(x); }},
    {"math.log2", [](double x) { return std::log2(x); }},
    {"math.log10", [](double x) { return std::log10(x); }},
    {"math.sin", [](double x) { return std::sin(x); }},
    {"math.cos", [](double x) { return std::cos(x); }},
    {"math.tan", [](double x) { return std::tan(x); }},
    {"math.asin", [](double x) { return std::asin(x); }},
    {"math.acos", [](double x) { return std::acos(x); }},
    {"math.atan", [](double x) { return std::atan(x); }},
};

constexpr Binary kBinary[] = {
    {"math.pow", [](double x, double y) { return std::pow(x, y); }},
    {"math.atan2", [](double y, double x) { return std::atan2(y, x); }},
    {"math.min", [](double x, double y) { return std::isnan(x) || std::isnan(y) ? NAN : x < y ? x : y; }},
    {"math.max", [](double x, double y) { return std::isnan(x) || std::isnan(y) ? NAN : x > y ? x : y; }},
};

bool mathUnary(VM& vm, const void* host, int, Value* args, Value* result) {
  const auto* f = static_cast<const Unary*>(host);
  double x = 0;
  if (!lib::numberArg(vm, f->name, 1, args[0], &x)) return false;
  *result = Value::number(f->fn(x));
  return true;
}

bool mathBinary(VM& vm, const void* host, int, Value* args, Value* result) {
  const auto* f = static_cast<const Binary*>(host);
  double x = 0, y = 0;
  if (!lib::numberArg(vm, f->name, 1, args[0], &x) || !lib::numberArg(vm, f->name, 2, args[1], &y)) return false;
  *result = Value::number(f->fn(x, y));
  return true;
}

bool mathIsNan(VM& vm, const void*, int, Value* args, Value* result) {
  double x = 0;
  if (!lib::numberArg(vm, "math.isNan", 1, args[0], &x)) return false;
  *result = Value::boolean(std::isnan(x));
  return true;
}

bool mathIsInf(VM& vm, const void*, int, Value* args, Value* result) {
  double x = 0;
  if (!lib::numberArg(vm, "math.isInf", 1, args[0], &x)) return false;
  *result = Value::boolean(std::isinf(x));
  return true;
}

bool mathRandom(VM& vm, const void*, int, Value*, Value* result) {
  *result = Value::number(static_cast<double>(nextRandom(vm) >> 11) * 0x1.0p-53);
  return true;
}

bool mathRandomInt(VM& vm, const void*, int, Value* args, Value* result) {
  double lo = 0, hi = 0;
  if (!lib::intArg(vm, "math.randomInt", 1, args[0], &lo) || !lib::intArg(vm, "math.randomInt", 2, args[1], &hi)) {
    return false;
  }
  constexpr double kExact = 9007199254740992.0;  // 2^53: every integer up to it is a double
  if (std::fabs(lo) > kExact || std::fabs(hi) > kExact) {
    return vm.raise("math.randomInt() arguments must be integers in [-2^53, 2^53].");
  }
  if (lo > hi) return vm.raise("math.randomInt() argument 1 must not be greater than argument 2.");
  const auto range = static_cast<std::uint64_t>(static_cast<std::int64_t>(hi) - static_cast<std::int64_t>(lo)) + 1;
  const auto pick = static_cast<std::uint64_t>((static_cast<unsigned __int128>(nextRandom(vm)) * range) >> 64);
  *result = Value::number(static_cast<double>(static_cast<std::int64_t>(lo) + static_cast<std::int64_t>(pick)));
  return true;
}

bool mathSeed(VM& vm, const void*, int, Value* args, Value* result) {
  double n = 0;
  if (!lib::numberArg(vm, "math.seed", 1, args[0], &n)) return false;
  vm.randomState_.store(mix(std::bit_cast<std::uint64_t>(n)), std::memory_order_relaxed);
  *result = Value::nil();
  return true;
}

struct Other {
  const char* name;
  int arity;
  NativeFn fn;
};

constexpr Other kOther[] = {
    {"isNan", 1, mathIsNan},   {"isInf", 1, mathIsInf}, {"random", 0, mathRandom},
    {"randomInt", 2, mathRandomInt}, {"seed", 1, mathSeed},
};

}  // namespace

namespace {
std::uint64_t freshSeed() {
  static std::atomic<std::uint64_t> process = [] {
    // getrandom(2), not std::random_device: libstdc++'s probes the CPU (cpuid for
    // rdrand), which traps to the hypervisor on a VM and showed in start-up profiles.
    std::uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof seed)) {
      std::random_device device;  // no entropy yet (early boot): libstdc++'s fallback
      seed = (std::uint64_t{device()} << 32) ^ device();
    }
    return seed;
  }();
  return mix(process.fetch_add(kGolden, std::memory_order_relaxed) + kGolden);
}
}  // namespace

void VM::registerMathLib() {
  randomState_.store(freshSeed(), std::memory_order_relaxed);
  ObjInstance* math = newInstance(newClass(intern("Math")));
  // The instance is a root as soon as the global holds it; fields are added after.
  setGlobal(globalSlot("math"), Value::object(math));
  auto function = [&](std::string_view name, int arity, NativeFn fn, const void* host) {
    ObjString* key = intern(name);
    storeField(math, key, Value::object(newNative(key, arity, fn, host)));
  };
  constexpr std::string_view kPrefix = "math.";
  for (const Unary& f : kUnary) function(std::string_view(f.name).substr(kPrefix.size()), 1, mathUnary, &f);
  for (const Binary& f : kBinary) function(std::string_view(f.name).substr(kPrefix.size()), 2, mathBinary, &f);
  for (const Other& f : kOther) function(f.name, f.arity, f.fn, nullptr);
  auto constant = [&](std::string_view name, double v) { storeField(math, intern(name), Value::number(v)); };
  constant("pi", std::numbers::pi);
  constant("e", std::numbers::e);
  constant("inf", INFINITY);
  constant("nan", NAN);
}

}  // namespace spindle::vm
