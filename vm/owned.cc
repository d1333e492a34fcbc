// owned.cc: C++ memory owned by heap objects: a channel's hchan, an instance's host data.
//
// Design. VM::own(obj, data, release, orphan) records `data` in a process-wide table
// under a fresh id and gives obj a runtime cleanup (runtime/gc.h addCleanup, Go 1.24's
// AddCleanup) whose arg is that id. A cleanup neither traces nor resurrects obj, so obj
// is freed by the sweep of the cycle that found it unreachable, also when it lies on a
// cycle (an actor whose mailbox holds a message pointing back at it); then the finalizer
// G runs releaseOwned(id), which takes the record out and runs release(data). ~VM runs
// orphan(data) for the records of that VM still in the table (the objects still alive,
// or dead with their cleanup not yet run) and takes them out: a cleanup that runs later
// (on another VM's finalizer G) finds no record and does nothing.
//
// Invariants.
//   - Under orphanLock(): a record is in the table iff its data is not yet released;
//     `data` is released exactly once, by release (cleanup) or by orphan (~VM), always
//     outside the lock (a destructor may take locks of its own).
//   - Ids are unique for the process (never reused), so a late cleanup can never release
//     another object's data. They have the top bit set: never a heap address, so the
//     runtime, which reports a cleanup's arg as a root, ignores it.
//   - The owning object is alive while its record is: the cleanup runs only after obj was
//     freed, and no one holds data past ~VM. Tracers of a live object that reach `data`
//     (traceChannel) check ownedLive(id) under orphanLock() first, as ~VM may have
//     released it while the object is still reachable from a collector in progress.
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime/gc.h"
#include "runtime/throw.h"
#include "vm/vm.h"

namespace spindle::vm {

namespace {

constexpr OwnedId kOwnedTag = OwnedId{1} << 63;

struct Owned {
  VM* vm;
  void* data;
  void (*release)(void*);  // the cleanup's: obj was freed
  void (*orphan)(void*);   // ~VM's: the VM is gone (obj may still be allocated)
};

struct OwnedTable {
  std::unordered_map<OwnedId, Owned> records;  // orphanLock()
  OwnedId next = kOwnedTag | 1;                // orphanLock()
};

OwnedTable& owned() {
  static auto* t = new OwnedTable;  // never destroyed: cleanups may outlive statics
  return *t;
}

}  // namespace

std::mutex& orphanLock() {
  static auto* lock = new std::mutex;  // never destroyed: cleanups may outlive statics
  return *lock;
}

bool ownedLive(OwnedId id) { return owned().records.count(id) != 0; }

OwnedId VM::own(Obj* obj, void* data, void (*release)(void*), void (*orphan)(void*)) {
  OwnedId id;
  {
    std::lock_guard<std::mutex> lk(orphanLock());
    id = owned().next++;
    owned().records.emplace(id, Owned{this, data, release, orphan});
  }
  const bool ok = runtime::addCleanup(obj, &VM::releaseOwned, reinterpret_cast<void*>(id));
  SPINDLE_CHECK(ok, "VM::own: object {} is not a heap object", static_cast<void*>(obj));
  return id;
}

void VM::releaseOwned(void* arg) {
  Owned o;
  {
    std::lock_guard<std::mutex> lk(orphanLock());
    auto it = owned().records.find(reinterpret_cast<OwnedId>(arg));
    if (it == owned().records.end()) return;  // ~VM released it already
    o = it->second;
    owned().records.erase(it);
  }
  o.release(o.data);
}

void VM::freeOwned() {
  std::vector<Owned> mine;
  {
    std::lock_guard<std::mutex> lk(orphanLock());
    std::erase_if(owned().records, [&](const auto& e) {
      if (e.second.vm != this) return false;
      mine.push_back(e.second);
      return true;
    });
  }
  for (const Owned& o : mine) o.orphan(o.data);
}

void VM::forEachOwned(void (*release)(void*), void (*fn)(void*)) {
  std::lock_guard<std::mutex> lk(orphanLock());
  for (const auto& [id, o] : owned().records) {
    if (o.vm == this && o.release == release) fn(o.data);
  }
}

std::size_t VM::ownedCount() const {
  std::lock_guard<std::mutex> lk(orphanLock());
  std::size_t n = 0;
  for (const auto& [id, o] : owned().records) n += o.vm == this ? 1 : 0;
  return n;
}

}  // namespace spindle::vm
