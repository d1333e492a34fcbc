// sched_bench: the scheduler's hot paths, in the same shapes as benchmarks/go/sched_test.go
// (run both with benchmarks/sched_compare.sh):
//   PingPong      two Gs bounce a value over two unbuffered channels (ns per round trip)
//   SpawnJoin     spawn a batch of Gs that each signal a wait group, wait (ns per G)
//   Buffered      producer -> consumer over a channel of capacity 128 (ns per element)
//   STWPause      stopTheWorld + startTheWorld with every P busy (ns per pause)
//   ParkedMillion 1,000,000 Gs parked on a channel: RSS growth (counter rss_MiB)
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "runtime/chan.h"
#include "runtime/proc.h"
#include "runtime/testing/fnbody.h"
#include "runtime/waitgroup.h"

using namespace spindle::runtime;
using spindle::runtime::testing::fn;

namespace {

Sched& sched() {
  static Sched* s = new Sched(0);  // one per process, never destroyed (benchmark exits)
  return *s;
}

// Receive loop of one G: recv(in) then send(out, x) until x == 0.
GBody* echo(hchan* in, hchan* out, WaitGroup* wg) {
  return fn([pc = 0, x = std::uint64_t{0}, in, out, wg](G* g) mutable -> Step {
    for (;;) {
      bool ok;
      if (pc == 0) {
        pc = 1;
        if (chanrecv(in, g, &x, &ok) == ChanResult::Park) return chanRecvParkStep(in);
      } else if (pc == 1) {
        chanrecvResume(g, &x, &ok);
      }
      if (pc == 1) {
        if (x == 0) {
          wg->done();
          return Step::exit();
        }
        pc = 2;
        if (chansend(out, x, g) == ChanResult::Park) return chanSendParkStep(out);
      }
      pc = 0;  // pc == 2: the send completed
    }
  });
}

void BM_PingPong(benchmark::State& state) {
  Sched& s = sched();
  constexpr std::int64_t kBatch = 100000;
  while (state.KeepRunningBatch(kBatch)) {
    hchan* ping = makechan(0);
    hchan* pong = makechan(0);
    WaitGroup wg;
    wg.add(1);
    s.newproc(echo(ping, pong, &wg));
    s.runMain(fn([pc = 0, i = std::int64_t{0}, ping, pong, &wg](G* g) mutable -> Step {
      std::uint64_t y;
      bool ok;
      for (;;) {
        switch (pc) {
          case 0:
            if (i == kBatch) {
              pc = 3;
              if (chansend(ping, 0, g) == ChanResult::Park) return chanSendParkStep(ping);
              continue;
            }
            pc = 1;
            if (chansend(ping, 1, g) == ChanResult::Park) return chanSendParkStep(ping);
            [[fallthrough]];
          case 1:
            pc = 2;
            if (chanrecv(pong, g, &y, &ok) == ChanResult::Park) return chanRecvParkStep(pong);
            [[fallthrough]];
          case 2:
            i++;
            pc = 0;
            continue;
          case 3:
            pc = 4;
            if (!wg.wait(g)) return wg.parkStep();
            [[fallthrough]];
          default:
            return Step::exit();
        }
      }
    }));
    freechan(ping);
    freechan(pong);
  }
}
BENCHMARK(BM_PingPong)->UseRealTime();

void BM_SpawnJoin(benchmark::State& state) {
  Sched& s = sched();
  constexpr std::int64_t kBatch = 100000;
  struct Child final : GBody {
    WaitGroup* wg;
    Step run(G*, std::uint32_t) override {
      wg->done();
      return Step::exit();
    }
  };
  // Bodies are preallocated (the VM's fiber objects would live on its heap).
  std::vector<Child> children(kBatch);
  while (state.KeepRunningBatch(kBatch)) {
    WaitGroup wg;
    for (auto& c : children) c.wg = &wg;
    s.runMain(fn([pc = 0, &s, &wg, &children](G* g) mutable -> Step {
      if (pc++ == 0) {
        wg.add(kBatch);
        for (auto& c : children) s.newproc(&c);
        if (!wg.wait(g)) return wg.parkStep();
      }
      return Step::exit();
    }));
  }
}
BENCHMARK(BM_SpawnJoin)->UseRealTime();

void BM_Buffered(benchmark::State& state) {
  Sched& s = sched();
  constexpr std::int64_t kBatch = 1000000;
  while (state.KeepRunningBatch(kBatch)) {
    hchan* c = makechan(128);
    WaitGroup wg;
    wg.add(1);
    s.newproc(fn([pc = 0, i = std::int64_t{0}, c, &wg](G* g) mutable -> Step {
      for (;;) {
        pc = 0;
        if (i == kBatch) {
          closechan(c);
          wg.done();
          return Step::exit();
        }
        i++;
        pc = 1;
        if (chansend(c, static_cast<std::uint64_t>(i), g) == ChanResult::Park) return chanSendParkStep(c);
      }
    }));
    std::uint64_t sum = 0;
    s.runMain(fn([pc = 0, c, &sum, &wg](G* g) mutable -> Step {
      std::uint64_t x;
      bool ok;
      for (;;) {
        if (pc == 2) return Step::exit();
        if (pc == 1) {
          chanrecvResume(g, &x, &ok);
        } else if (chanrecv(c, g, &x, &ok) == ChanResult::Park) {
          pc = 1;
          return chanRecvParkStep(c);
        }
        pc = 0;
        if (!ok) {
          pc = 2;
          if (!wg.wait(g)) return wg.parkStep();
          return Step::exit();
        }
        sum += x;
      }
    }));
    benchmark::DoNotOptimize(sum);
    freechan(c);
  }
}
BENCHMARK(BM_Buffered)->UseRealTime();

// As Go's ReadMemStats: the stopper is a G holding a P, every other P runs a spinner.
// Spinners are ordinary budgeted Gs: they poll g->preempt every 64 steps and yield when
// their budget is spent. Between two pauses (untimed) the stopper waits until the world
// really runs again, i.e. procs-1 spinners made progress, so every pause has every other P
// busy (back to back, the second stop would only find Ps still being handed to Ms). The
// time of one op is the pause as the stopper sees it (entry of stopTheWorld to return of
// startTheWorld), summed with manual timing; the harness's own cost (getting the stopper
// G onto a P for each batch) is not counted. Counters: the distribution of that pause and
// of the time to stop, in microseconds.
void BM_STWPause(benchmark::State& state) {
  Sched& s = sched();
  std::atomic<bool> stop{false};
  WaitGroup wg;
  int n = s.procs();
  std::vector<std::atomic<std::uint64_t>> progress(static_cast<std::size_t>(n));
  wg.add(n);
  for (int i = 0; i < n; i++) {
    s.newproc(fn([&stop, &wg, &mine = progress[static_cast<std::size_t>(i)]](G* g) -> Step {
      for (std::uint64_t k = 1;; k++) {
        if (stop.load(std::memory_order_relaxed)) {
          wg.done();
          return Step::exit();
        }
        if ((k & 63) == 0) {
          mine.fetch_add(1, std::memory_order_relaxed);
          if (g->preemptRequested()) return Step::yield();
        }
        if (k == 4096) return Step::yield();  // budget spent
      }
    }));
  }
  // Waits (at most 20 ms) until procs-1 spinners ran since the call.
  auto worldRuns = [&progress, n] {
    std::vector<std::uint64_t> before;
    for (auto& c : progress) before.push_back(c.load(std::memory_order_relaxed));
    for (std::int64_t t0 = nanotime(); nanotime() - t0 < 20000000;) {
      int moved = 0;
      for (int i = 0; i < n; i++) moved += progress[static_cast<std::size_t>(i)].load(std::memory_order_relaxed) != before[static_cast<std::size_t>(i)];
      if (moved >= n - 1) return;
    }
  };
  constexpr std::int64_t kBatch = 200;
  std::vector<std::int64_t> stops, pauses;  // per STW (ns)
  while (state.KeepRunningBatch(kBatch)) {
    std::int64_t total = 0;
    s.runMain(fn([&s, &stops, &pauses, &total, &worldRuns](G*) -> Step {
      for (int i = 0; i < kBatch; i++) {
        worldRuns();
        std::int64_t t0 = nanotime();
        stops.push_back(s.stopTheWorld("bench"));
        s.startTheWorld();
        std::int64_t d = nanotime() - t0;
        pauses.push_back(d);
        total += d;
      }
      return Step::exit();
    }));
    state.SetIterationTime(static_cast<double>(total) / 1e9);
  }
  stop.store(true);
  s.runMain(fn([pc = 0, &wg](G* g) mutable -> Step {
    if (pc++ == 0 && !wg.wait(g)) return wg.parkStep();
    return Step::exit();
  }));
  auto pct = [](std::vector<std::int64_t>& v, double q) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : static_cast<double>(v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))]) / 1e3;
  };
  state.counters["stop_p50_us"] = pct(stops, 0.5);
  state.counters["stop_p99_us"] = pct(stops, 0.99);
  state.counters["pause_p50_us"] = pct(pauses, 0.5);
  state.counters["pause_p99_us"] = pct(pauses, 0.99);
  state.counters["pause_max_us"] = pct(pauses, 1.0);
}
BENCHMARK(BM_STWPause)->UseManualTime();

