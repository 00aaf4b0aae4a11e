#if FLEXSERVE_AVX512
import _Builtin_intrinsics.intel

/// Prefill with weights in a float format (f32, f16, bf16, and integer blocks not set up as `InterleavedRows`): sixteen
/// rows against three tokens at a time. `RowDot.eightTokens` meets four rows with eight tokens, two weight vectors and
/// eight activation vectors per sixteen FMAs, so every four rows read the tile's activations from L2 again (16 bytes per
/// FMA). Here a thread converts sixteen rows into a panel of `chunkSteps` steps of eight columns, each step eight vectors
/// of two rows side by side (`RowDot.pair`'s layout), which stays in L1 while every three tokens of a tile meet it: eight
/// loads, three activation broadcasts and 24 FMAs per step (4 bytes of activations per FMA), the next three tokens' lines
/// asked for on the way. Each three tokens' sums wait in memory for the next chunk, and `rowSums` reduces sixteen rows at
/// a time.
///
/// Per (row, token) the lanes, their order and the reduction are `RowDot.oneToken`'s (lane l sums the products of the
/// columns ≡ l mod 8 in order, then `horizontalSum`'s tree), and a sum stored and loaded back is the same float, so the
/// results are the same bit for bit as every other path's.
struct RowPanel {
    private let panel: UnsafeMutablePointer<SIMD16<Float>>
    private let sums: UnsafeMutablePointer<SIMD16<Float>>
    private let rowScratch: UnsafeMutablePointer<Float>
    private let rowStarts: UnsafeMutablePointer<UnsafeRawPointer>

    static let rows = 16
    static let tokensPerPass = 3
    /// Steps of eight columns converted at a time: 256 columns, 16 KB of floats.
    static let chunkSteps = 32
    static var chunkColumns: Int { 8 * chunkSteps }
    /// Tokens of a unit of work (a multiple of three): enough that a 512-token prefill is one tile and reads each weight
    /// row once (455 MB of f32 weights for SmolLM2, where 132 read them four times); its three-token sums (264 KB) and a
    /// chunk's activations (528 KB) still stay in a 1 MiB L2. Against 132 on Zen 5, two sets of five and six alternated
    /// `bench throughput` rounds (of the concurrent FMA passes): f32 0.572, 0.585 → 0.649, 0.633; bf16 0.634 → 0.669;
    /// f16 0.61, 0.63 → 0.63, 0.64.
    static let tokenTile = 516
    /// Forwards of fewer tokens keep `RowDot.eightTokens` (or, up to `Linear.fewTokens`, rows decoded in registers).
    static let minimumTokens = 24

    private static var panelVectors: Int { 8 * chunkSteps }
    private static var sumVectors: Int { tokenTile / tokensPerPass * 24 }
    static var byteCount: Int { (panelVectors + sumVectors) * 64 + rows * chunkColumns * 4 + rows * 8 }

    init(_ memory: UnsafeMutableRawPointer) {
        panel = memory.bindMemory(to: SIMD16<Float>.self, capacity: Self.panelVectors + Self.sumVectors)
        sums = panel + Self.panelVectors
        rowScratch = (memory + (Self.panelVectors + Self.sumVectors) * 64).bindMemory(to: Float.self, capacity: Self.rows * Self.chunkColumns)
        rowStarts = (memory + (Self.panelVectors + Self.sumVectors) * 64 + Self.rows * Self.chunkColumns * 4)
            .bindMemory(to: UnsafeRawPointer.self, capacity: Self.rows)
    }

