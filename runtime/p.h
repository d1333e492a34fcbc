// p.h: P, a worker context (Go's p in runtime2.go).
//
// A P is the right to run Go-style work: an M (OS thread) must hold a P to allocate
// on the heap or run fibers (Gs). There are `procs` Ps. Each P owns per-P caches so
// that its fast paths take no lock: its MCache (one span per span class), a cache of
// MSpan structs, and (from the scheduler) a local run queue; later a pinner cache
// and a GC work buffer.
//
// Ownership: at most one M holds a P at a time. P-local state is touched only by the
// M holding the P, or by a stopper while the world is stopped.
//
// Sections below are filled by the heap and the scheduler; each owns its own.
#pragma once

#include <cstdint>

namespace spindle::runtime {

struct P {
  explicit P(std::int32_t id) : id(id) {}
  P(const P&) = delete;
  P& operator=(const P&) = delete;

  const std::int32_t id;

  // --- heap (mcache.h, mheap.h) -------------------------------------------------

  // --- scheduler (proc.h) -------------------------------------------------------
};

}  // namespace spindle::runtime
