// mcentral.h: MCentral, the central list of spans of one span class (Go's mcentral.go).
//
// Spans with free slots are "partial", spans without are "full"; each kind is kept in
// two SpanSets, one swept and one unswept, and which is which flips every cycle:
//   swept set   = sets[sweepgen/2 % 2]
//   unswept set = sets[1 - sweepgen/2 % 2]
// so "sweepgen += 2" at the start of a sweep turns every swept set into an unswept one
// without moving a span.
//   cacheSpan()   gives an MCache a span with free slots: a swept partial span, else
//                 an unswept one it sweeps itself (claiming it by CAS sg-2 -> sg-1),
//                 else a fresh span from grow().
//   uncacheSpan() takes a span back from an MCache; a span cached before the current
//                 sweep began (sweepgen == sg+1) is swept here.
//   grow()        allocates a new span of this class from the heap, zeroing its objects
//                 in one pass if its pages were used before (needzero is then false).
// All operations are lock-free except grow (heap lock for the pages).
#pragma once

#include <cstdint>

#include "runtime/mspan.h"
#include "runtime/mspanset.h"

namespace spindle::runtime {

class MHeap;

class alignas(64) MCentral {
 public:
  void init(SpanClass spc, MHeap* heap) {
    spanclass_ = spc;
    heap_ = heap;
  }
  SpanClass spanclass() const { return spanclass_; }

  MSpan* cacheSpan();
  void uncacheSpan(MSpan* s);
  MSpan* grow();

  SpanSet& partialSwept(std::uint32_t sg) { return partial_[sg / 2 % 2]; }
  SpanSet& partialUnswept(std::uint32_t sg) { return partial_[1 - sg / 2 % 2]; }
  SpanSet& fullSwept(std::uint32_t sg) { return full_[sg / 2 % 2]; }
  SpanSet& fullUnswept(std::uint32_t sg) { return full_[1 - sg / 2 % 2]; }

 private:
  MSpan* sweepUnsweptFrom(SpanSet& set, std::uint32_t sg, int& budget);

  SpanClass spanclass_{};
  MHeap* heap_ = nullptr;
  SpanSet partial_[2];
  SpanSet full_[2];
};

}  // namespace spindle::runtime