    /// Rows `firstRow..<firstRow + 16` of `weight` (the last row repeated past the matrix's end) against tokens `tokens`
    /// (at most `tokenTile`) of `x` (`cols` apart): `store(t, sums)` with token t's sixteen row sums. One or two tokens
    /// past the threes take a pass of their own over the panel (their last repeated), not another read of the rows.
    @inline(__always)
    func run(_ weight: TensorView, firstRow: Int, x: UnsafePointer<Float>, cols: Int, tokens: Range<Int>, store: (Int, SIMD16<Float>) -> Void) {
        let passes = (tokens.count + 2) / 3
        @inline(__always) func count(_ p: Int) -> Int { min(3, tokens.count - 3 * p) }
        let rowBytes = weight.dtype.byteCount(values: cols)!
        for c0 in stride(from: 0, to: cols, by: Self.chunkColumns) {
            let width = min(Self.chunkColumns, cols - c0)
            fill(weight, firstRow: firstRow, rowBytes: rowBytes, columns: c0..<(c0 + width))
            for p in 0..<passes {
                let t = tokens.lowerBound + 3 * p
                threeTokens(x + t * cols + c0, count(p), cols: cols, steps: width / 8, sums: sums + 24 * p, first: c0 == 0,
                            next: p + 1 < passes ? count(p + 1) : 0)
            }
        }
        for p in 0..<passes {
            for k in 0..<count(p) {
                let a = sums + 24 * p + 8 * k
                store(tokens.lowerBound + 3 * p + k, Self.rowSums(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]))
            }
        }
    }

    /// Columns `columns` of rows `firstRow..<firstRow + 16` (the last row repeated past the matrix's end) into the panel,
    /// side by side in pairs: fp32, fp16 and bf16 straight from the rows (two rows' eight values loaded and converted as
    /// one vector), block formats decoded into a scratch of floats first. Against the scratch for every type, `bench
    /// kernels` (one thread, 512 × 576 in L2, alternated, Zen 5): f32 128 tokens 184–188 → 192–196 GFLOP/s.
    @inline(__always)
    private func fill(_ weight: TensorView, firstRow: Int, rowBytes: Int, columns: Range<Int>) {
        let rowCount = weight.shape[0], width = columns.count, dtype = weight.dtype
        let rows = UnsafeMutableBufferPointer<UnsafeRawPointer>(start: rowStarts, count: Self.rows)
        for k in 0..<Self.rows {
            let r = min(firstRow + k, rowCount - 1)
            rows[k] = weight.data + r * rowBytes + dtype.byteCount(values: columns.lowerBound)!
        }
        @inline(__always) func pairs(_ pair: (_ p: Int, _ column: Int) -> SIMD16<Float>) {
            for s in 0..<(width / 8) {
                for p in 0..<8 { panel[8 * s + p] = pair(p, 8 * s) }
            }
        }
        @inline(__always) func halves(_ p: Int, _ i: Int) -> SIMD16<UInt16> {
            SIMD16(lowHalf: rows[2 * p].loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self),
                   highHalf: rows[2 * p + 1].loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self))
        }
        switch dtype {
        case .f32:
            pairs { p, i in RowDot.pair(rows[2 * p].assumingMemoryBound(to: Float.self), rows[2 * p + 1].assumingMemoryBound(to: Float.self), i) }
        case .f16:
            pairs { p, i in SIMDWidening.halves(halves(p, i)) }
        case .bf16:
            pairs { p, i in SIMDWidening.bfloats(halves(p, i)) }
        default:
            for k in 0..<Self.rows { Dequantize.row(dtype, rows[k], count: width, into: rowScratch + k * width) }
            pairs { p, i in RowDot.pair(rowScratch + 2 * p * width, rowScratch + (2 * p + 1) * width, i) }
        }
    }

    /// `rowSums`' lane moves: the permutes' index vectors.
    struct RowSumLanes {
        // Level 1: per 128-bit lane, one row's four sums of lanes l and l + 4.
        var low = SIMD16<Int32>(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27)
        var high = SIMD16<Int32>(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31)
        // Level 2: lanes l and l + 2 of each row's four; 128-bit lane k then holds rows k and 4 + k (or 8 + k and 12 + k).
        var first = SIMD16<Int32>(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29)
        var second = SIMD16<Int32>(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31)
        // Level 3: lanes 0 and 1; lane 4k + m holds row 4m + k.
        var even = SIMD16<Int32>(0, 2, 16, 18, 4, 6, 20, 22, 8, 10, 24, 26, 12, 14, 28, 30)
        var odd = SIMD16<Int32>(1, 3, 17, 19, 5, 7, 21, 23, 9, 11, 25, 27, 13, 15, 29, 31)
        var rows = SIMD16<Int32>(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)

        /// The same vectors read from memory the compiler cannot see into, so that it keeps `rowSums`' seven permutes: with
        /// constants it may rebuild the lane moves around how the sums are used (the decode step's attention scores, each
        /// query's eight stored alone, got a full transpose: 24 permutes for eight sums).
        static var opaque: RowSumLanes { withUnsafePointer(to: &shared) { $0.pointee } }
        nonisolated(unsafe) private static var shared = RowSumLanes()
    }

    /// The sixteen rows' sums of eight pair accumulators (rows 2j and 2j + 1 in `aj`), each `RowDot.horizontalSum` of its
    /// eight lanes: the same three levels of additions (lanes l and l + 4, then l and l + 2, then 0 and 1), done for
    /// sixteen rows at a time with lanes moved between registers instead of one row at a time. Lane i holds row i's sum.
    @inline(__always)
    static func rowSums(_ a0: SIMD16<Float>, _ a1: SIMD16<Float>, _ a2: SIMD16<Float>, _ a3: SIMD16<Float>,
                        _ a4: SIMD16<Float>, _ a5: SIMD16<Float>, _ a6: SIMD16<Float>, _ a7: SIMD16<Float>,
                        lanes l: RowSumLanes = RowSumLanes()) -> SIMD16<Float> {
        @inline(__always) func pick(_ u: SIMD16<Float>, _ v: SIMD16<Float>, _ i: SIMD16<Int32>) -> SIMD16<Float> {
            _mm512_permutex2var_ps(u, unsafeBitCast(i, to: __m512i.self), v)
        }
        let v0 = pick(a0, a1, l.low) + pick(a0, a1, l.high), v1 = pick(a2, a3, l.low) + pick(a2, a3, l.high)
        let v2 = pick(a4, a5, l.low) + pick(a4, a5, l.high), v3 = pick(a6, a7, l.low) + pick(a6, a7, l.high)
        let u0 = pick(v0, v1, l.first) + pick(v0, v1, l.second), u1 = pick(v2, v3, l.first) + pick(v2, v3, l.second)
        let s = pick(u0, u1, l.even) + pick(u0, u1, l.odd)
        return _mm512_permutexvar_ps(unsafeBitCast(l.rows, to: __m512i.self), s)
    }

    /// Three tokens (`x`, `cols` apart; with `count` below three the last repeated) over `steps` steps of the panel, their
    /// sums carried in `memory` (zero for the first chunk); the next pass's `next` tokens' lines of the chunk are asked for
    /// on the way (each token's 1 KB run is too short for the hardware prefetchers).
    @inline(__always)
    private func threeTokens(_ x: UnsafePointer<Float>, _ count: Int, cols: Int, steps: Int, sums memory: UnsafeMutablePointer<SIMD16<Float>>,
                             first: Bool, next: Int) {
        var s = first ? ThreeTokenSums() : ThreeTokenSums(memory)
        let x1 = x + min(1, count - 1) * cols, x2 = x + min(2, count - 1) * cols
        if next > 0 {
            let n0 = UnsafeRawPointer(x + 3 * cols), n1 = n0 + 4 * min(1, next - 1) * cols, n2 = n0 + 4 * min(2, next - 1) * cols
            for i in 0..<steps {
                if i % 2 == 0 { Prefetch.line(n0 + 32 * i); Prefetch.line(n1 + 32 * i); Prefetch.line(n2 + 32 * i) }
                s.addProducts(panel + 8 * i, x + 8 * i, x1 + 8 * i, x2 + 8 * i)
            }
        } else {
            for i in 0..<steps { s.addProducts(panel + 8 * i, x + 8 * i, x1 + 8 * i, x2 + 8 * i) }
        }
        s.store(memory)
    }
}

