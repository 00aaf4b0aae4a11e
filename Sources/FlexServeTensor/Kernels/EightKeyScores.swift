#if FLEXSERVE_AVX512
/// A decode step's attention scores eight keys at a time: three query heads against eight key rows, 24 eight-lane sums
/// in twelve registers, reduced sixteen at a time by `RowPanel.rowSums` (sixteen keys at a time, the third query's sums
/// of two blocks reduced together, measured no faster). `RowDot.threeTokens` takes four keys and reduces each
/// of its twelve sums alone, and those reductions' shuffles, which share a port with the FMAs, held the scores to
/// ~17% of the FMA peak (`bench attention`). Per (head, key) the lanes, their order and the reduction are
/// `threeTokens`' (lane l sums the products at i ≡ l mod 8 in order, then `RowDot.horizontalSum`'s tree), so the scores
/// are the same bits in every path.
enum EightKeyScores {
    /// The scores of queries `x`, `y`, `z` against the eight rows `keys + slots[r] · slotStride` (`n` a multiple of 8),
    /// before scaling: one vector per query, lane r for row r. `lanes`: `RowPanel.RowSumLanes.opaque`, read once per set.
    @inline(__always)
    static func scores<E: KVElement>(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ z: UnsafePointer<Float>,
                                     keys: UnsafePointer<E>, slots: UnsafePointer<Int32>, slotStride: Int, _ n: Int,
                                     lanes: RowPanel.RowSumLanes) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let (a, b, c) = block(x, y, z, keys: keys, slots: slots, slotStride: slotStride, n)
        let zero = SIMD16<Float>()
        let ab = RowPanel.rowSums(a.p0, a.p1, a.p2, a.p3, b.p0, b.p1, b.p2, b.p3, lanes: lanes)
        let cc = RowPanel.rowSums(c.p0, c.p1, c.p2, c.p3, zero, zero, zero, zero, lanes: lanes)
        let (sa, sb) = unsafeBitCast(ab, to: (SIMD8<Float>, SIMD8<Float>).self)
        return (sa, sb, unsafeBitCast(cc, to: (SIMD8<Float>, SIMD8<Float>).self).0)
    }

    /// Eight keys' sums, two keys' eight lanes side by side in each register (keys 0 and 1, 2 and 3, ...) and each query's
    /// eight in both halves: the sums reach the reduction as FMA results, which the compiler cannot fold into its shuffles
    /// (gathered from eight-lane registers, they took ~7 shuffles a score).
    @inline(__always)
    static func block<E: KVElement>(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ z: UnsafePointer<Float>,
                                    keys: UnsafePointer<E>, slots: UnsafePointer<Int32>, slotStride: Int,
                                    _ n: Int) -> (a: Pairs, b: Pairs, c: Pairs) {
        @inline(__always) func row(_ r: Int) -> UnsafePointer<E> { keys + Int(slots[r]) * slotStride }
        let k0 = row(0), k1 = row(1), k2 = row(2), k3 = row(3), k4 = row(4), k5 = row(5), k6 = row(6), k7 = row(7)
        var a = Pairs(), b = Pairs(), c = Pairs()
        var i = 0
        while i < n {
            let xv = twice(x, i), yv = twice(y, i), zv = twice(z, i)
            @inline(__always) func rows(_ p: inout SIMD16<Float>, _ q: inout SIMD16<Float>, _ r: inout SIMD16<Float>,
                                        _ u: UnsafePointer<E>, _ v: UnsafePointer<E>) {
                let w = pair(E.load8(u, i), E.load8(v, i))
                p = p.addingProduct(xv, w); q = q.addingProduct(yv, w); r = r.addingProduct(zv, w)
            }
            rows(&a.p0, &b.p0, &c.p0, k0, k1); rows(&a.p1, &b.p1, &c.p1, k2, k3)
            rows(&a.p2, &b.p2, &c.p2, k4, k5); rows(&a.p3, &b.p3, &c.p3, k6, k7)
            i += 8
        }
        return (a, b, c)
    }

    struct Pairs {
        var p0 = SIMD16<Float>(), p1 = SIMD16<Float>(), p2 = SIMD16<Float>(), p3 = SIMD16<Float>()
    }

    @inline(__always)
    static func twice(_ x: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
        let v = RowDot.load(x, i)
        return pair(v, v)
    }

    /// Two rows' sums side by side (a bit cast: `SIMD16(lowHalf:highHalf:)` can compile to a call).
    @inline(__always)
    static func pair(_ lo: SIMD8<Float>, _ hi: SIMD8<Float>) -> SIMD16<Float> { unsafeBitCast((lo, hi), to: SIMD16<Float>.self) }
}
#endif
