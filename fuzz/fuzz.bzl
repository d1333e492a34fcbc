"""spindle_fuzzer: a libFuzzer target and its regression test.

NAME (tagged manual: built only by tools/fuzz, with --config=fuzz, since libFuzzer needs
clang) links LLVMFuzzerTestOneInput with libFuzzer's main. NAME_replay is an ordinary
cc_test of the same source with replay_main.cc: it runs every file of the target's
regression corpus (corpus/NAME, where tools/fuzz saves crashers) and of `seeds`, so it
runs in every configuration of ./test and .ci/run. `size` is the replay test's.
"""

def spindle_fuzzer(name, srcs, deps, seeds = [], seed_dirs = [], size = "small"):
    native.cc_binary(
        name = name,
        srcs = srcs + ["fuzz_util.h"],
        deps = deps,
        linkopts = ["-fsanitize=fuzzer"],
        tags = ["manual"],
    )
    native.cc_test(
        name = name + "_replay",
        size = size,
        srcs = srcs + ["fuzz_util.h", "replay_main.cc"],
        deps = deps,
        data = native.glob(["corpus/" + name + "/**"]) + seeds,
        args = ["fuzz/corpus/" + name] + seed_dirs,
    )
