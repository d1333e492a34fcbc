// mcentral.h: MCentral, the central list of spans of one span class (Go's mcentral.go).
//
// Spans with free slots are "partial", spans without are "full"; each kind is kept in
// two SpanSets, one swept and one unswept, and which is which flips every cycle:
//   swept set   = sets[sweepgen/2 % 2]
//   unswept set = sets[1 - sweepgen/2 % 2]
// so "sweepgen += 2" at the start of a sweep turns every swept set into an unswept one
// without moving a span.
// Shards (not in Go, whose mcentral has one of each set): the four sets are split into
// kShards shards. A span belongs to the shard of the last P that cached it
// (MSpan::shard, P id % kShards); uncaching and sweeping put it back there. A P looks in
// its own shard first, so in steady state it reuses the spans it filled: their MSpan,
// bits and memory are still in its cache, and no other P touches the sets' words.
// Only when its shard has nothing does it take from the others, before growing.
//   cacheSpan()   gives an MCache a span with free slots: a swept partial span, else
//                 an unswept one it sweeps itself (claiming it by CAS sg-2 -> sg-1),
//                 from its own shard, then from the others; else a fresh span from
//                 grow().
//   uncacheSpan() takes a span back from an MCache; a span cached before the current
//                 sweep began (sweepgen == sg+1) is swept here.
//   pushSwept()   puts a swept span into its shard's partial or full swept set.
//   grow()        allocates a new span of this class from the heap; if its pages were
//                 used before, needzero is Rest (one memset at the first zeroing
//                 allocation, mspan.h).
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
  void pushSwept(MSpan* s, std::uint32_t sg);

  static constexpr std::uint32_t kShards = 8;
  // The shard of the calling thread's P (0 without one).
  static std::uint8_t currentShard();
  SpanSet& partialSwept(std::uint32_t sg, std::uint32_t k) {
    return shards_[k].partial[sg / 2 % 2];
  }
  SpanSet& partialUnswept(std::uint32_t sg, std::uint32_t k) {
    return shards_[k].partial[1 - sg / 2 % 2];
  }
  SpanSet& fullSwept(std::uint32_t sg, std::uint32_t k) { return shards_[k].full[sg / 2 % 2]; }
  SpanSet& fullUnswept(std::uint32_t sg, std::uint32_t k) {
    return shards_[k].full[1 - sg / 2 % 2];
  }

 private:
  MSpan* sweepUnsweptFrom(SpanSet& set, std::uint32_t sg, int& budget);
  // A span with free slots from shard k's sets (swept partial, else sweeping unswept
  // ones within `budget`), or null.
  MSpan* takeFromShard(std::uint32_t k, std::uint32_t sg, int& budget);

  struct Shard {
    SpanSet partial[2];
    SpanSet full[2];
  };
  SpanClass spanclass_{};
  MHeap* heap_ = nullptr;
  Shard shards_[kShards];
};

}  // namespace spindle::runtime
