// typeinfo.h: TypeInfo, what the collector knows about a scan object's layout.
//
// A scan object (one that may hold heap pointers) starts with a header word pointing at
// its TypeInfo. The trace function reports every pointer slot of an object to a
// visitor; the collector (later) finds pointers precisely through it. An object whose
// type has no trace function, or that is allocated with no type, holds no pointers and
// lives in a noscan span (its memory is never scanned).
//
// Slot names ("why is this alive", gc.h retainingPath). A type may also give a labelled
// trace, which reports pointers with a name for the slot that holds them (built only
// when asked: the path walk names the few edges of one path). It may report pointers
// held in objects the object owns (a list's items array) under the owner's name, so a
// path reads "list index 4" rather than naming the array. It is never used for marking.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace spindle::runtime {

using VisitFn = void (*)(void* ctx, void** slot);
using TraceFn = void (*)(void* object, VisitFn visit, void* ctx);

// The name of a reported slot: name(env, out) appends one or more path steps to out.
// env points into the reporter's frame: valid only during the visit call.
struct SlotName {
  void (*name)(const void* env, std::vector<std::string>* out);
  const void* env;
};
using LabelVisitFn = void (*)(void* ctx, void* pointer, const SlotName& name);
using LabelTraceFn = void (*)(void* object, LabelVisitFn visit, void* ctx);
// Reports p with the name name(out) builds (a callable taking std::vector<std::string>*).
template <typename Name>
inline void visitNamed(LabelVisitFn visit, void* ctx, void* p, const Name& name) {
  if (p == nullptr) return;
  visit(ctx, p,
        SlotName{[](const void* env, std::vector<std::string>* out) { (*static_cast<const Name*>(env))(out); },
                 &name});
}

struct TypeInfo {
  const char* name = "";
  std::size_t size = 0;     // object size in bytes, header included
  TraceFn trace = nullptr;  // null: the object holds no heap pointers (noscan)
  LabelTraceFn traceLabelled = nullptr;  // optional: names slots for retainingPath
};

// The header word of a scan object.
struct ObjectHeader {
  const TypeInfo* type;
};

inline constexpr std::size_t kObjectHeaderSize = sizeof(ObjectHeader);

inline bool typeIsNoscan(const TypeInfo* t) { return t == nullptr || t->trace == nullptr; }

}  // namespace spindle::runtime
