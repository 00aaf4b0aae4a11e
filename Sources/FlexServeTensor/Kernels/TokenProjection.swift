/// One token's projections of one input against `InterleavedRows` weights (`q8` activations), as
/// `Linear.forward` fuses them, cut into the steps of a caller's own parallel region
/// (`ThreadPool.runPhases`): `quantize` the input, then `run(slot:)` once for each of `slots`; `reset()`
/// before the next token. The same kernels as `Linear.forward` in the same order, so the same results
/// bit for bit. Built once per model layer: the input, outputs and activation scratch stay put.
public final class TokenProjection: @unchecked Sendable {
    /// Tasks of `run(slot:)`: one per thread that streams.
    public let slots: Int
    /// Blocks of 32 input values (`quantize` takes a range of them).
    public let blocks: Int
    private let dtype: DType
    private let input: UnsafePointer<Float>
    private let scratch: OwnedBuffer
    private let activations: Q8Activations
    private let segments: UnsafeMutableBufferPointer<IntegerLinear.Segment>
    private let parts: StealableRanges
    private let piece: Int
    private let weights: [InterleavedRows]

    /// nil unless every weight is set up for `q8` activations in the same format and takes `input`'s length.
    public init?(input: UnsafePointer<Float>, projections: [Linear.Projection], pool: ThreadPool = .shared) {
        guard let first = projections.first?.weight.interleaved, let cols = projections.first?.weight.shape.last,
              projections.allSatisfy({ $0.weight.interleaved?.dtype == first.dtype && $0.weight.shape.last == cols }) else { return nil }
        dtype = first.dtype
        weights = projections.map { $0.weight.interleaved! }
        self.input = input
        blocks = cols / 32
        scratch = OwnedBuffer(byteCount: Q8Activations.byteCount(tokens: 1, cols: cols))
        activations = Q8Activations(scratch: scratch.pointer, tokens: 1, cols: cols)
        segments = .allocate(capacity: projections.count)
        var quads = 0
        for (i, p) in projections.enumerated() {
            let packed = p.weight.interleaved!
            (segments.baseAddress! + i).initialize(to: IntegerLinear.Segment(
                quads: quads..<(quads + packed.quads), rows: packed.rows,
                integers: UnsafeRawPointer(packed.integers.pointer), headers: UnsafeRawPointer(packed.headers.pointer),
                bias: p.bias, out: p.out))
            quads += packed.quads
        }
        slots = IntegerLinear.decodeThreads(totalQuads: quads, pool: pool)
        parts = StealableRanges(splitting: quads, into: 2 * slots)
        switch dtype {
        case .q8_0: piece = IntegerLinear.decodePiece(Q8_0Blocks.self, activations)
        case .q4_0: piece = IntegerLinear.decodePiece(Q4_0Blocks.self, activations)
        case .q4_1: piece = IntegerLinear.decodePiece(Q4_1Blocks.self, activations)
        case .int8Group: piece = IntegerLinear.decodePiece(Int8GroupBlocks.self, activations)
        case .int4Group: piece = IntegerLinear.decodePiece(Int4GroupBlocks.self, activations)
        case .f32, .f16, .bf16: return nil
        }
    }

    deinit {
        segments.baseAddress!.deinitialize(count: segments.count)
        segments.deallocate()
    }

    /// Projection `i` writes to `out` from now on (a vocabulary head into each step's logits).
    public func setOutput(_ out: UnsafeMutablePointer<Float>, projection i: Int) { segments[i].out = out }

    /// Quantizes input blocks `range` (all of them before any `run`).
    public func quantize(blocks range: Range<Int>) { activations.quantize(input, token: 0, blocks: range) }

    public func run(slot: Int) {
        let segments = UnsafeBufferPointer(segments)
        switch dtype {
        case .q8_0: IntegerLinear.decodeSlot(Q8_0Blocks.self, slot, activations, segments, parts: parts, piece: piece)
        case .q4_0: IntegerLinear.decodeSlot(Q4_0Blocks.self, slot, activations, segments, parts: parts, piece: piece)
        case .q4_1: IntegerLinear.decodeSlot(Q4_1Blocks.self, slot, activations, segments, parts: parts, piece: piece)
        case .int8Group: IntegerLinear.decodeSlot(Int8GroupBlocks.self, slot, activations, segments, parts: parts, piece: piece)
        case .int4Group: IntegerLinear.decodeSlot(Int4GroupBlocks.self, slot, activations, segments, parts: parts, piece: piece)
        case .f32, .f16, .bf16: preconditionFailure("\(dtype) has no integer blocks")
        }
    }

    /// Every row back to be taken, for the next token.
    public func reset() { parts.reset() }
}
