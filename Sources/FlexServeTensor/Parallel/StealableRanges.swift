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
    /// Each part's remaining items, front in the low 32 bits and back in the high 32.
    private let bounds: UnsafeMutablePointer<Atomic<UInt64>>
    let parts: Int

    private let total: Int

    init(splitting total: Int, into parts: Int) {
        precondition(total < 1 << 32 && parts > 0)
        self.parts = parts
        self.total = total
        bounds = .allocate(capacity: parts)
        for i in 0..<parts {
            (bounds + i).initialize(to: Atomic(Self.pack(part(i).lowerBound, part(i).upperBound)))
        }
    }

    /// Part `i` whole, as `reset` leaves it.
    func part(_ i: Int) -> Range<Int> { (total * i / parts)..<(total * (i + 1) / parts) }

    /// Every item back in its part, for another run over the same range (not while one is taking items).
    func reset() {
        for i in 0..<parts { bounds[i].store(Self.pack(part(i).lowerBound, part(i).upperBound), ordering: .relaxed) }
    }

    /// Frees the bounds; no copy may be used after.
    func deallocate() {
        bounds.deinitialize(count: parts)
        bounds.deallocate()
    }

    private static func pack(_ front: Int, _ back: Int) -> UInt64 { UInt64(front) | UInt64(back) << 32 }

    /// Up to `n` items from the front of part `i` (its owner's next piece), or nil when none are left.
    func takeFront(_ i: Int, _ n: Int) -> Range<Int>? { take(i, n, fromBack: false) }

    /// Up to `n` items from the back of part `i` (a piece for another thread), or nil when none are left.
    func takeBack(_ i: Int, _ n: Int) -> Range<Int>? { take(i, n, fromBack: true) }

    private func take(_ i: Int, _ n: Int, fromBack: Bool) -> Range<Int>? {
        var current = bounds[i].load(ordering: .relaxed)
        while true {
            let front = Int(current & 0xFFFF_FFFF), back = Int(current >> 32)
            if front >= back { return nil }
            let piece = fromBack ? max(front, back - n)..<back : front..<min(back, front + n)
            let next = fromBack ? Self.pack(front, piece.lowerBound) : Self.pack(piece.upperBound, back)
            // Relaxed is enough: the items are claimed atomically, and the pool's join orders their results.
            let (exchanged, seen) = bounds[i].compareExchange(expected: current, desired: next, ordering: .relaxed)
            if exchanged { return piece }
            current = seen
        }
    }
}
