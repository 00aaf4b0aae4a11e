/// How a KV store holds each key and value element. fp16 halves the bytes attention reads for every
/// token it decodes and the memory a sequence takes (llama.cpp's default cache type); fp32 keeps the
/// keys and values exactly as the model computed them.
public enum KVCacheType: String, Sendable, CaseIterable, Codable {
    case f32, f16

    public var bytes: Int {
        switch self {
        case .f32: 4
        case .f16: 2
        }
    }
}

/// An element type a KV store can hold. Attention reads it widened to fp32, eight lanes at a time (fp32
/// elements as they are), and does all its arithmetic in fp32.
public protocol KVElement {
    static func load8(_ p: UnsafePointer<Self>, _ i: Int) -> SIMD8<Float>
    static func load16(_ p: UnsafePointer<Self>, _ i: Int) -> SIMD16<Float>
    static func load(_ p: UnsafePointer<Self>, _ i: Int) -> Float
    static func store(_ x: UnsafePointer<Float>, into p: UnsafeMutablePointer<Self>, count: Int)
    /// `count` (a multiple of 16) elements at `p` as floats: fp32 rows themselves, others converted (exactly) into `scratch`.
    static func floats(_ p: UnsafePointer<Self>, count: Int, scratch: UnsafeMutablePointer<Float>) -> UnsafePointer<Float>
    /// Whether `floats` converts, and so needs its scratch.
    static var widens: Bool { get }
}

extension Float: KVElement {
    @inline(__always)
    public static func load8(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    public static func load16(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
    }

    @inline(__always)
    public static func load(_ p: UnsafePointer<Float>, _ i: Int) -> Float { p[i] }

    @inline(__always)
    public static func store(_ x: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float>, count: Int) {
        p.update(from: x, count: count)
    }

    @inline(__always)
    public static func floats(_ p: UnsafePointer<Float>, count: Int, scratch: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> { p }

    @inline(__always) public static var widens: Bool { false }
}

extension Float16: KVElement {
    /// An element loop, not `SIMD8<Float>(v)`: the standard library's conversion is a call per vector.
    @inline(__always)
    public static func load8(_ p: UnsafePointer<Float16>, _ i: Int) -> SIMD8<Float> {
        let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float16>.self)
        var r = SIMD8<Float>()
        for k in 0..<8 { r[k] = Float(v[k]) }
        return r
    }

    @inline(__always)
    public static func load16(_ p: UnsafePointer<Float16>, _ i: Int) -> SIMD16<Float> {
        unsafeBitCast((load8(p, i), load8(p, i + 8)), to: SIMD16<Float>.self)
    }

    @inline(__always)
    public static func load(_ p: UnsafePointer<Float16>, _ i: Int) -> Float { Float(p[i]) }

    @inline(__always)
    public static func store(_ x: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float16>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            var h = SIMD8<Float16>()
            for k in 0..<8 { h[k] = Float16(v[k]) }
            UnsafeMutableRawPointer(p + i).storeBytes(of: h, as: SIMD8<Float16>.self)
            i += 8
        }
        while i < count { p[i] = Float16(x[i]); i += 1 }
    }

    @inline(__always)
    public static func floats(_ p: UnsafePointer<Float16>, count: Int, scratch: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        for i in stride(from: 0, to: count, by: 16) { UnsafeMutableRawPointer(scratch + i).storeBytes(of: load16(p, i), as: SIMD16<Float>.self) }
        return UnsafePointer(scratch)
    }

    @inline(__always) public static var widens: Bool { true }
}

/// One layer of a KV store: its keys and values, placed by `layout`, each element a `type`.
public struct KVStore: @unchecked Sendable {
    public let keys: UnsafeMutableRawPointer
    public let values: UnsafeMutableRawPointer
    public let type: KVCacheType
    public let layout: KVLayout

    public init(keys: UnsafeMutableRawPointer, values: UnsafeMutableRawPointer, type: KVCacheType, layout: KVLayout) {
        (self.keys, self.values, self.type, self.layout) = (keys, values, type, layout)
    }

    /// fp32 keys and values.
    public init(keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>, layout: KVLayout) {
        self.init(keys: UnsafeMutableRawPointer(keys), values: UnsafeMutableRawPointer(values), type: .f32, layout: layout)
    }

    /// Stores KV head `head`'s key and value (`headDim` floats each) of one token at `slot`, in the store's type.
    @inline(__always)
    public func write(slot: Int, head: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>, headDim: Int) {
        let o = layout.offset(slot: slot, head: head)
        switch type {
        case .f32:
            Float.store(key, into: keys.assumingMemoryBound(to: Float.self) + o, count: headDim)
            Float.store(value, into: values.assumingMemoryBound(to: Float.self) + o, count: headDim)
        case .f16:
            Float16.store(key, into: keys.assumingMemoryBound(to: Float16.self) + o, count: headDim)
            Float16.store(value, into: values.assumingMemoryBound(to: Float16.self) + o, count: headDim)
        }
    }

    /// Copies KV head `head`'s key and value from slot `from` to slot `to`.
    public func copy(head: Int, from: Int, to: Int, headDim: Int) {
        let bytes = headDim * type.bytes
        let src = layout.offset(slot: from, head: head) * type.bytes, dst = layout.offset(slot: to, head: head) * type.bytes
        (keys + dst).copyMemory(from: keys + src, byteCount: bytes)
        (values + dst).copyMemory(from: values + src, byteCount: bytes)
    }
}