long rssKiB() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

void BM_ParkedMillion(benchmark::State& state) {
  Sched& s = sched();
  constexpr int kN = 1000000;
  struct Parked final : GBody {
    hchan* c;
    WaitGroup* wg;
    std::atomic<int>* parked;
    bool waiting = false;
    Step run(G* g, std::uint32_t) override {
      std::uint64_t v;
      bool ok;
      if (!waiting) {
        waiting = true;
        if (chanrecv(c, g, &v, &ok) == ChanResult::Park) {
          parked->fetch_add(1, std::memory_order_relaxed);
          return chanRecvParkStep(c);
        }
      }
      wg->done();
      return Step::exit();
    }
    void exited(G*) override { delete this; }
  };
  for (auto _ : state) {
    long before = rssKiB();
    long during = 0;
    hchan* c = makechan(0);
    WaitGroup wg;
    std::atomic<int> parked{0};
    s.runMain(fn([pc = 0, &s, c, &wg, &parked, &during](G* g) mutable -> Step {
      switch (pc) {
        case 0:
          wg.add(kN);
          for (int i = 0; i < kN; i++) {
            auto* b = new Parked();
            b->c = c;
            b->wg = &wg;
            b->parked = &parked;
            s.newproc(b);
          }
          pc = 1;
          [[fallthrough]];
        case 1:
          if (parked.load() < kN) return Step::yield();
          during = rssKiB();
          closechan(c);
          pc = 2;
          if (!wg.wait(g)) return wg.parkStep();
          [[fallthrough]];
        default:
          return Step::exit();
      }
    }));
    freechan(c);
    state.counters["rss_MiB"] = static_cast<double>(during - before) / 1024.0;
    state.counters["bytes_per_G"] = static_cast<double>(during - before) * 1024.0 / kN;
  }
}
BENCHMARK(BM_ParkedMillion)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
