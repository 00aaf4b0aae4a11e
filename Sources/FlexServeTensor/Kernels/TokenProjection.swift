/// One token's projections of one input, as `Linear.forward` fuses them, cut into the steps of a caller's
/// own parallel region (`ThreadPool.runPhases`): `quantize` the input (for `InterleavedRows`), then
/// `run(task:thread:round:)` once for each of `slots`, with a round other than the last token's. The same kernels as
/// `Linear.forward` in the same order, so the same results bit for bit. Built once per model layer:
/// the input, outputs and activation scratch stay put.
public final class TokenProjection: @unchecked Sendable {
    /// Tasks of `run(task:thread:)`: one per thread that streams.
    public let slots: Int
    /// Blocks of 32 input values (`quantize` takes a range of them).
    public let blocks: Int
    private let dtype: DType
    private let input: UnsafePointer<Float>
    private var projections: [Linear.Projection]
    private let kind: Kind

    private enum Kind {
        /// `InterleavedRows` (`IntegerLinear`): threads stream their parts, then steal.
        case integer(Integer)
        /// fp32 activations against rows in a block format (`Linear.decodeTokens`): one run of rows per slot.
        case packed(rows: Int, rowBytes: Int)
    }

    /// The input as the interleaved kernels take it.
    private enum Activations {
        case q8(Q8Activations)
        case f32(F32Activations)
    }

    /// What an interleaved decode reads, as values and pointers only: both threads run every projection of a step, and
    /// a reference counted on each run would pass its cache line between their cores (~200 ns apart in two core
    /// complexes). The projection owns the memory (`scratch`, freed with it; `segments` and `parts`, freed in `deinit`).
    private struct Integer {
        let activations: Activations
        let segments: UnsafeMutableBufferPointer<IntegerLinear.Segment>
        let parts: StealableRanges
        let pieces: (own: Int, stolen: Int)
    }

    /// The activations' memory (interleaved rows).
    private let scratch: OwnedBuffer?

    deinit {
        guard case .integer(let integer) = kind else { return }
        integer.segments.baseAddress!.deinitialize(count: integer.segments.count)
        integer.segments.deallocate()
        integer.parts.deallocate()
    }

    /// nil where `Linear.forward` would not fuse these projections for one token: weights in different formats
    /// or of other lengths than `input`, or not in blocks of 32 values.
    public init?(input: UnsafePointer<Float>, projections: [Linear.Projection], pool: ThreadPool = .shared) {
        guard let first = projections.first?.weight, let cols = first.shape.last, cols % 32 == 0,
              projections.allSatisfy({ $0.weight.dtype == first.dtype && $0.weight.shape.last == cols
                                       && $0.weight.interleaved?.activations == first.interleaved?.activations }) else { return nil }
        dtype = first.dtype
        self.input = input
        self.projections = projections
        blocks = cols / 32
        let total = projections.reduce(0) { $0 + $1.weight.shape[0] }
        guard first.interleaved != nil else {
            slots = max(1, min(pool.threadCount, total / 32))
            kind = .packed(rows: total, rowBytes: dtype.byteCount(values: cols)!)
            scratch = nil
            return
        }
        let scratch: OwnedBuffer, activations: Activations
        if first.activations == .q8 {
            scratch = OwnedBuffer(byteCount: Q8Activations.byteCount(tokens: 1, cols: cols))
            activations = .q8(Q8Activations(scratch: scratch.pointer, tokens: 1, cols: cols))
        } else {
            scratch = OwnedBuffer(byteCount: F32Activations.byteCount(tokens: 1, cols: cols))
            activations = .f32(F32Activations(scratch: scratch.pointer, tokens: 1, cols: cols))
        }
        let segments = UnsafeMutableBufferPointer<IntegerLinear.Segment>.allocate(capacity: projections.count)
        var groups = 0
        for (i, p) in projections.enumerated() {
            let packed = p.weight.interleaved!
            (segments.baseAddress! + i).initialize(to: IntegerLinear.Segment(
                groups: groups..<(groups + packed.groups), rows: packed.rows,
                integers: UnsafeRawPointer(packed.integers.pointer), headers: UnsafeRawPointer(packed.headers.pointer),
                bias: p.bias, out: p.out))
            groups += packed.groups
        }
        slots = IntegerLinear.decodeThreads(totalGroups: groups, pool: pool)
        let pieces: (own: Int, stolen: Int)
        switch activations {
        case .q8(let a): pieces = Self.pieces(a, dtype)
        case .f32(let a): pieces = Self.pieces(a, dtype)
        }
        self.scratch = scratch
        kind = .integer(Integer(activations: activations, segments: segments, parts: StealableRanges(splitting: groups, into: slots),
                                pieces: pieces))
    }

