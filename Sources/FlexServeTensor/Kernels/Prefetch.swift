/// LLVM's prefetch intrinsic. C's `_mm_prefetch` is a macro Swift cannot import, and the
/// importable `_m_prefetch` is 3DNow!'s, which compiles to nothing on these CPUs.
@_silgen_name("llvm.prefetch.p0")
private func llvmPrefetch(_ address: UnsafeRawPointer, _ write: Int32, _ locality: Int32, _ dataCache: Int32)

public enum Prefetch {
    /// Bytes ahead of the current read that a weight stream asks for.
    static let distance = 512

    /// Asks for the cache line `distance` bytes past `p` (into all cache levels): with four rows
    /// streaming per core, the hardware prefetchers alone do not keep up.
    @inline(__always)
    public static func ahead(_ p: UnsafeRawPointer) {
        llvmPrefetch(p + distance, 0, 3, 1)
    }

    /// Asks for the cache line at `p` itself (rows reached through an index, such as KV slots).
    @inline(__always)
    public static func line(_ p: UnsafeRawPointer) {
        llvmPrefetch(p, 0, 3, 1)
    }
}
