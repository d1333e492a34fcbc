// string_table.cc: see string_table.h. Also VM::intern, the only way strings are made.
#include "vm/string_table.h"

#include <cstring>

#include "runtime/gc.h"
#include "runtime/malloc.h"
#include "runtime/throw.h"
#include "vm/lib.h"
#include "vm/vm.h"

namespace spindle::vm {

StringTable& processStrings() {
  static StringTable* table = [] {
    auto* t = new StringTable;  // never destroyed: sweeps may outlive statics
    runtime::registerWeak(&kTypes[static_cast<int>(ObjKind::String)], &StringTable::sweepFree, t,
                          "string table");
    return t;
  }();
  return *table;
}

StringTable::StringTable()
    : buckets_(new ObjString*[kMinCapacity]()), mask_(kMinCapacity - 1) {}

StringTable::~StringTable() {
  delete[] buckets_;
  delete[] old_;
}

ObjString** StringTable::bucketOf(std::uint32_t hash) {
  if (old_ != nullptr && (hash & oldMask_) >= moved_) return &old_[hash & oldMask_];
  return &buckets_[hash & mask_];
}

void StringTable::rehashStep() {
  if (old_ == nullptr) return;
  for (std::size_t n = 0; n < kRehashStep && moved_ <= oldMask_; ++n, ++moved_) {
    for (ObjString* s = old_[moved_]; s != nullptr;) {
      ObjString* next = s->hnext;
      ObjString** head = &buckets_[s->hash & mask_];
      s->hnext = *head;
      *head = s;
      s = next;
    }
    old_[moved_] = nullptr;
  }
  if (moved_ > oldMask_) {
    delete[] old_;
    old_ = nullptr;
    oldMask_ = 0;
    moved_ = 0;
  }
}

ObjString* StringTable::find(std::string_view s, std::uint32_t hash) {
  if (old_ != nullptr) rehashStep();
  ObjString** head = bucketOf(hash);
  for (ObjString** link = head; *link != nullptr; link = &(*link)->hnext) {
    ObjString* e = *link;
    if (e->hash == hash && e->length == s.size() &&
        (s.empty() || std::memcmp(e->chars(), s.data(), s.size()) == 0)) {
      if (link != head) {  // move to the front: the next lookup of this text reads no other string
        *link = e->hnext;
        e->hnext = *head;
        *head = e;
      }
      return e;
    }
  }
  return nullptr;
}

void StringTable::insert(ObjString* str) {
  ObjString** head = bucketOf(str->hash);
  str->hnext = *head;
  *head = str;
  ++count_;
  ++inserts_;
  lowInserts_ = count_ < capacity() / 8 ? lowInserts_ + 1 : 0;
}

void StringTable::remove(ObjString* str) {
  for (ObjString** link = bucketOf(str->hash); *link != nullptr; link = &(*link)->hnext) {
    if (*link == str) {
      *link = str->hnext;
      --count_;
      return;
    }
  }
}

std::size_t StringTable::wantedCapacity() const {
  if (old_ != nullptr) return 0;  // one resize at a time
  const std::size_t cap = mask_ + 1;
  if (count_ > cap) return cap * 2;  // load factor at most 1
  // Shrinking waits until cap / 2 inserts in a row found the table under 1/8 full: dead
  // strings pile up between collections and leave at each sweep, so a table sized for a
  // cycle's garbage is needed again in the next cycle (shrinking it after every sweep
  // regrew it through every power of two, moving each string again).
  if (cap > kMinCapacity && count_ < cap / 8 && lowInserts_ >= cap / 2) {
    std::size_t want = kMinCapacity;
    while (want < count_ * 2) want *= 2;
    return want;
  }
  return 0;
}

ObjString** StringTable::startResize(ObjString** fresh, std::size_t capacity) {
  if (wantedCapacity() != capacity) return fresh;  // resizing already, or no longer wanted
  old_ = buckets_;
  oldMask_ = mask_;
  moved_ = 0;
  buckets_ = fresh;
  mask_ = capacity - 1;
  lowInserts_ = 0;
  return nullptr;
}

void StringTable::sweepFree(void* ctx, void* const* objs, std::size_t n) {
  auto* t = static_cast<StringTable*>(ctx);
  std::lock_guard<std::mutex> lk(t->lock_);
  for (std::size_t i = 0; i < n; ++i) t->remove(static_cast<ObjString*>(objs[i]));
}

// Hashing, allocation and copying happen outside the table's lock (they pass
// checkpoints; allocation may assist the collector or sweep). The new string needs no
// root before its insert: the checkpoints are no scan points of this G, so the only mark
// that can finish meanwhile is one that scanned this G before this slice began, and it
// allocates black (ARCHITECTURE "What bounds a pause"). A racing intern of the same text
// keeps whichever string got in first; if no string was inserted since our miss, the text
// is still absent and ours goes in without a second lookup.
ObjString* VM::intern(std::string_view s) {
  SPINDLE_DCHECK(s.size() <= lib::kMaxStringLength,
                 "intern: a string of {} bytes passes the 32-bit length (callers check lib::maxStringLength)",
                 s.size());
  const std::uint32_t hash = hashString(s);
  ObjString* str = nullptr;  // ours, once a lookup missed
  std::uint64_t missedAt = 0;  // strings_.inserts() when it missed
  std::size_t resize = 0;
  for (;;) {
    ObjString* unswept = nullptr;
    {
      std::lock_guard<std::mutex> lk(strings_.lock());
      ObjString* e = str != nullptr && strings_.inserts() == missedAt ? nullptr : strings_.find(s, hash);
      if (e == nullptr && str != nullptr) {
        strings_.insert(str);
        resize = strings_.wantedCapacity();
        break;
      }
      if (e == nullptr) missedAt = strings_.inserts();
      if (e != nullptr) {
        // Marking: the collector may have found no other reference; shade it before it
        // is handed out. Sweeping: hand it out only if its span's sweep kept it.
        if (runtime::writeBarrierEnabled()) {
          runtime::shade(e);
          return e;
        }
        if (runtime::weakSwept(e)) return e;
        unswept = e;
      }
    }
    if (unswept != nullptr) {
      // Without the lock: that sweep calls the table's hook if the string died.
      runtime::sweepSpanOf(unswept);
      continue;
    }
    // Not zeroed: every byte a reader looks at is written below.
    str = allocate<ObjString>(ObjKind::String, sizeof(ObjString) + s.size() + 1,
                              /*needzero=*/false);
    str->length = static_cast<std::uint32_t>(s.size());
    str->hash = hash;
    str->hnext = nullptr;
    // In chunks with a checkpoint between (a huge text never holds up a stop).
    if (!s.empty()) runtime::memmoveChunked(str->mutableChars(), s.data(), s.size());
    str->mutableChars()[s.size()] = '\0';
    runtime::markWeakTabled(str);
  }
  if (resize != 0) {
    // The new bucket array is zeroed without the lock; the move is incremental.
    ObjString** fresh = new ObjString*[resize]();
    {
      std::lock_guard<std::mutex> lk(strings_.lock());
      fresh = strings_.startResize(fresh, resize);
    }
    delete[] fresh;  // null unless the table no longer wanted it
  }
  return str;
}

std::size_t VM::internedCount() {
  std::lock_guard<std::mutex> lk(strings_.lock());
  return strings_.count();
}

}  // namespace spindle::vm