    private static func pieces<A: GroupActivations>(_ a: A, _ dtype: DType) -> (own: Int, stolen: Int) {
        switch dtype {
        case .q8_0: IntegerLinear.decodePieces(Q8_0Blocks.self, a)
        case .q4_0: IntegerLinear.decodePieces(Q4_0Blocks.self, a)
        case .q4_1: IntegerLinear.decodePieces(Q4_1Blocks.self, a)
        case .int8Group: IntegerLinear.decodePieces(Int8GroupBlocks.self, a)
        case .int4Group: IntegerLinear.decodePieces(Int4GroupBlocks.self, a)
        case .f32, .f16, .bf16: preconditionFailure("\(dtype) has no integer blocks")
        }
    }

    /// Projection `i` writes to `out` from now on (a vocabulary head into each step's logits).
    public func setOutput(_ out: UnsafeMutablePointer<Float>, projection i: Int) {
        let p = projections[i]
        projections[i] = Linear.Projection(weight: p.weight, bias: p.bias, out: out)
        if case .integer(let integer) = kind { integer.segments[i].out = out }
    }

    /// Whether `quantize` has work (`InterleavedRows`).
    public var quantizes: Bool { if case .integer = kind { true } else { false } }

    /// Prepares input blocks `range` for the interleaved kernels (all of them before any `run`): quantized for `q8`
    /// activations, put in the kernel's order for fp32 ones (`F32Activations`); nothing for rows decoded as they stream.
    public func quantize(blocks range: Range<Int>) {
        guard case .integer(let integer) = kind else { return }
        switch integer.activations {
        case .q8(let a): a.quantize(input, token: 0, blocks: range)
        case .f32(let a):
            switch dtype {
            case .q8_0: a.prepare(input, token: 0, blocks: range, Q8_0Blocks.self)
            case .q4_0: a.prepare(input, token: 0, blocks: range, Q4_0Blocks.self)
            case .q4_1: a.prepare(input, token: 0, blocks: range, Q4_1Blocks.self)
            case .int8Group: a.prepare(input, token: 0, blocks: range, Int8GroupBlocks.self)
            case .int4Group: a.prepare(input, token: 0, blocks: range, Int4GroupBlocks.self)
            case .f32, .f16, .bf16: preconditionFailure("\(dtype) has no integer blocks")
            }
        }
    }

    /// Task `task` of `slots`, run by thread `thread` of the caller's region. With `InterleavedRows` the thread's own
    /// part first (whichever task it took: the part `warm` asked for), then what is left of the others, all rows back to
    /// be taken in each new `round` (a step's number); with rows decoded as they stream, the task's run of rows.
    /// `readOnly` (`InterleavedRows` only: where `quantizes`): the same reads without the arithmetic
    /// (`ReadOnlyActivations`), outputs meaningless.
    public func run(task: Int, thread: Int, round: Int, readOnly: Bool = false) {
        switch kind {
        case .integer(let integer):
            switch (integer.activations, readOnly) {
            case (.q8(let a), false): runIntegers(a, slot: thread % slots, round: round, integer)
            case (.f32(let a), false): runIntegers(a, slot: thread % slots, round: round, integer)
            case (.q8(let a), true): runIntegers(ReadOnlyActivations(base: a), slot: thread % slots, round: round, integer)
            case (.f32(let a), true): runIntegers(ReadOnlyActivations(base: a), slot: thread % slots, round: round, integer)
            }
        case let .packed(rows, rowBytes):
            precondition(!readOnly, "rows decoded as they stream have no reads without their arithmetic")
            let slot = task
            switch dtype {
            case .f32: runPacked(F32Blocks.self, slot: slot, total: rows, rowBytes: rowBytes)
            case .f16: runPacked(F16Blocks.self, slot: slot, total: rows, rowBytes: rowBytes)
            case .bf16: runPacked(BF16Blocks.self, slot: slot, total: rows, rowBytes: rowBytes)
            case .q8_0: runPacked(Q8_0Blocks.self, slot: slot, total: rows, rowBytes: rowBytes)
            case .q4_0: runPacked(Q4_0Blocks.self, slot: slot, total: rows, rowBytes: rowBytes)
            case .q4_1: runPacked(Q4_1Blocks.self, slot: slot, total: rows, rowBytes: rowBytes)
            case .int8Group: runPacked(Int8GroupBlocks.self, slot: slot, total: rows, rowBytes: rowBytes)
            case .int4Group: runPacked(Int4GroupBlocks.self, slot: slot, total: rows, rowBytes: rowBytes)
            }
        }
    }

