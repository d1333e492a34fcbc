// typeinfo.h: TypeInfo, what the collector knows about a scan object's layout.
//
// A scan object (one that may hold heap pointers) starts with a header word pointing at
// its TypeInfo. The trace function reports every pointer slot of an object to a
// visitor; the collector (later) finds pointers precisely through it. An object whose
// type has no trace function, or that is allocated with no type, holds no pointers and
// lives in a noscan span (its memory is never scanned).
#pragma once

#include <cstddef>

namespace spindle::runtime {

using VisitFn = void (*)(void* ctx, void** slot);
using TraceFn = void (*)(void* object, VisitFn visit, void* ctx);

struct TypeInfo {
  const char* name = "";
  std::size_t size = 0;     // object size in bytes, header included
  TraceFn trace = nullptr;  // null: the object holds no heap pointers (noscan)
};

// The header word of a scan object.
struct ObjectHeader {
  const TypeInfo* type;
};

inline constexpr std::size_t kObjectHeaderSize = sizeof(ObjectHeader);

inline bool typeIsNoscan(const TypeInfo* t) { return t == nullptr || t->trace == nullptr; }

}  // namespace spindle::runtime
