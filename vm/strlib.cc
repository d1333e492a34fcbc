// strlib.cc: the string library (as Lua's lstrlib.c): the methods of strings, list.join,
// and the globals chr, str, num and format.
//
// Methods are natives held by stringMethods_ / listMethods_, classes no script can name
// (VM roots, never changed after registerStringLib). INVOKE on a string, or on a list
// with a name other than the interpreter's own push/pop/len, looks the name up there
// (VM::invokeLibMethod) and calls the native with the receiver as args[0] and the
// script's arguments after it. Strings are byte strings: indices are byte offsets,
// upper/lower change ASCII letters only, `s[i]` and `chr(n)` are one-byte strings.
//
// Every result string goes through VM::intern (hashed and copied with checkpoints);
// one-byte results are the VM's byteString(b). Work that grows with the input (scanning,
// copying, splitting, joining) is charged to a lib::WorkMeter, so it passes a checkpoint
// every kCheckpointBytes. The receiver and arguments stay on the caller's stack, lists and
// strings made here are fresh (black while marking) and reachable from this frame only:
// valid across those checkpoints under the slice rule (lib.h, ARCHITECTURE "What bounds a
// pause"). A result longer than lib::maxStringLength() is the error "String too long.".
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "lang/number_format.h"
#include "vm/barrier.h"
#include "vm/lib.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace {

using lib::StringBuilder;
using lib::WorkMeter;
constexpr std::size_t npos = std::string_view::npos;

std::string_view self(const Value* args) { return as<ObjString>(args[0])->view(); }

// A piece of a string as a string value (one byte: the shared one-byte string).
Value slice(VM& vm, std::string_view s) {
  if (s.size() == 1) return Value::object(vm.byteString(static_cast<unsigned char>(s[0])));
  return Value::object(vm.intern(s));
}

// Needles up to this long are found by memchr on their first byte and memcmp of the rest:
// at most kShortNeedle - 1 bytes compared per candidate, so linear, and without memmem's
// per-call setup (a shift table), which dominated finds in short strings.
constexpr std::size_t kShortNeedle = 16;

// The first of the `starts` positions from p where needle (1..kShortNeedle bytes, all of
// it inside the text for every start) begins, or null.
const char* findShort(const char* p, std::size_t starts, std::string_view needle) {
  const char* const end = p + starts;
  while (p < end) {
    p = static_cast<const char*>(std::memchr(p, needle[0], static_cast<std::size_t>(end - p)));
    if (p == nullptr) return nullptr;
    if (std::memcmp(p + 1, needle.data() + 1, needle.size() - 1) == 0) return p;
    ++p;
  }
  return nullptr;
}

// The first index >= from where needle starts in hay, or npos. findShort or memmem
// (linear) over windows of kCheckpointBytes start positions, charged to the meter.
// memchr also keeps sanitizers linear: their memmem interceptor reads the whole window on
// every call, however early the match.
std::size_t findBytes(std::string_view hay, std::string_view needle, std::size_t from,
                      WorkMeter& meter) {
  if (from > hay.size()) return npos;
  if (needle.empty()) return from;
  while (needle.size() <= hay.size() - from) {
    const std::size_t starts = std::min(hay.size() - needle.size() + 1 - from, runtime::kCheckpointBytes);
    const void* p = needle.size() <= kShortNeedle
                        ? findShort(hay.data() + from, starts, needle)
                        : memmem(hay.data() + from, starts + needle.size() - 1, needle.data(), needle.size());
    if (p != nullptr) return static_cast<std::size_t>(static_cast<const char*>(p) - hay.data());
    from += starts;
    meter.charge(starts + needle.size());
  }
  return npos;
}

// memcmp in kCheckpointBytes pieces.
int compareBytes(const char* a, const char* b, std::size_t n, WorkMeter& meter) {
  for (std::size_t done = 0; done < n;) {
    const std::size_t k = std::min(n - done, runtime::kCheckpointBytes);
    if (const int c = std::memcmp(a + done, b + done, k); c != 0) return c;
    done += k;
    meter.charge(k);
  }
  return 0;
}

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// str(v)'s text: numbers in the shortest round-trip form, other values as print shows them.
void appendStr(VM& vm, Value v, StringBuilder& out) {
  if (isKind(v, ObjKind::String)) {
    out.append(as<ObjString>(v)->view());
  } else if (v.isNumber()) {
    out.append(lang::formatNumberRoundTrip(v.asNumber()));
  } else {
    out.append(vm.toString(v));
  }
}

