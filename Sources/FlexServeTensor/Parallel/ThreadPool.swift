import Foundation
import Synchronization

/// A fixed pool of worker threads for data-parallel kernels. `parallelFor` hands out indices
/// through one atomic counter; idle workers spin briefly before sleeping, so back-to-back
/// kernel launches (hundreds per forward pass) cost microseconds, not a thread wake-up each.
///
/// The caller never waits for a worker that has not started: it does all unclaimed work itself,
/// then closes the job. A worker may only touch the job between raising `active` and seeing the
/// job still open (a Dekker-style handshake with sequentially consistent atomics), so a late
/// worker cannot run a job whose caller has returned. This keeps the pool fast when the machine
/// is oversubscribed and some workers are descheduled.
public final class ThreadPool: @unchecked Sendable {
    /// The pool every model uses: `FLEXSERVE_THREADS` threads (the CLI's `--threads`), else one per processor.
    public static let shared = ThreadPool(threads: sharedThreadCount(ProcessInfo.processInfo.environment[threadsVariable],
                                                                     processors: ProcessInfo.processInfo.activeProcessorCount))

    public static let threadsVariable = "FLEXSERVE_THREADS"

    /// The shared pool's size for a `FLEXSERVE_THREADS` value: a positive integer, else (unset, or not one, with a
    /// warning on stderr: the pool is made on first use, where nothing can throw) one thread per processor.
    public static func sharedThreadCount(_ value: String?, processors: Int) -> Int {
        guard let value else { return processors }
        guard let n = Int(value.trimmingCharacters(in: .whitespaces)), n > 0 else {
            FileHandle.standardError.write("warning: \(threadsVariable)=\(value) is not a positive integer; using \(processors) threads\n".data(using: .utf8)!)
            return processors
        }
        return n
    }

    public let threadCount: Int
    private let generation = Atomic<Int>(0)
    private let open = Atomic<Bool>(false)
    private let active = Atomic<Int>(0)
    private let nextIndex = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private var job: ((Int) -> Void)?
    private var jobCount = 0
    private let sleepLock = NSCondition()
    private var sleeping = 0
    private let callerLock = NSLock()

    public init(threads: Int) {
        threadCount = max(1, threads)
        // Workers hold the pool strongly and run for the life of the process: a pool is made once
        // (`shared`, or one per test), and a freed pool under a spinning worker would crash.
        for _ in 1..<threadCount {
            let t = Thread { self.workerLoop() }
            t.stackSize = 1 << 20
            t.start()
        }
    }

    /// Runs `body(i)` for i in 0..<count over all threads, the caller included; returns when all are done.
    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || threadCount == 1 {
            for i in 0..<count { body(i) }
            return
        }
        callerLock.lock()
        defer { callerLock.unlock() }
        withoutActuallyEscaping(body) { escaping in
            job = escaping
            jobCount = count
            nextIndex.store(0, ordering: .sequentiallyConsistent)
            finished.store(0, ordering: .sequentiallyConsistent)
            open.store(true, ordering: .sequentiallyConsistent)
            generation.add(1, ordering: .sequentiallyConsistent)
            sleepLock.lock()
            if sleeping > 0 { sleepLock.broadcast() }
            sleepLock.unlock()
            drain(escaping, count: count)
            while finished.load(ordering: .acquiring) < count { sched_yield() }
            open.store(false, ordering: .sequentiallyConsistent)
            while active.load(ordering: .sequentiallyConsistent) > 0 { sched_yield() }
            job = nil
        }
    }

    /// Splits 0..<total into about `threadCount * perThread` chunks of at least `minChunk` and runs `body(range)` on each.
    public func parallelChunks(_ total: Int, minChunk: Int = 1, perThread: Int = 4, _ body: (Range<Int>) -> Void) {
        let chunks = max(1, min(threadCount * perThread, total / max(1, minChunk)))
        let size = (total + chunks - 1) / chunks
        parallelFor(chunks) { c in
            let lo = c * size
            let hi = min(total, lo + size)
            if lo < hi { body(lo..<hi) }
        }
    }

    private func drain(_ body: (Int) -> Void, count: Int) {
        while true {
            let i = nextIndex.add(1, ordering: .relaxed).oldValue
            if i >= count { return }
            body(i)
            finished.add(1, ordering: .releasing)
        }
    }

    private func workerLoop() {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < 2_000 {
                    continue
                } else if spins < 4_000 {
                    sched_yield()
                } else {
                    sleepLock.lock()
                    sleeping += 1
                    while generation.load(ordering: .acquiring) == seen { sleepLock.wait() }
                    sleeping -= 1
                    sleepLock.unlock()
                }
            }
            let current = generation.load(ordering: .sequentiallyConsistent)
            seen = current
            active.add(1, ordering: .sequentiallyConsistent)
            if open.load(ordering: .sequentiallyConsistent), generation.load(ordering: .sequentiallyConsistent) == current,
               let job {
                drain(job, count: jobCount)
            }
            active.subtract(1, ordering: .sequentiallyConsistent)
        }
    }
}
