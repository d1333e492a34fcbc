module spindle/benchmarks/go

go 1.19