// --- string methods (args[0] is the receiver) -----------------------------------------

bool strLen(VM&, const void*, int, Value* args, Value* result) {
  *result = Value::number(static_cast<double>(self(args).size()));
  return true;
}

bool strByte(VM& vm, const void*, int, Value* args, Value* result) {
  std::uint32_t i = 0;
  if (const char* error = lib::stringIndex(as<ObjString>(args[0]), args[1], &i)) return vm.raise(error);
  *result = Value::number(static_cast<unsigned char>(self(args)[i]));
  return true;
}

// An optional index argument clamped to [0, len] (absent: dflt).
bool clampedIndex(VM& vm, std::string_view fn, int argc, Value* args, int i, std::size_t len,
                  std::size_t dflt, std::size_t* out) {
  if (argc < i) {
    *out = dflt;
    return true;
  }
  double d = 0;
  if (!lib::intArg(vm, fn, i, args[i], &d)) return false;
  *out = d <= 0 ? 0 : d >= static_cast<double>(len) ? len : static_cast<std::size_t>(d);
  return true;
}

bool strSub(VM& vm, const void*, int argc, Value* args, Value* result) {
  if (!lib::argCount(vm, argc, 1, 2)) return false;
  const std::string_view s = self(args);
  std::size_t start = 0, end = 0;
  if (!clampedIndex(vm, "sub", argc, args, 1, s.size(), 0, &start) ||
      !clampedIndex(vm, "sub", argc, args, 2, s.size(), s.size(), &end)) {
    return false;
  }
  *result = slice(vm, end <= start ? std::string_view() : s.substr(start, end - start));
  return true;
}

bool strFind(VM& vm, const void*, int argc, Value* args, Value* result) {
  if (!lib::argCount(vm, argc, 1, 2)) return false;
  const std::string_view s = self(args);
  ObjString* t = nullptr;
  std::size_t from = 0;
  if (!lib::stringArg(vm, "find", 1, args[1], &t) ||
      !clampedIndex(vm, "find", argc, args, 2, s.size(), 0, &from)) {
    return false;
  }
  WorkMeter meter;
  const std::size_t at = findBytes(s, t->view(), from, meter);
  *result = Value::number(at == npos ? -1.0 : static_cast<double>(at));
  return true;
}

bool strSplit(VM& vm, const void*, int, Value* args, Value* result) {
  ObjString* sep = nullptr;
  if (!lib::stringArg(vm, "split", 1, args[1], &sep)) return false;
  const std::string_view s = self(args);
  const std::string_view by = sep->view();
  ObjList* list = vm.newList(0, nullptr);
  WorkMeter meter;
  if (by.empty()) {
    for (char c : s) {
      vm.listPush(list, Value::object(vm.byteString(static_cast<unsigned char>(c))));
      meter.charge(sizeof(Value));
    }
  } else {
    for (std::size_t from = 0;;) {
      const std::size_t at = findBytes(s, by, from, meter);
      const std::string_view piece = s.substr(from, at == npos ? npos : at - from);
      vm.listPush(list, slice(vm, piece));
      meter.charge(piece.size() + sizeof(Value));
      if (at == npos) break;
      from = at + by.size();
    }
  }
  *result = Value::object(list);
  return true;
}

bool strReplace(VM& vm, const void*, int, Value* args, Value* result) {
  ObjString *from = nullptr, *to = nullptr;
  if (!lib::stringArg(vm, "replace", 1, args[1], &from) ||
      !lib::stringArg(vm, "replace", 2, args[2], &to)) {
    return false;
  }
  const std::string_view s = self(args), old = from->view(), with = to->view();
  WorkMeter meter;
  StringBuilder out(meter);
  if (old.empty()) {  // `with` before every byte and at the end (Go's strings.ReplaceAll)
    for (char c : s) {
      out.append(with);
      out.append(c);
    }
    out.append(with);
  } else {
    for (std::size_t at = 0;;) {
      const std::size_t next = findBytes(s, old, at, meter);
      out.append(s.substr(at, next == npos ? npos : next - at));
      if (next == npos) break;
      out.append(with);
      at = next + old.size();
    }
  }
  return out.finish(vm, result);
}

bool strTrim(VM& vm, const void*, int, Value* args, Value* result) {
  const std::string_view s = self(args);
  WorkMeter meter;
  std::size_t start = 0, end = s.size();
  for (; start < end && isSpace(s[start]); ++start) meter.charge(1);
  for (; end > start && isSpace(s[end - 1]); --end) meter.charge(1);
  *result = slice(vm, s.substr(start, end - start));
  return true;
}

