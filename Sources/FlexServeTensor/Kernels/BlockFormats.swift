/// The storage formats as 32-value blocks, decoded in registers. Generic kernels specialise on
/// these types, so each format gets its own loop with no per-block dispatch.
///
/// Values are `q·d + m` with a separate multiply and add (two roundings), as gguf-py and
/// FlexFlow dequantize, so a dequantized model matches the references exactly.
protocol BlockFormat {
    static var blockBytes: Int { get }
    /// How far ahead of a block the few-token kernels ask for its lines (`RowDot.prefetch`).
    static var prefetchDistance: Int { get }
    /// Values 0..<16 and 16..<32 of the block at `p`.
    static func decode(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>)
    /// The same 32 values as four 8-value quarters (`BlockFormatsAVX512.swift` has faster ones).
    static func decode8(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)
    /// Two rows' blocks at once: quarter k of block `a` in the low half of the k-th vector, of block `b` in the
    /// high half (the layout of `RowDot`'s two-row registers). The same values as `decode8` of each.
    static func decodePair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)
}

extension BlockFormat {
    static var prefetchDistance: Int { Prefetch.distance }

    @inline(__always) static func decode8(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let (lo, hi) = decode(p)
        return (lo.lowHalf, lo.highHalf, hi.lowHalf, hi.highHalf)
    }

    @inline(__always) static func decodePair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let u = decode8(a), v = decode8(b)
        return (SIMD16(lowHalf: u.0, highHalf: v.0), SIMD16(lowHalf: u.1, highHalf: v.1),
                SIMD16(lowHalf: u.2, highHalf: v.2), SIMD16(lowHalf: u.3, highHalf: v.3))
    }
}

/// fp32 rows as 32-value blocks: decoding is loading. The one-token kernels' eight streams and their prefetch serve
/// fp32 weights too, and decoding steps take them in one parallel region (`TokenProjection`) as the other formats.
enum F32Blocks: BlockFormat {
    static var blockBytes: Int { 128 }
    static var prefetchDistance: Int { Prefetch.floatRowDistance }
    @inline(__always) static func decode(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        (p.loadUnaligned(as: SIMD16<Float>.self), p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
    }

    @inline(__always) static func decode8(_ p: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        (p.loadUnaligned(as: SIMD8<Float>.self), p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self),
         p.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self), p.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
    }
}

enum F16Blocks: BlockFormat {
    static var blockBytes: Int { 64 }
    static var prefetchDistance: Int { Prefetch.floatRowDistance }
    @inline(__always) static func decode(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        (SIMDWidening.halves(p.loadUnaligned(as: SIMD16<UInt16>.self)),
         SIMDWidening.halves(p.loadUnaligned(fromByteOffset: 32, as: SIMD16<UInt16>.self)))
    }
}

enum BF16Blocks: BlockFormat {
    static var blockBytes: Int { 64 }
    static var prefetchDistance: Int { Prefetch.floatRowDistance }
    @inline(__always) static func decode(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        (SIMDWidening.bfloats(p.loadUnaligned(as: SIMD16<UInt16>.self)),
         SIMDWidening.bfloats(p.loadUnaligned(fromByteOffset: 32, as: SIMD16<UInt16>.self)))
    }
}

/// GGUF Q8_0: fp16 scale, 32 signed bytes.
enum Q8_0Blocks: BlockFormat {
    static var blockBytes: Int { 34 }
    @inline(__always) static func decode(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        let d = SIMD16<Float>(repeating: SIMDWidening.leadingHalves(p)[0])
        return (SIMDWidening.signedBytes(p.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)) * d,
                SIMDWidening.signedBytes(p.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)) * d)
    }
}

/// GGUF Q4_0: fp16 scale, 16 bytes of nibbles (low nibbles are values 0..<16), offset −8.
enum Q4_0Blocks: BlockFormat {
    static var blockBytes: Int { 18 }
    @inline(__always) static func decode(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        let d = SIMD16<Float>(repeating: SIMDWidening.leadingHalves(p)[0])
        let packed = p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
        return ((SIMDWidening.nibbles(packed & 0x0F) - 8) * d, (SIMDWidening.nibbles(packed &>> 4) - 8) * d)
    }
}

/// GGUF Q4_1: fp16 scale and minimum, 16 bytes of nibbles.
enum Q4_1Blocks: BlockFormat {
    static var blockBytes: Int { 20 }
    @inline(__always) static func decode(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        let scales = SIMDWidening.leadingHalves(p)
        let d = SIMD16<Float>(repeating: scales[0]), m = SIMD16<Float>(repeating: scales[1])
        let packed = p.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
        return (SIMDWidening.nibbles(packed & 0x0F) * d + m, SIMDWidening.nibbles(packed &>> 4) * d + m)
    }
}

/// FlexFlow-style asymmetric int8 groups: fp32 scale and minimum, 32 unsigned bytes.
enum Int8GroupBlocks: BlockFormat {
    static var blockBytes: Int { 40 }
    @inline(__always) static func decode(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        let d = SIMD16<Float>(repeating: p.loadUnaligned(as: Float.self))
        let m = SIMD16<Float>(repeating: p.loadUnaligned(fromByteOffset: 4, as: Float.self))
        return (SIMDWidening.bytes(p.loadUnaligned(fromByteOffset: 8, as: SIMD16<UInt8>.self)) * d + m,
                SIMDWidening.bytes(p.loadUnaligned(fromByteOffset: 24, as: SIMD16<UInt8>.self)) * d + m)
    }
}

/// FlexFlow-style asymmetric int4 groups: fp32 scale and minimum, 16 bytes of nibbles.
enum Int4GroupBlocks: BlockFormat {
    static var blockBytes: Int { 24 }
    @inline(__always) static func decode(_ p: UnsafeRawPointer) -> (SIMD16<Float>, SIMD16<Float>) {
        let d = SIMD16<Float>(repeating: p.loadUnaligned(as: Float.self))
        let m = SIMD16<Float>(repeating: p.loadUnaligned(fromByteOffset: 4, as: Float.self))
        let packed = p.loadUnaligned(fromByteOffset: 8, as: SIMD16<UInt8>.self)
        return (SIMDWidening.nibbles(packed & 0x0F) * d + m, SIMDWidening.nibbles(packed &>> 4) * d + m)
    }
}
