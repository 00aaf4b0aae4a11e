/// Activations prepared for `InterleavedRows` (`IntegerLinear`): one token's block of 32 inputs against a
/// group's sixteen rows goes into lane-per-row accumulators,
///
///     sums    += dot · d            (dot: the block's sixteen dot products of the rows' integers)
///     offsets += c · Σx             (the format's offset per unit; `F32Activations` adds it into `sums`)
///
/// and a row's result is `sums + offsets`. Every path (one token, several, four streams) takes these
/// steps in this order, so a token's results do not depend on the batch.
protocol GroupActivations {
    /// Blocks of 32 inputs per token.
    var blocks: Int { get }
    /// Weight streams a decode thread reads side by side (`IntegerLinear.decodeSlot`): 4 or 1.
    static var decodeStreams: Int { get }
    /// Token t's block b against the integers of one block of a group (`integers`), with the rows' scales `d`
    /// and offsets per unit `c` (`IntegerBlockFormat.groupScalesAndOffsets`).
    func accumulate<F: IntegerBlockFormat>(_ sums: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>, token t: Int, block b: Int,
                                           _ integers: UnsafeRawPointer, scales d: SIMD16<Float>, offsetsPerUnit c: SIMD16<Float>, _: F.Type)
    /// Token 0's block b against four groups (four decode streams): the same steps as `accumulate` for each.
    func accumulate<F: IntegerBlockFormat>(_ sums: inout FourSums, _ offsets: inout FourSums, block b: Int,
                                           _ w: (IntegerLinear.Group, IntegerLinear.Group, IntegerLinear.Group, IntegerLinear.Group), _: F.Type)
}

/// Sixteen rows' sums for each of four groups or four tokens.
struct FourSums {
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
}

extension GroupActivations {
    /// One group after another.
    @inline(__always)
    func accumulate<F: IntegerBlockFormat>(_ sums: inout FourSums, _ offsets: inout FourSums, block b: Int,
                                           _ w: (IntegerLinear.Group, IntegerLinear.Group, IntegerLinear.Group, IntegerLinear.Group), _: F.Type) {
        @inline(__always) func one(_ s: inout SIMD16<Float>, _ o: inout SIMD16<Float>, _ g: IntegerLinear.Group) {
            let (d, c) = F.groupScalesAndOffsets(g.headers + b * F.groupHeaderBytes)
            accumulate(&s, &o, token: 0, block: b, g.integers + b * F.groupIntegerBytes, scales: d, offsetsPerUnit: c, F.self)
        }
        one(&sums.s0, &offsets.s0, w.0); one(&sums.s1, &offsets.s1, w.1)
        one(&sums.s2, &offsets.s2, w.2); one(&sums.s3, &offsets.s3, w.3)
    }
}

extension Q8Activations: GroupActivations {
    static var decodeStreams: Int { IntegerLinear.decodeStreams }

    /// `vpdpbusd` against the quantized block: dot = Σ u·x_q, exact; d becomes d·a and Σx is a·Σx_q.
    @inline(__always)
    func accumulate<F: IntegerBlockFormat>(_ sums: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>, token t: Int, block b: Int,
                                           _ integers: UnsafeRawPointer, scales d: SIMD16<Float>, offsetsPerUnit c: SIMD16<Float>, _: F.Type) {
        let x = block(t, b)
        IntegerLinear.accumulate(&sums, &offsets, groupDots(integers, (x, x, x, x), count: 1, F.self).0, x, scales: d, offsetsPerUnit: c)
    }
}
