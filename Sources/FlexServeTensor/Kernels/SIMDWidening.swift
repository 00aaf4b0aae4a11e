/// Widening conversions to `SIMD16<Float>` as element loops, which LLVM turns into vector
/// instructions; the standard library's SIMD conversions are calls.
enum SIMDWidening {
    /// Unsigned bytes convert slowly (LLVM takes a scalar path); signed ones vectorise. Flipping
    /// the top bit maps 0...255 onto -128...127 exactly.
    @inline(__always)
    static func bytes(_ v: SIMD16<UInt8>) -> SIMD16<Float> {
        signedBytes(unsafeBitCast(v ^ 0x80, to: SIMD16<Int8>.self)) + 128
    }

    /// Nibbles (0...15) are already valid signed bytes.
    @inline(__always)
    static func nibbles(_ v: SIMD16<UInt8>) -> SIMD16<Float> {
        signedBytes(unsafeBitCast(v, to: SIMD16<Int8>.self))
    }

    @inline(__always)
    static func signedBytes(_ v: SIMD16<Int8>) -> SIMD16<Float> {
        var r = SIMD16<Float>()
        for i in 0..<16 { r[i] = Float(v[i]) }
        return r
    }

    @inline(__always)
    static func halves(_ v: SIMD16<UInt16>) -> SIMD16<Float> {
        var r = SIMD16<Float>()
        for i in 0..<16 { r[i] = Float(Float16(bitPattern: v[i])) }
        return r
    }

    @inline(__always)
    static func bfloats(_ v: SIMD16<UInt16>) -> SIMD16<Float> {
        var r = SIMD16<UInt32>()
        for i in 0..<16 { r[i] = UInt32(v[i]) << 16 }
        return unsafeBitCast(r, to: SIMD16<Float>.self)
    }

    /// The four fp16 values at `p` (a block's scale and minimum come first). A vector load and
    /// conversion: converting one scalar makes LLVM insert it into a live register, a false
    /// dependency that chained every block of a row behind the previous one.
    @inline(__always)
    static func leadingHalves(_ p: UnsafeRawPointer) -> SIMD4<Float> {
        let v = p.loadUnaligned(as: SIMD4<UInt16>.self)
        var r = SIMD4<Float>()
        for i in 0..<4 { r[i] = Float(Float16(bitPattern: v[i])) }
        return r
    }
}
