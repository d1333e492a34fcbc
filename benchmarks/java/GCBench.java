// GCBench (Ellis, Kovac, Boehm) in Java, the same shape as benchmarks/gcbench.cc: a
// stretch tree of depth 18 (built, then dropped), a long-lived tree of depth 16 and an
// array of 500000 doubles kept for the whole run, then for depths 4..16 step 2,
// NumIters(depth) trees built top-down (Populate) and as many bottom-up (MakeTree).
// Prints the time in the same units as gcbench; pauses come from the JVM's own log.
//
// Run (not part of the Bazel build): javac -d /tmp GCBench.java &&
//   java -cp /tmp -XX:+UseParallelGC -XX:ParallelGCThreads=1 -Xlog:gc GCBench
// (ParallelGCThreads=1: one collector thread, as Spindle's one P; drop it for the
// default). The run is repeated `reps` times in one JVM (argument, default 1): the first
// includes JIT warm-up.
public final class GCBench {
  static final int kStretchTreeDepth = 18;
  static final int kLongLivedTreeDepth = 16;
  static final int kArraySize = 500000;
  static final int kMinTreeDepth = 4;
  static final int kMaxTreeDepth = 16;

  static final class Node {
    Node left, right;
    int i, j;
    Node(Node l, Node r) { left = l; right = r; }
    Node() {}
  }

  static int treeSize(int i) { return (1 << (i + 1)) - 1; }
  static int numIters(int i) { return 2 * treeSize(kStretchTreeDepth) / treeSize(i); }

  static void populate(int depth, Node node) {
    if (depth <= 0) return;
    depth--;
    node.left = new Node();
    node.right = new Node();
    populate(depth, node.left);
    populate(depth, node.right);
  }

  static Node makeTree(int depth) {
    if (depth <= 0) return new Node();
    return new Node(makeTree(depth - 1), makeTree(depth - 1));
  }

  static void timeConstruction(int depth) {
    int iters = numIters(depth);
    for (int i = 0; i < iters; ++i) {
      Node temp = new Node();
      populate(depth, temp);
    }
    for (int i = 0; i < iters; ++i) makeTree(depth);
  }

  static double runOnce() {
    long start = System.nanoTime();
    makeTree(kStretchTreeDepth);
    Node longLived = new Node();
    populate(kLongLivedTreeDepth, longLived);
    double[] array = new double[kArraySize];
    for (int i = 0; i < kArraySize / 2; ++i) array[i] = 1.0 / i;
    for (int d = kMinTreeDepth; d <= kMaxTreeDepth; d += 2) timeConstruction(d);
    double seconds = (System.nanoTime() - start) / 1e9;
    if (longLived == null || array[1000] != 1.0 / 1000) throw new AssertionError("the long-lived data did not survive");
    return seconds;
  }

  public static void main(String[] args) {
    int reps = args.length > 0 ? Integer.parseInt(args[0]) : 1;
    for (int r = 0; r < reps; r++) System.out.printf("Java     %8.3f s%n", runOnce());
  }
}
