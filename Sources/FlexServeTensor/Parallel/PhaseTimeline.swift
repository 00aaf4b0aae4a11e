import Foundation

/// When each thread of a parallel region (`ThreadPool.runPhases`) began its first task of each phase and ended its last,
/// in monotonic nanoseconds: what `flexserve bench phases` reads to say where a decode step's time goes (each phase's
/// share of the step, how long after the previous phase's end its first task began, how long its longest thread worked).
/// Off (no timeline) the region pays one nil check per task.
public final class PhaseTimeline: @unchecked Sendable {
    public let phases: Int
    public let threads: Int
    /// Per (phase, thread): first start, last end; 0 where the thread ran no task of the phase.
    private let times: UnsafeMutablePointer<UInt64>

    public init(phases: Int, threads: Int) {
        precondition(phases > 0 && threads > 0)
        (self.phases, self.threads) = (phases, threads)
        times = .allocate(capacity: 2 * phases * threads)
        times.initialize(repeating: 0, count: 2 * phases * threads)
    }

    deinit { times.deallocate() }

    /// Forgets every span, before the next region.
    public func reset() { times.update(repeating: 0, count: 2 * phases * threads) }

    @inline(__always)
    public static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    /// A task of `phase` that ran on `thread` from `start` to `end`.
    @inline(__always)
    public func record(phase: Int, thread: Int, start: UInt64, end: UInt64) {
        let p = times + 2 * (phase * threads + thread)
        if p[0] == 0 { p[0] = start }
        p[1] = end
    }

    /// The first start and last end of `thread`'s tasks of `phase`, nil where it ran none.
    public func span(phase: Int, thread: Int) -> (start: UInt64, end: UInt64)? {
        let p = times + 2 * (phase * threads + thread)
        return p[0] == 0 ? nil : (p[0], p[1])
    }
}
