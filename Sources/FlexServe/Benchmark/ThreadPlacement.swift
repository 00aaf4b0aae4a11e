import Foundation
import Synchronization
import FlexServeTensor

/// Where the host has put the pool's threads, as seen from how long a cache line written by one takes to
/// reach the other. On this 2-vCPU EPYC VM the host moves the vCPUs from minute to minute: within one core
/// complex (one shared L3) a handoff takes ~50 ns and both threads share one link to memory (~30–48 GB/s
/// read on the Zen 4 and Zen 5 hosts seen); on two complexes it takes ~160–210 ns and each has its own link
/// (~50–90 GB/s).
public enum ThreadPlacement {
    /// Handoffs slower than this cross core complexes.
    public static let sharedCacheLimitNanoseconds = 100.0

    /// "one core complex", "two core complexes" (a handoff over `sharedCacheLimitNanoseconds`) or, with no handoff to
    /// time, "one thread".
    public static func name(handoffNanoseconds handoff: Double?) -> String {
        guard let handoff else { return "one thread" }
        return handoff > sharedCacheLimitNanoseconds ? "two core complexes" : "one core complex"
    }

    /// Median one-way handoff between the pool's first two threads over three runs of 300 round trips;
    /// nil with one thread.
    public static func handoffNanoseconds(pool: ThreadPool = .shared) -> Double? {
        guard pool.threadCount >= 2 else { return nil }
        let flag = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: 1)
        flag.initialize(to: Atomic(0))
        defer { flag.deinitialize(count: 1); flag.deallocate() }
        let rounds = 300
        var runs: [Double] = []
        for _ in 0..<3 {
            flag.pointee.store(0, ordering: .relaxed)
            var seconds = 0.0
            // Task t waits for the count 2i + t and passes it on: every step is one cache-line handoff. Whichever
            // thread claims a task first cannot finish it alone, so the other task goes to the other thread. Timed
            // from the first round trip on, when both threads are running.
            pool.parallelFor(2) { t in
                var start = Date()
                for i in 0..<rounds {
                    let mine = 2 * i + t
                    while flag.pointee.load(ordering: .acquiring) != mine {}
                    if t == 0 && i == 1 { start = Date() }
                    flag.pointee.store(mine + 1, ordering: .releasing)
                }
                if t == 0 { seconds = Date().timeIntervalSince(start) }
            }
            runs.append(seconds / Double(2 * (rounds - 1)) * 1e9)
        }
        return runs.sorted()[1]
    }
}