// Copies the receiver a kCheckpointBytes piece at a time (charged by the builder) and maps
// each piece in place.
template <char kFrom, char kTo>
bool strMapCase(VM& vm, const void*, int, Value* args, Value* result) {
  const std::string_view s = self(args);
  WorkMeter meter;
  StringBuilder out(meter);
  for (std::size_t at = 0; at < s.size(); at += runtime::kCheckpointBytes) {
    const std::size_t from = out.size();
    out.append(s.substr(at, runtime::kCheckpointBytes));
    std::string& text = out.text();
    for (std::size_t i = from; i < text.size(); ++i) {
      if (text[i] >= kFrom && text[i] <= kFrom + 25) text[i] = static_cast<char>(text[i] - kFrom + kTo);
    }
  }
  return out.finish(vm, result);
}

bool strStartsWith(VM& vm, const void*, int, Value* args, Value* result) {
  ObjString* p = nullptr;
  if (!lib::stringArg(vm, "startsWith", 1, args[1], &p)) return false;
  const std::string_view s = self(args);
  WorkMeter meter;
  *result = Value::boolean(p->length <= s.size() && compareBytes(s.data(), p->chars(), p->length, meter) == 0);
  return true;
}

bool strEndsWith(VM& vm, const void*, int, Value* args, Value* result) {
  ObjString* p = nullptr;
  if (!lib::stringArg(vm, "endsWith", 1, args[1], &p)) return false;
  const std::string_view s = self(args);
  WorkMeter meter;
  *result = Value::boolean(p->length <= s.size() &&
                           compareBytes(s.data() + s.size() - p->length, p->chars(), p->length, meter) == 0);
  return true;
}

bool strRepeat(VM& vm, const void*, int, Value* args, Value* result) {
  double n = 0;
  if (!lib::intArg(vm, "repeat", 1, args[1], &n)) return false;
  if (n < 0) return vm.raise("repeat() argument 1 must not be negative.");
  const std::string_view s = self(args);
  if (!s.empty() && n > static_cast<double>(lib::maxStringLength() / s.size())) return vm.raise("String too long.");
  const auto times = s.empty() ? 0 : static_cast<std::size_t>(n);
  WorkMeter meter;
  StringBuilder out(meter);
  out.text().reserve(times * s.size());
  for (std::size_t i = 0; i < times; ++i) out.append(s);
  return out.finish(vm, result);
}

// --- list methods -----------------------------------------------------------------------

// Race-safe as printing is: bounded by the count and the capacity of the storage loaded.
bool listJoin(VM& vm, const void*, int, Value* args, Value* result) {
  ObjString* sep = nullptr;
  if (!lib::stringArg(vm, "join", 1, args[1], &sep)) return false;
  auto* list = as<ObjList>(args[0]);
  ValueArray* items = loadPtr(&list->items);
  const std::uint32_t count = std::min(
      listCount(list), items->capacity);
  WorkMeter meter;
  StringBuilder out(meter);
  for (std::uint32_t i = 0; i < count; ++i) {
    if (i > 0) out.append(sep->view());
    const Value v = loadValue(&items->data()[i]);
    if (isKind(v, ObjKind::String)) {
      out.append(as<ObjString>(v)->view());
    } else {
      out.append(vm.toString(v));
    }
    meter.charge(sizeof(Value));
  }
  return out.finish(vm, result);
}

// --- globals ----------------------------------------------------------------------------

bool nativeChr(VM& vm, const void*, int, Value* args, Value* result) {
  double n = 0;
  if (!lib::intArg(vm, "chr", 1, args[0], &n)) return false;
  if (n < 0 || n > 255) return vm.raise("chr() argument 1 must be in 0..255.");
  *result = Value::object(vm.byteString(static_cast<unsigned char>(n)));
  return true;
}

bool nativeStr(VM& vm, const void*, int, Value* args, Value* result) {
  if (isKind(args[0], ObjKind::String)) {
    *result = args[0];
    return true;
  }
  WorkMeter meter;
  StringBuilder out(meter);
  appendStr(vm, args[0], out);
  return out.finish(vm, result);
}

// The number a decimal string spells (surrounding whitespace allowed; inf, -inf, nan),
// else nil. A number is itself; any other value nil.
bool nativeNum(VM&, const void*, int, Value* args, Value* result) {
  *result = Value::nil();
  if (args[0].isNumber()) {
    *result = args[0];
    return true;
  }
  if (!isKind(args[0], ObjKind::String)) return true;
  std::string_view s = as<ObjString>(args[0])->view();
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  double d = 0;
  if (lang::parseNumber(s, d)) *result = Value::number(d);
  return true;
}

