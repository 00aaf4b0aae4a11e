import Synchronization

extension ThreadPool {
    /// Runs `body(phase, share)` for every share of every phase in one dispatch, all of phase p's shares done before any of
    /// phase p + 1 starts: as `runPhases`, but share s stays with the thread that took slot s of the dispatch wherever that
    /// thread is running. So what a share writes in one phase (its tokens' rows) is in its own core's caches when the next
    /// phase reads it, where `runPhases` hands each phase's tasks to whichever thread asks first.
    ///
    /// Shares are claimed, not assigned: a thread first claims its own share of a phase, then any share still unclaimed,
    /// so the caller never waits for a worker that has not started (it runs that worker's shares itself, and the late
    /// worker finds them claimed).
    public func runShares(phases: Int, shares: Int, _ body: (_ phase: Int, _ share: Int) -> Void) {
        guard phases > 0, shares > 0 else { return }
        let claimed = UnsafeMutablePointer<Atomic<Bool>>.allocate(capacity: phases * shares)
        let done = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: phases)
        for i in 0..<(phases * shares) { (claimed + i).initialize(to: Atomic(false)) }
        for p in 0..<phases { (done + p).initialize(to: Atomic(0)) }
        defer {
            claimed.deinitialize(count: phases * shares); claimed.deallocate()
            done.deinitialize(count: phases); done.deallocate()
        }
        parallelFor(min(threadCount, shares)) { slot in
            for p in 0..<phases {
                for i in 0..<shares {
                    let s = (slot + i) % shares
                    guard !claimed[p * shares + s].exchange(true, ordering: .relaxed) else { continue }
                    body(p, s)
                    done[p].add(1, ordering: .releasing)
                }
                while done[p].load(ordering: .acquiring) < shares {}
            }
        }
    }
}
