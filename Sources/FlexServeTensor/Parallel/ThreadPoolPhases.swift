import Synchronization

extension ThreadPool {
    /// Runs `body(phase, task)` for every task of every phase in one dispatch: phase p has `counts[p]`
    /// tasks, and all of them finish before any task of phase p + 1 starts. A decode step is a few
    /// hundred small dependent steps; as dispatches each would cost the worker's wake-up lag and the
    /// caller's join (~1.5 µs together, measured per projection of a SmolLM2 step), as phases in one
    /// dispatch a thread that runs out of tasks spins only until the phase's last task is done.
    ///
    /// Tasks are claimed, not assigned, so as in `parallelFor` the caller never waits for a worker
    /// that has not started: it runs the unclaimed tasks itself, and a late worker finds their
    /// counters exhausted.
    ///
    /// `body` also gets the index of the thread running it (0..<threadCount; a thread that finds no worker
    /// beside it runs as several in turn), so tasks can prefer work that thread prepared. A thread with no
    /// task left in phase p calls `whileWaiting(p, thread)` until the phase is done or it returns false
    /// (work that is not needed for p, such as warming the caches for a later phase).
    public func runPhases(_ counts: [Int], _ body: (_ phase: Int, _ task: Int, _ thread: Int) -> Void,
                          whileWaiting: ((_ phase: Int, _ thread: Int) -> Bool)? = nil) {
        let phases = counts.count
        guard phases > 0 else { return }
        let next = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: phases)
        let done = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: phases)
        for p in 0..<phases {
            (next + p).initialize(to: Atomic(0))
            (done + p).initialize(to: Atomic(0))
        }
        defer {
            next.deinitialize(count: phases); next.deallocate()
            done.deinitialize(count: phases); done.deallocate()
        }
        counts.withUnsafeBufferPointer { counts in
            parallelFor(threadCount) { thread in
                for p in 0..<phases {
                    let count = counts[p]
                    while true {
                        let task = next[p].add(1, ordering: .relaxed).oldValue
                        if task >= count { break }
                        body(p, task, thread)
                        done[p].add(1, ordering: .releasing)
                    }
                    if let whileWaiting {
                        while done[p].load(ordering: .acquiring) < count, whileWaiting(p, thread) {}
                    }
                    while done[p].load(ordering: .acquiring) < count {}
                }
            }
        }
    }
}