// The `{}`s in a format string (`{{` and `}}` are braces), for format()'s error.
int formatSlots(std::string_view s, WorkMeter& meter) {
  int slots = 0;
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    if ((s[i] == '{' && s[i + 1] == '{') || (s[i] == '}' && s[i + 1] == '}')) {
      ++i;
    } else if (s[i] == '{' && s[i + 1] == '}') {
      ++slots;
      ++i;
    }
    meter.charge(1);
  }
  return slots;
}

// format(fmt, ...): `{}` is str() of the next argument, `{{` and `}}` are braces, any
// other brace is itself. One pass: the text between braces is appended as one piece (at
// most kCheckpointBytes at a time, so the scan is charged as it goes).
bool nativeFormat(VM& vm, const void*, int argc, Value* args, Value* result) {
  if (!lib::argCount(vm, argc, 1, INT_MAX)) return false;
  ObjString* f = nullptr;
  if (!lib::stringArg(vm, "format", 1, args[0], &f)) return false;
  const std::string_view s = f->view();
  WorkMeter meter;
  StringBuilder out(meter);
  int next = 1;
  std::size_t run = 0;  // where the text not yet appended starts
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c != '{' && c != '}') {
      if (i - run >= runtime::kCheckpointBytes) {
        out.append(s.substr(run, i - run));
        run = i;
      }
      continue;
    }
    const char d = i + 1 < s.size() ? s[i + 1] : '\0';
    if (d == c) {  // `{{` or `}}`: the first brace ends the run
      out.append(s.substr(run, i + 1 - run));
      run = ++i + 1;
    } else if (c == '{' && d == '}') {
      out.append(s.substr(run, i - run));
      if (next == argc) {
        return vm.raise(fmt::format("format() needs {} arguments but got {}.", formatSlots(s, meter), argc - 1));
      }
      appendStr(vm, args[next++], out);
      run = ++i + 1;
    }
  }
  out.append(s.substr(run));
  return out.finish(vm, result);
}

struct LibFn {
  const char* name;
  int arity;  // -1: checked by the native
  NativeFn fn;
};

constexpr LibFn kStringMethods[] = {
    {"len", 0, strLen},
    {"byte", 1, strByte},
    {"sub", -1, strSub},
    {"find", -1, strFind},
    {"split", 1, strSplit},
    {"replace", 2, strReplace},
    {"trim", 0, strTrim},
    {"upper", 0, strMapCase<'a', 'A'>},
    {"lower", 0, strMapCase<'A', 'a'>},
    {"startsWith", 1, strStartsWith},
    {"endsWith", 1, strEndsWith},
    {"repeat", 1, strRepeat},
};

constexpr LibFn kListMethods[] = {
    {"join", 1, listJoin},
};

constexpr LibFn kGlobals[] = {
    {"chr", 1, nativeChr},
    {"str", 1, nativeStr},
    {"num", 1, nativeNum},
    {"format", -1, nativeFormat},
};

}  // namespace

int VM::compareStrings(const ObjString* a, const ObjString* b) {
  WorkMeter meter;
  const std::uint32_t n = std::min(a->length, b->length);
  if (const int c = compareBytes(a->chars(), b->chars(), n, meter); c != 0) return c;
  return a->length < b->length ? -1 : a->length > b->length ? 1 : 0;
}

// Racing first uses intern the same string (it is reachable from the racer that interned
// it first) and store the same pointer. A store while marking needs no shade: intern shades
// what it finds and allocates black.
ObjString* VM::internByteString(unsigned char b) {
  const char c = static_cast<char>(b);
  ObjString* s = intern(std::string_view(&c, 1));
  byteStrings_[b].store(s, std::memory_order_release);  // pairs with byteString's acquire
  return s;
}

void VM::registerStringLib() {
  auto methods = [&](std::string_view className, const auto& defs) {
    ObjClass* k = newClass(intern(className));
    for (const LibFn& d : defs) {
      ObjString* name = intern(d.name);
      setMethod(k, name, Value::object(newNative(name, d.arity, d.fn)));
    }
    return k;
  };
  setRoot(stringMethods_, methods("String", kStringMethods));
  setRoot(listMethods_, methods("List", kListMethods));
  for (const LibFn& d : kGlobals) setGlobal(globalSlot(d.name), Value::object(newNative(d.name, d.arity, d.fn)));
}

}  // namespace spindle::vm
