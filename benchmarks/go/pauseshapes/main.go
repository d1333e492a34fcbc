// Command pauseshapes: the Go counterparts of benchmarks/pause_shapes/*.lox, run by the
// pause_shapes benchmark (benchmarks/pause_shapes.cc) with GODEBUG=gctrace=1, whose lines
// give each cycle's two stop-the-world pauses. Usage: pauseshapes SHAPE, SHAPE one of
// strings, print_list, big_alloc, parked_fibers, host_calls.
//
// report(tag) is the protocol of report.lox: runtime.GC() (which returns once the sweep is
// done), one line `[@tag, N]` on stdout, then a wait for one byte on stdin while the
// harness samples this process's RSS. N is HeapInuse + StackInuse: bytes in heap spans
// plus goroutine stacks, since Spindle's heapInUse counts whole spans and holds its
// fibers' stacks.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func report(tag string) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("[@%s, %d]\n", tag, ms.HeapInuse+ms.StackInuse)
	var b [1]byte
	os.Stdin.Read(b[:])
}

// churn allocates short-lived two-element slices until stop is closed.
var sink []interface{}

func churn(stop <-chan struct{}, done chan<- struct{}) {
	for {
		for k := 0; k < 1000; k++ {
			sink = []interface{}{k, k}
		}
		select {
		case <-stop:
			done <- struct{}{}
			return
		default:
		}
	}
}

func numbered(prefix string, count int) []string {
	digits := "0123456789"
	var out []string
	for i := 0; i < 10; i++ {
		for j := 0; j < 10; j++ {
			for k := 0; k < 10; k++ {
				if len(out) < count {
					out = append(out, prefix+digits[i:i+1]+digits[j:j+1]+digits[k:k+1])
				}
			}
		}
	}
	return out
}

// A string set (Go has no interning): a map of the 500000 concatenations.
func stringsShape() {
	heads, tails := numbered("h", 1000), numbered("t", 500)
	set := map[string]struct{}{}
	for _, h := range heads {
		for _, t := range tails {
			set[h+t] = struct{}{}
		}
	}
	report("live")
	runtime.KeepAlive(set)
	set = nil
	report("drop")
}

func printList() {
	list := make([]interface{}, 0)
	for i := 0; i < 1000000; i++ {
		list = append(list, float64(i))
	}
	report("live")
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		panic(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go churn(stop, done)
	fmt.Fprintln(devnull, list)
	close(stop)
	<-done
	list = nil
	report("drop")
}

func bigAlloc() {
	stop, done := make(chan struct{}), make(chan struct{})
	go churn(stop, done)
	var big []byte
	for i := 0; i < 4; i++ {
		big = make([]byte, 64*1024*1024)
	}
	close(stop)
	<-done
	report("live")
	runtime.KeepAlive(big)
	big = nil
	report("drop")
}

//go:noinline
func deep(n int) int {
	if n == 0 {
		return 0
	}
	return deep(n-1) + 1
}

func parkedFibers() {
	n := 10000
	ready, release, done := make(chan int, n), make(chan struct{}), make(chan struct{}, n)
	for i := 0; i < n; i++ {
		go func() {
			ready <- deep(1000)
			<-release
			done <- struct{}{}
		}()
	}
	for i := 0; i < n; i++ {
		<-ready
	}
	report("live")
	close(release)
	for i := 0; i < n; i++ {
		<-done
	}
	report("drop")
}

// Host calls: Go has no embedding boundary, so 1000000 calls of a function through an
// interface (a dynamic call), each result (a one-element slice) kept, then dropped.
type maker interface{ make(i int) interface{} }
type listMaker struct{}

func (listMaker) make(i int) interface{} { return []interface{}{float64(i)} }

func hostCalls() {
	var m maker = listMaker{}
	keep := make([]interface{}, 0, 1000000)
	for i := 0; i < 1000000; i++ {
		keep = append(keep, m.make(i))
	}
	report("live")
	runtime.KeepAlive(keep)
	keep = nil
	report("drop")
}

func main() {
	shapes := map[string]func(){
		"strings": stringsShape, "print_list": printList, "big_alloc": bigAlloc,
		"parked_fibers": parkedFibers, "host_calls": hostCalls,
	}
	if len(os.Args) != 2 || shapes[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: pauseshapes strings|print_list|big_alloc|parked_fibers|host_calls")
		os.Exit(2)
	}
	shapes[os.Args[1]]()
}