    /// Asks for the lines of the `chunk`th group `run(task:thread:)` on `thread` reads first (`IntegerLinear.warm`);
    /// false once past them, and for rows decoded as they stream.
    public func warm(thread: Int, chunk: Int) -> Bool {
        guard case .integer(let integer) = kind else { return false }
        switch integer.activations {
        case .q8: return warmIntegers(Q8Activations.self, slot: thread % slots, chunk: chunk, integer)
        case .f32: return warmIntegers(F32Activations.self, slot: thread % slots, chunk: chunk, integer)
        }
    }

    private func runIntegers<A: GroupActivations>(_ a: A, slot: Int, round: Int, _ integer: Integer) {
        let segments = UnsafeBufferPointer(integer.segments), parts = integer.parts, pieces = integer.pieces
        switch dtype {
        case .q8_0: IntegerLinear.decodeSlot(Q8_0Blocks.self, slot, a, segments, parts: parts, pieces: pieces, round: round)
        case .q4_0: IntegerLinear.decodeSlot(Q4_0Blocks.self, slot, a, segments, parts: parts, pieces: pieces, round: round)
        case .q4_1: IntegerLinear.decodeSlot(Q4_1Blocks.self, slot, a, segments, parts: parts, pieces: pieces, round: round)
        case .int8Group: IntegerLinear.decodeSlot(Int8GroupBlocks.self, slot, a, segments, parts: parts, pieces: pieces, round: round)
        case .int4Group: IntegerLinear.decodeSlot(Int4GroupBlocks.self, slot, a, segments, parts: parts, pieces: pieces, round: round)
        case .f32, .f16, .bf16: preconditionFailure("\(dtype) has no integer blocks")
        }
    }

    private func warmIntegers<A: GroupActivations>(_: A.Type, slot: Int, chunk: Int, _ integer: Integer) -> Bool {
        let segments = UnsafeBufferPointer(integer.segments), parts = integer.parts, pieces = integer.pieces
        @inline(__always) func warm<F: IntegerBlockFormat>(_: F.Type) -> Bool {
            IntegerLinear.warm(F.self, A.self, slot: slot, chunk: chunk, blocks: blocks, segments, parts: parts, pieces: pieces)
        }
        switch dtype {
        case .q8_0: return warm(Q8_0Blocks.self)
        case .q4_0: return warm(Q4_0Blocks.self)
        case .q4_1: return warm(Q4_1Blocks.self)
        case .int8Group: return warm(Int8GroupBlocks.self)
        case .int4Group: return warm(Int4GroupBlocks.self)
        case .f32, .f16, .bf16: return false
        }
    }

    /// Slot `slot`'s run of rows (of all projections together), as `parallelChunks` cuts them for `Linear.decodeTokens`.
    private func runPacked<F: BlockFormat>(_: F.Type, slot: Int, total: Int, rowBytes: Int) {
        let size = (total + slots - 1) / slots
        Linear.decodeRows(F.self, x: input, projections: projections, rowBytes: rowBytes, blocks: blocks,
                          (slot * size)..<min(total, slot * size + size))
    }
}
