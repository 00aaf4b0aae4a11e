/// LLVM's prefetch intrinsic. C's `_mm_prefetch` is a macro Swift cannot import, and the
/// importable `_m_prefetch` is 3DNow!'s, which compiles to nothing on these CPUs.
@_silgen_name("llvm.prefetch.p0")
private func llvmPrefetch(_ address: UnsafeRawPointer, _ write: Int32, _ locality: Int32, _ dataCache: Int32)

public enum Prefetch {
    /// Bytes ahead of the current read that a weight stream asks for. Measured in interleaved segments of
    /// SmolLM2 decoding: 256 against 512, Q8_0 with q8 activations 1.6–4.6% faster (20–27 of 38 segment
    /// pairs), Q4_1 with fp32 activations 3.4%, Q4_1 with q8 and f16 unchanged; 128 the same as 256;
    /// 2048 7–9% slower, none at all 3–5% slower. Far-ahead requests crowd out the lines the
    /// hardware prefetchers are already fetching. (The q8 kernels, reading sixteen-row groups of 256–512-byte
    /// records, ask 1–4 KB ahead: `IntegerLinear.decodePrefetchBytes`.)
    public static let distance = 256

    /// The same for rows of floats (`BlockFormat.prefetchDistance` of fp32, f16 and bf16). Against 256, alternated
    /// `bench throughput` rounds on Emerald Rapids (2026-12-06): SmolLM2 decode f16 128–130 → 142–160 tokens/s, bf16
    /// 126–131 → 148–149, f32 level; TinyLlama's widths (660 MB f16, beyond the L3) f16 44.5–44.7 → 46.2–47.8; a k-token
    /// f16 verification 3–11% shorter. 1024: level with 512 beyond the L3, slower within it.
    public static let floatRowDistance = 512

    /// Asks for the cache line `distance` (or `bytes`) past `p` (into all cache levels): with several rows
    /// streaming per core, the hardware prefetchers alone do not keep up.
    @inline(__always)
    public static func ahead(_ p: UnsafeRawPointer, by bytes: Int = distance) {
        llvmPrefetch(p + bytes, 0, 3, 1)
    }

    /// Asks for the cache line `bytes` past `p` with the non-temporal hint (for data read once: kept out of the
    /// outer levels where it can).
    @inline(__always)
    public static func aheadNonTemporal(_ p: UnsafeRawPointer, by bytes: Int) {
        llvmPrefetch(p + bytes, 0, 0, 1)
    }

    /// Asks for the cache line at `p` itself (rows reached through an index, such as KV slots).
    @inline(__always)
    public static func line(_ p: UnsafeRawPointer) {
        llvmPrefetch(p, 0, 3, 1)
    }
}
