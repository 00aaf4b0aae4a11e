/// Where a key or value vector sits in a KV store: KV head h of slot s starts at
/// `s · slotStride + h · headStride` floats.
public struct KVLayout: Sendable, Equatable {
    public var slotStride: Int
    public var headStride: Int

    public init(slotStride: Int, headStride: Int) {
        self.slotStride = slotStride
        self.headStride = headStride
    }

    /// `[slot][kvHead][headDim]`: a token's keys are one run.
    public static func interleaved(kvHeads: Int, headDim: Int) -> KVLayout { KVLayout(slotStride: kvHeads * headDim, headStride: headDim) }

    /// `[kvHead][slot][headDim]`: one head's keys over a sequence's slots are one run.
    public static func planar(slots: Int, headDim: Int) -> KVLayout { KVLayout(slotStride: headDim, headStride: slots * headDim) }

    @inline(__always)
    public func offset(slot: Int, head: Int) -> Int { slot * slotStride + head * headStride }
}
