// Command loxconc: the Go counterparts of benchmarks/lox/concurrency/*.lox, the same
// algorithms with goroutines and channels. Usage: loxconc pingpong|fanin|paralloc
// (GOMAXPROCS sets the Ps). Prints the same result line as the Lox program.
package main

import (
	"fmt"
	"os"
)

func pingpong() int {
	n := 200000
	ping, pong := make(chan int), make(chan int)
	go func() {
		for i := 0; i < n; i++ {
			pong <- (<-ping) + 1
		}
	}()
	v := 0
	for i := 0; i < n; i++ {
		ping <- v
		v = <-pong
	}
	return v
}

func fanin() int {
	per := 50000
	ch := make(chan int, 128)
	for p := 0; p < 8; p++ {
		go func() {
			for i := 0; i < per; i++ {
				ch <- i
			}
		}()
	}
	sum := 0
	for i := 0; i < 8*per; i++ {
		sum += <-ch
	}
	return sum
}

type node struct{ left, right *node }

func mk(d int) *node {
	if d == 0 {
		return &node{}
	}
	return &node{mk(d - 1), mk(d - 1)}
}

func check(t *node) int {
	if t.left == nil {
		return 1
	}
	return 1 + check(t.left) + check(t.right)
}

func paralloc() int {
	done := make(chan int)
	for w := 0; w < 8; w++ {
		go func() {
			total := 0
			for i := 0; i < 12; i++ {
				total += check(mk(12))
			}
			done <- total
		}()
	}
	total := 0
	for w := 0; w < 8; w++ {
		total += <-done
	}
	return total
}

func main() {
	progs := map[string]func() int{"pingpong": pingpong, "fanin": fanin, "paralloc": paralloc}
	if len(os.Args) != 2 || progs[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: loxconc pingpong|fanin|paralloc")
		os.Exit(2)
	}
	fmt.Println(progs[os.Args[1]]())
}