/// Sixteen rows' (eight pairs') lane sums for three tokens: token k's pair j at index 8k + j.
private struct ThreeTokenSums {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    var a4 = SIMD16<Float>(), a5 = SIMD16<Float>(), a6 = SIMD16<Float>(), a7 = SIMD16<Float>()
    var b0 = SIMD16<Float>(), b1 = SIMD16<Float>(), b2 = SIMD16<Float>(), b3 = SIMD16<Float>()
    var b4 = SIMD16<Float>(), b5 = SIMD16<Float>(), b6 = SIMD16<Float>(), b7 = SIMD16<Float>()
    var c0 = SIMD16<Float>(), c1 = SIMD16<Float>(), c2 = SIMD16<Float>(), c3 = SIMD16<Float>()
    var c4 = SIMD16<Float>(), c5 = SIMD16<Float>(), c6 = SIMD16<Float>(), c7 = SIMD16<Float>()

    init() {}

    @inline(__always) init(_ p: UnsafePointer<SIMD16<Float>>) {
        (a0, a1, a2, a3, a4, a5, a6, a7) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7])
        (b0, b1, b2, b3, b4, b5, b6, b7) = (p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15])
        (c0, c1, c2, c3, c4, c5, c6, c7) = (p[16], p[17], p[18], p[19], p[20], p[21], p[22], p[23])
    }

    @inline(__always) func store(_ p: UnsafeMutablePointer<SIMD16<Float>>) {
        p[0] = a0; p[1] = a1; p[2] = a2; p[3] = a3; p[4] = a4; p[5] = a5; p[6] = a6; p[7] = a7
        p[8] = b0; p[9] = b1; p[10] = b2; p[11] = b3; p[12] = b4; p[13] = b5; p[14] = b6; p[15] = b7
        p[16] = c0; p[17] = c1; p[18] = c2; p[19] = c3; p[20] = c4; p[21] = c5; p[22] = c6; p[23] = c7
    }

    /// Each pair's vector loaded once for the three tokens, each token's eight activations broadcast once for the eight pairs.
    @inline(__always) mutating func addProducts(_ w: UnsafePointer<SIMD16<Float>>, _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>,
                                                _ x2: UnsafePointer<Float>) {
        let u = RowDot.twice(x0, 0), v = RowDot.twice(x1, 0), t = RowDot.twice(x2, 0)
        var p = w[0]; a0 = a0.addingProduct(u, p); b0 = b0.addingProduct(v, p); c0 = c0.addingProduct(t, p)
        p = w[1]; a1 = a1.addingProduct(u, p); b1 = b1.addingProduct(v, p); c1 = c1.addingProduct(t, p)
        p = w[2]; a2 = a2.addingProduct(u, p); b2 = b2.addingProduct(v, p); c2 = c2.addingProduct(t, p)
        p = w[3]; a3 = a3.addingProduct(u, p); b3 = b3.addingProduct(v, p); c3 = c3.addingProduct(t, p)
        p = w[4]; a4 = a4.addingProduct(u, p); b4 = b4.addingProduct(v, p); c4 = c4.addingProduct(t, p)
        p = w[5]; a5 = a5.addingProduct(u, p); b5 = b5.addingProduct(v, p); c5 = c5.addingProduct(t, p)
        p = w[6]; a6 = a6.addingProduct(u, p); b6 = b6.addingProduct(v, p); c6 = c6.addingProduct(t, p)
        p = w[7]; a7 = a7.addingProduct(u, p); b7 = b7.addingProduct(v, p); c7 = c7.addingProduct(t, p)
    }
}
#endif
