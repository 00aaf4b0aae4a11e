/// Activations that turn a projection's decode into reads of its weights: every line the kernels ask for and load
/// (the same pieces, streams, prefetches and headers), folded into integer sums instead of dot products. For
/// `flexserve bench bound`, which compares the decode step with a step whose projections do no arithmetic; the
/// outputs are meaningless.
struct ReadOnlyActivations<Base: GroupActivations>: GroupActivations {
    let base: Base

    var blocks: Int { base.blocks }
    static var decodeStreams: Int { Base.decodeStreams }

    /// Integer additions only: the bits are not floats, and a float operation on a denormal would cost an assist.
    @inline(__always)
    func accumulate<F: IntegerBlockFormat>(_ sums: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>, token t: Int, block b: Int,
                                           _ integers: UnsafeRawPointer, scales d: SIMD16<Float>, offsetsPerUnit c: SIMD16<Float>, _: F.Type) {
        var bits = unsafeBitCast(sums, to: SIMD16<Int32>.self) &+ unsafeBitCast(d, to: SIMD16<Int32>.self)
        for offset in stride(from: 0, to: F.groupIntegerBytes, by: 64) {
            bits &+= integers.loadUnaligned(fromByteOffset: offset, as: SIMD16<Int32>.self)
        }
        sums = unsafeBitCast(bits, to: SIMD16<Float>.self)
    }
}
