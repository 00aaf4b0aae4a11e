import Synchronization

/// A range of work items cut into parts: each part's owner takes pieces from its front, and a
/// thread that has run out of its own parts takes pieces from the back of others'. An owner so
/// streams its part in order, with no new memory stream starting while it has work, and the
/// threads still finish together when one of them runs slower (on this shared VM the two cores'
/// read bandwidth differs by up to ~20% at a time: with one fixed chunk per thread, the faster
/// one idled ~15% of each decode step).
///
/// A value (a pointer to the parts' bounds and two counts), not an object: every thread of a decode takes it on every
/// projection, and a reference count kept on each take would pass its cache line between their cores. Its maker frees it
/// (`deallocate`).
struct StealableRanges: @unchecked Sendable {
    /// Each part's remaining items and the round they belong to: front in bits 0..<24, back in 24..<48, round in 48..<64.
    private let bounds: UnsafeMutablePointer<Atomic<UInt64>>
    let parts: Int

    private let total: Int

    init(splitting total: Int, into parts: Int) {
        precondition(total < 1 << 24 && parts > 0)
        self.parts = parts
        self.total = total
        bounds = .allocate(capacity: parts)
        for i in 0..<parts {
            (bounds + i).initialize(to: Atomic(Self.pack(part(i).lowerBound, part(i).upperBound, round: 0)))
        }
    }

    /// Part `i` whole, as a new round finds it.
    func part(_ i: Int) -> Range<Int> { (total * i / parts)..<(total * (i + 1) / parts) }

    /// Frees the bounds; no copy may be used after.
    func deallocate() {
        bounds.deinitialize(count: parts)
        bounds.deallocate()
    }

    private static func pack(_ front: Int, _ back: Int, round: UInt64) -> UInt64 { UInt64(front) | UInt64(back) << 24 | round << 48 }

    /// Up to `n` items from the front of part `i` (its owner's next piece), or nil when none are left.
    ///
    /// `round`: every part is whole again for the first take of a round other than the one its last take had (the
    /// rounds of a 16-bit counter). A decode step runs each projection's ranges once a step and passes the step's number,
    /// instead of resetting every part before the step: a store to each part's line, which the other thread last wrote,
    /// ~11 µs a step with the threads in one core complex and ~26 µs in two.
    func takeFront(_ i: Int, _ n: Int, round: Int = 0) -> Range<Int>? { take(i, n, fromBack: false, round: round) }

    /// Up to `n` items from the back of part `i` (a piece for another thread), or nil when none are left.
    func takeBack(_ i: Int, _ n: Int, round: Int = 0) -> Range<Int>? { take(i, n, fromBack: true, round: round) }

    private func take(_ i: Int, _ n: Int, fromBack: Bool, round: Int) -> Range<Int>? {
        let round = UInt64(UInt16(truncatingIfNeeded: round)), field: UInt64 = (1 << 24) - 1
        var current = bounds[i].load(ordering: .relaxed)
        while true {
            let (front, back) = current >> 48 == round ? (Int(current & field), Int(current >> 24 & field))
                                                       : (part(i).lowerBound, part(i).upperBound)
            if front >= back { return nil }
            let piece = fromBack ? max(front, back - n)..<back : front..<min(back, front + n)
            let next = fromBack ? Self.pack(front, piece.lowerBound, round: round) : Self.pack(piece.upperBound, back, round: round)
            // Relaxed is enough: the items are claimed atomically, and the pool's join orders their results.
            let (exchanged, seen) = bounds[i].compareExchange(expected: current, desired: next, ordering: .relaxed)
            if exchanged { return piece }
            current = seen
        }
    }
}
