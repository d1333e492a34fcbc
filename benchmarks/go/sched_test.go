// Go 1.19 reference for benchmarks/sched_bench.cc: the same shapes.
// Run offline: benchmarks/sched_compare.sh (or GOFLAGS=-mod=mod GOPROXY=off
// GOCACHE=/tmp/gocache go test -bench . -benchtime=... in this directory).
package schedbench

import (
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Two goroutines bounce a value over two unbuffered channels: ns per round trip.
func BenchmarkPingPong(b *testing.B) {
	ping, pong := make(chan uint64), make(chan uint64)
	go func() {
		for x := range ping {
			pong <- x
		}
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ping <- 1
		<-pong
	}
	close(ping)
}

// Spawn a batch of goroutines that each signal a WaitGroup, then wait: ns per goroutine.
func BenchmarkSpawnJoin(b *testing.B) {
	var wg sync.WaitGroup
	wg.Add(b.N)
	for i := 0; i < b.N; i++ {
		go wg.Done()
	}
	wg.Wait()
}

// Producer -> consumer over a channel of capacity 128: ns per element.
func BenchmarkBuffered(b *testing.B) {
	c := make(chan uint64, 128)
	go func() {
		for i := 0; i < b.N; i++ {
			c <- uint64(i)
		}
		close(c)
	}()
	var sum uint64
	for x := range c {
		sum += x
	}
	_ = sum
}

// A stop-the-world with every P busy: runtime.ReadMemStats stops and starts the world.
// As sched_bench: between two calls (untimed) wait until GOMAXPROCS-1 spinners ran again.
func BenchmarkSTWPause(b *testing.B) {
	var stop int32
	var wg sync.WaitGroup
	n := runtime.GOMAXPROCS(0)
	progress := make([]uint64, n)
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func(mine *uint64) {
			for k := 1; atomic.LoadInt32(&stop) == 0; k++ {
				if k&63 == 0 {
					atomic.AddUint64(mine, 1)
				}
			}
			wg.Done()
		}(&progress[i])
	}
	time.Sleep(20 * time.Millisecond)
	before := make([]uint64, n)
	worldRuns := func() {
		for i := range progress {
			before[i] = atomic.LoadUint64(&progress[i])
		}
		for t0 := time.Now(); time.Since(t0) < 20*time.Millisecond; {
			moved := 0
			for i := range progress {
				if atomic.LoadUint64(&progress[i]) != before[i] {
					moved++
				}
			}
			if moved >= n-1 {
				return
			}
		}
	}
	var ms runtime.MemStats
	pauses := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		worldRuns() // untimed: ns/op is reported from the pauses below
		t0 := time.Now()
		runtime.ReadMemStats(&ms)
		d := time.Since(t0)
		pauses = append(pauses, d)
		total += d
	}
	b.StopTimer()
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	// The pause as the caller sees it, as sched_bench's counters (microseconds).
	sort.Slice(pauses, func(i, j int) bool { return pauses[i] < pauses[j] })
	pct := func(q float64) float64 {
		return float64(pauses[int(q*float64(len(pauses)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(pct(0.5), "pause_p50_us")
	b.ReportMetric(pct(0.99), "pause_p99_us")
	b.ReportMetric(pct(1.0), "pause_max_us")
}

func rssKiB() float64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	pages, _ := strconv.ParseFloat(f[1], 64)
	return pages * float64(os.Getpagesize()) / 1024
}

// A million goroutines parked on one channel: RSS growth.
func BenchmarkParkedMillion(b *testing.B) {
	const n = 1000000
	for i := 0; i < b.N; i++ {
		runtime.GC()
		before := rssKiB()
		c := make(chan uint64)
		var parked sync.WaitGroup
		var done sync.WaitGroup
		parked.Add(n)
		done.Add(n)
		for k := 0; k < n; k++ {
			go func() {
				parked.Done()
				<-c
				done.Done()
			}()
		}
		parked.Wait()
		time.Sleep(50 * time.Millisecond) // let the last ones block
		during := rssKiB()
		close(c)
		done.Wait()
		b.ReportMetric((during-before)/1024, "rss_MiB")
		b.ReportMetric((during-before)*1024/n, "bytes_per_G")
	}
}
