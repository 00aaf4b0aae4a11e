import Foundation
import Synchronization
import XCTest
@testable import FlexServeTensor

final class KernelTests: XCTestCase {
    final class Claimed: Sendable { let count = Atomic<Int>(0) }

    /// ggml's block layouts, decoded by hand.
    func testDequantizeKnownBlocks() {
        var q8 = [UInt8](repeating: 0, count: 34)
        withUnsafeBytes(of: Float16(0.5).bitPattern) { q8[0] = $0[0]; q8[1] = $0[1] }
        for i in 0..<32 { q8[2 + i] = UInt8(bitPattern: Int8(i - 16)) }
        var q41 = [UInt8](repeating: 0, count: 20)
        withUnsafeBytes(of: Float16(2).bitPattern) { q41[0] = $0[0]; q41[1] = $0[1] }
        withUnsafeBytes(of: Float16(-1).bitPattern) { q41[2] = $0[0]; q41[3] = $0[1] }
        for i in 0..<16 { q41[4 + i] = UInt8(i) | UInt8(15 - i) << 4 }
        var out = [Float](repeating: 0, count: 32)
        q8.withUnsafeBytes { Dequantize.row(.q8_0, $0.baseAddress!, count: 32, into: &out) }
        XCTAssertEqual(out, (0..<32).map { Float($0 - 16) * 0.5 })
        q41.withUnsafeBytes { Dequantize.row(.q4_1, $0.baseAddress!, count: 32, into: &out) }
        XCTAssertEqual(Array(out[0..<16]), (0..<16).map { Float($0) * 2 - 1 })
        XCTAssertEqual(Array(out[16..<32]), (0..<16).map { Float(15 - $0) * 2 - 1 })
    }

    func testQuantizeRoundTripError() {
        var rng = SystemRandomNumberGenerator()
        let values = (0..<256).map { _ in Float.random(in: -1...1, using: &rng) }
        let bounds: [(DType, Float)] = [(.f16, 1e-3), (.bf16, 1e-2), (.q8_0, 1e-2), (.q4_0, 0.15), (.q4_1, 0.07), (.int8Group, 5e-3), (.int4Group, 0.07)]
        for (dtype, bound) in bounds {
            var packed = [UInt8](repeating: 0, count: dtype.byteCount(values: 256)!)
            var back = [Float](repeating: 0, count: 256)
            values.withUnsafeBufferPointer { src in packed.withUnsafeMutableBytes { Quantize.row(src.baseAddress!, count: 256, to: dtype, into: $0.baseAddress!) } }
            packed.withUnsafeBytes { Dequantize.row(dtype, $0.baseAddress!, count: 256, into: &back) }
            let worst = zip(values, back).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, bound, "\(dtype)")
        }
    }

    /// Every format against a plain dequantize-then-dot, and each token's result independent of
    /// how many tokens share the call (speculative verification relies on it).
    func testLinearMatchesReferenceAndIsBatchInvariant() {
        // The second shape has a row length that is no multiple of 8 and more tokens than one tile; the next three
        // take the few-token kernels (rows decoded in registers) with a partial group of tokens, and the fourth does so
        // for float rows with AVX-512 (20 tokens: 8, 8 and 4) where the block formats take the scratch; the last two take
        // `RowPanel` (sixteen rows against three tokens) with a partial block of rows and a last pass of two tokens, the last
        // over three chunks of columns (the third partial) and two token tiles, the second ending in a pass of one token.
        for (rows, cols, tokens) in [(37, 96, 11), (9, 100, 70), (37, 96, 3), (70, 64, 7), (21, 64, 13), (37, 96, 20), (37, 96, 29),
                                     (21, 544, 529)] {
            checkLinear(rows: rows, cols: cols, tokens: tokens)
        }
    }

    /// The same for fp32 activations against `InterleavedRows` (`F32Activations`): twelve tokens at a time, then the rest in
    /// one pass (nine, ten and eleven tokens here; six and the rest with AVX2), 13 to 20 tokens in two halves, a pass of up
    /// to ten tokens taking two to four blocks side by side and the blocks past the last such run one at a time (2 tokens
    /// over five blocks: four and one; 3 over five: three and two; 7 + 7 over five: two, two and one; 7 + 6 over nine; the
    /// lone token past 24 over nine blocks: four, four and one), and four groups side by side when decoding;
    /// from 24 tokens on, pairs of groups against panels, six tokens at a time, with an odd group, a partial one and the
    /// tokens left over by the sixes (the last shape spans two token tiles).
    func testInterleavedRowsWithFP32ActivationsMatchReferenceAndAreBatchInvariant() {
        for (rows, cols, tokens) in [(37, 96, 11), (70, 64, 17), (21, 160, 3), (64 * 4 + 16 * 3 + 5, 64, 9), (37, 96, 8), (70, 64, 10),
                                     (37, 96, 29), (70, 64, 150), (21, 160, 7), (21, 160, 14), (37, 288, 13), (21, 160, 2), (37, 288, 25)] {
            checkLinear(rows: rows, cols: cols, tokens: tokens, interleaved: true)
        }
    }

    func checkLinear(rows: Int, cols: Int, tokens: Int, interleaved: Bool = false) {
        let weights = (0..<(rows * cols)).map { Float(sin(Double($0) * 0.37)) }
        var x = (0..<(tokens * cols)).map { Float(cos(Double($0) * 0.11)) }
        // A row of huge and a row of tiny activations (fp32 against interleaved rows scales them by up to 2^−28: exact, or
        // subnormal with ~21 bits left for the tiny ones).
        for i in 0..<cols { x[i] *= 1e30; x[cols + i] *= 1e-30 }
        for dtype in DType.allCases where interleaved ? dtype.hasIntegerBlocks : cols % 32 == 0 || [.f32, .f16, .bf16].contains(dtype) {
            var tensor = TensorView.owned(weights, shape: [rows, cols]).converted(to: dtype)!
            if interleaved {
                tensor = tensor.withInterleavedRows(for: .f32)
                XCTAssertEqual(tensor.interleaved?.activations, .f32)
            }
            let dense = tensor.floats()
            var all = [Float](repeating: 0, count: tokens * rows)
            x.withUnsafeBufferPointer { Linear.forward(x: $0.baseAddress!, tokens: tokens, weight: tensor, out: &all) }
            for t in 0..<tokens {
                var one = [Float](repeating: 0, count: rows)
                x.withUnsafeBufferPointer { Linear.forward(x: $0.baseAddress! + t * cols, tokens: 1, weight: tensor, out: &one) }
                XCTAssertEqual(Array(all[(t * rows)..<((t + 1) * rows)]), one, "\(dtype): token \(t) depends on the batch")
                for r in 0..<rows {
                    let expected = (0..<cols).reduce(0.0) { $0 + Double(dense[r * cols + $1]) * Double(x[t * cols + $1]) }
                    let magnitude = (0..<cols).reduce(0.0) { $0 + abs(Double(dense[r * cols + $1]) * Double(x[t * cols + $1])) }
                    XCTAssertEqual(Double(one[r]), expected, accuracy: 1e-5 * magnitude, "\(dtype) row \(r) token \(t)")
                }
            }
        }
    }

    /// Projections fused into one decode dispatch (Q/K/V, gate/up) give each projection's own results bit
    /// for bit, biases included, in every packed format.
    func testFusedDecodeProjectionsMatchSeparateOnes() {
        let cols = 64, shapes = [70, 45, 3]
        let x = (0..<cols).map { Float(cos(Double($0) * 0.11)) }
        for dtype in DType.allCases {
            let weights = shapes.enumerated().map { i, rows in
                TensorView.owned((0..<(rows * cols)).map { Float(sin(Double($0 + 1000 * i) * 0.37)) }, shape: [rows, cols]).converted(to: dtype)!
            }
            let biases = shapes.map { rows in (0..<rows).map { Float($0) * 0.01 } }
            var f0 = [Float](repeating: .nan, count: shapes[0]), f1 = [Float](repeating: .nan, count: shapes[1])
            var f2 = [Float](repeating: .nan, count: shapes[2])
            biases[0].withUnsafeBufferPointer { b0 in
                f0.withUnsafeMutableBufferPointer { o0 in
                    f1.withUnsafeMutableBufferPointer { o1 in
                        f2.withUnsafeMutableBufferPointer { o2 in
                            Linear.forward(x: x, tokens: 1, projections: [
                                Linear.Projection(weight: weights[0], bias: b0.baseAddress, out: o0.baseAddress!),
                                Linear.Projection(weight: weights[1], out: o1.baseAddress!),
                                Linear.Projection(weight: weights[2], out: o2.baseAddress!),
                            ])
                        }
                    }
                }
            }
            let fused = [f0, f1, f2]
            var separate = shapes.map { [Float](repeating: .nan, count: $0) }
            for i in shapes.indices {
                biases[i].withUnsafeBufferPointer { b in
                    Linear.forward(x: x, tokens: 1, weight: weights[i], bias: i == 0 ? b.baseAddress : nil, out: &separate[i])
                }
                XCTAssertEqual(fused[i], separate[i], "\(dtype) projection \(i)")
            }
        }
    }

    /// Fused projections of a prefill's size with fp32 activations (pairs of groups within each projection, odd groups
    /// alone, a bias on the first; float formats one projection after another through `RowPanel`): every token's rows
    /// equal that token alone through its own projection, bit for bit.
    func testFusedProjectionsInPairsMatchEachTokenAlone() {
        let cols = 64, shapes = [70, 45, 3], tokens = 31
        let x = (0..<(tokens * cols)).map { Float(cos(Double($0) * 0.11)) }
        let bias = (0..<shapes[0]).map { Float($0) * 0.01 }
        for dtype in DType.allCases {
            let weights = shapes.enumerated().map { i, rows in
                TensorView.owned((0..<(rows * cols)).map { Float(sin(Double($0 + 1000 * i) * 0.37)) }, shape: [rows, cols])
                    .converted(to: dtype)!.withInterleavedRows(for: .f32)
            }
            var f0 = [Float](repeating: .nan, count: tokens * shapes[0]), f1 = [Float](repeating: .nan, count: tokens * shapes[1])
            var f2 = [Float](repeating: .nan, count: tokens * shapes[2])
            bias.withUnsafeBufferPointer { b in
                f0.withUnsafeMutableBufferPointer { o0 in
                    f1.withUnsafeMutableBufferPointer { o1 in
                        f2.withUnsafeMutableBufferPointer { o2 in
                            Linear.forward(x: x, tokens: tokens, projections: [
                                Linear.Projection(weight: weights[0], bias: b.baseAddress, out: o0.baseAddress!),
                                Linear.Projection(weight: weights[1], out: o1.baseAddress!),
                                Linear.Projection(weight: weights[2], out: o2.baseAddress!),
                            ])
                        }
                    }
                }
            }
            let outs = [f0, f1, f2]
            for (i, rows) in shapes.enumerated() {
                for t in 0..<tokens {
                    var one = [Float](repeating: .nan, count: rows)
                    x.withUnsafeBufferPointer { xs in
                        bias.withUnsafeBufferPointer { b in
                            Linear.forward(x: xs.baseAddress! + t * cols, tokens: 1, weight: weights[i], bias: i == 0 ? b.baseAddress : nil, out: &one)
                        }
                    }
                    XCTAssertEqual(Array(outs[i][(t * rows)..<((t + 1) * rows)]), one, "\(dtype) projection \(i) token \(t)")
                }
            }
        }
    }

    /// `q8` activations (ggml's Q8_0 scheme: per 32 values d = max|x|/127, q = round(x/d)) against
    /// each integer block format: equal to the exact dot of the dequantized weights with the
    /// dequantized activations up to float rounding, close to the fp32 path, and batch-invariant.
    func testQ8ActivationsMatchDequantizedReferenceAndAreBatchInvariant() {
        let (rows, cols, tokens) = (37, 160, 19)
        let weights = (0..<(rows * cols)).map { Float(sin(Double($0) * 0.37)) }
        var x = (0..<(tokens * cols)).map { Float(cos(Double($0) * 0.11)) * 3 }
        for i in 0..<32 { x[64 + i] = 0 }  // an all-zero block (scale 0)
        // The activations as the scheme defines them, in Double.
        let xq: [Double] = (0..<(tokens * cols / 32)).flatMap { b -> [Double] in
            let block = x[(b * 32)..<(b * 32 + 32)].map(Double.init)
            let d = Double(Float(block.map(abs).max()!) / 127)
            return block.map { d == 0 ? 0 : (Double(Float($0) * (1 / Float(d)))).rounded(.toNearestOrEven) * d }
        }
        for dtype in DType.allCases where dtype.hasIntegerBlocks {
            var tensor = TensorView.owned(weights, shape: [rows, cols]).converted(to: dtype)!
            let dense = tensor.floats()
            var exact = [Float](repeating: 0, count: tokens * rows)
            x.withUnsafeBufferPointer { Linear.forward(x: $0.baseAddress!, tokens: tokens, weight: tensor, out: &exact) }
            tensor = tensor.withInterleavedRows(for: .q8)
            var all = [Float](repeating: 0, count: tokens * rows)
            x.withUnsafeBufferPointer { Linear.forward(x: $0.baseAddress!, tokens: tokens, weight: tensor, out: &all) }
            // Fused with a second projection of the same input (Q/K/V, gate/up): the same bits, one token and several
            // (every width of a pass: with AVX-512 up to eight tokens in one pass (`Q8TokenTiles`), 19 as 8 + 8 + 3;
            // otherwise four at a time, then the rest in one pass).
            let second = TensorView.owned(weights.reversed(), shape: [rows, cols]).converted(to: dtype)!.withInterleavedRows(for: .q8)
            for n in [1, 2, 3, 4, 5, 6, 7, 8, tokens] {
                var a = [Float](repeating: 0, count: n * rows), b = a, alone = a
                x.withUnsafeBufferPointer { xs in
                    a.withUnsafeMutableBufferPointer { a in
                        b.withUnsafeMutableBufferPointer { b in
                            Linear.forward(x: xs.baseAddress!, tokens: n, projections: [
                                Linear.Projection(weight: tensor, out: a.baseAddress!), Linear.Projection(weight: second, out: b.baseAddress!),
                            ])
                        }
                    }
                    Linear.forward(x: xs.baseAddress!, tokens: n, weight: second, out: &alone)
                }
                XCTAssertEqual(a, Array(all[0..<(n * rows)]), "\(dtype): fused first projection, \(n) tokens")
                XCTAssertEqual(b, alone, "\(dtype): fused second projection, \(n) tokens")
            }
            // An empty batch (a drafter with nothing to draft) is a no-op.
            x.withUnsafeBufferPointer { Linear.forward(x: $0.baseAddress!, tokens: 0, weight: tensor, out: &all) }
            for t in 0..<tokens {
                var one = [Float](repeating: 0, count: rows)
                x.withUnsafeBufferPointer { Linear.forward(x: $0.baseAddress! + t * cols, tokens: 1, weight: tensor, out: &one) }
                XCTAssertEqual(Array(all[(t * rows)..<((t + 1) * rows)]), one, "\(dtype): token \(t) depends on the batch")
                for r in 0..<rows {
                    let expected = (0..<cols).reduce(0.0) { $0 + Double(dense[r * cols + $1]) * xq[t * cols + $1] }
                    let magnitude = (0..<cols).reduce(0.0) { $0 + abs(Double(dense[r * cols + $1]) * xq[t * cols + $1]) }
                    XCTAssertEqual(Double(one[r]), expected, accuracy: 1e-5 * max(1, magnitude), "\(dtype) row \(r) token \(t)")
                    // Rounding the activations to 8 bits moves a dot product by well under 1% of its magnitude.
                    XCTAssertEqual(one[r], exact[t * rows + r], accuracy: Float(0.01 * magnitude), "\(dtype) vs fp32 activations")
                }
            }
        }
    }

    /// Decoding shares a matrix of many row groups between the threads, which take pieces from each other's
    /// parts (257 groups of 16 rows, the last of 5; own pieces of 80 groups, stolen ones of 20): every row is
    /// still computed once, with the bits of the multi-token path, for both kinds of activations.
    func testInterleavedDecodeOverManyGroupsMatchesMultiTokenPath() {
        let (rows, cols, tokens) = (4101, 96, 9)
        let weights = (0..<(rows * cols)).map { Float(sin(Double($0) * 0.013)) }
        let x = (0..<(tokens * cols)).map { Float(cos(Double($0) * 0.7)) }
        for (dtype, activations) in [DType.q8_0, .q4_1].flatMap({ d in ActivationFormat.allCases.map { (d, $0) } }) {
            let tensor = TensorView.owned(weights, shape: [rows, cols]).converted(to: dtype)!.withInterleavedRows(for: activations)
            var all = [Float](repeating: 0, count: tokens * rows)
            x.withUnsafeBufferPointer { Linear.forward(x: $0.baseAddress!, tokens: tokens, weight: tensor, out: &all) }
            for _ in 0..<20 {
                for t in 0..<tokens {
                    var one = [Float](repeating: .nan, count: rows)
                    x.withUnsafeBufferPointer { Linear.forward(x: $0.baseAddress! + t * cols, tokens: 1, weight: tensor, out: &one) }
                    XCTAssertEqual(one, Array(all[(t * rows)..<((t + 1) * rows)]), "\(dtype), \(activations) activations, token \(t)")
                }
            }
        }
    }

    /// A decode thread reads four groups side by side (`fourGroups`; with q8 activations on Intel only), else one at a
    /// time (`group`): the same bits either way, with and without prefetching, in every integer block format and for
    /// both kinds of activations.
    func testFourStreamsMatchOneGroupAtATime() {
        let (rows, cols) = (64 + 16 * 3 + 5, 160)
        let weights = (0..<(rows * cols)).map { Float(sin(Double($0) * 0.029)) }
        let x = (0..<cols).map { Float(cos(Double($0) * 0.31)) * 2 }
        func compare<F: IntegerBlockFormat>(_: F.Type, _ dtype: DType) {
            let packed = TensorView.owned(weights, shape: [rows, cols]).converted(to: dtype)!.withInterleavedRows(for: .q8).interleaved!
            let scratch = OwnedBuffer(byteCount: Q8Activations.byteCount(tokens: 1, cols: cols))
            let a = Q8Activations(scratch: scratch.pointer, tokens: 1, cols: cols)
            x.withUnsafeBufferPointer { a.quantize($0.baseAddress!, token: 0) }
            let floatScratch = OwnedBuffer(byteCount: F32Activations.byteCount(tokens: 1, cols: cols))
            let f = F32Activations(scratch: floatScratch.pointer, tokens: 1, cols: cols)
            x.withUnsafeBufferPointer { f.prepare($0.baseAddress!, token: 0, F.self) }
            func check<A: GroupActivations>(_ a: A) {
                // Groups 0, 2, 5 and 7 (the last, of 5 rows), as four runs of a piece would give them.
                let picked = [0, 2, 5, packed.groups - 1]
                for prefetch in [0, 1024] {
                    let four = IntegerLinear.fourGroups(a, (group(picked[0]), group(picked[1]), group(picked[2]), group(picked[3])), F.self,
                                                        prefetch: prefetch)
                    for (i, v) in [four.0, four.1, four.2, four.3].enumerated() {
                        let one = IntegerLinear.group(a, token: 0, group(picked[i]), F.self, prefetch: prefetch)
                        XCTAssertEqual((0..<16).map { v[$0].bitPattern }, (0..<16).map { one[$0].bitPattern }, "\(dtype) \(A.self) group \(picked[i])")
                    }
                }
            }
            func group(_ g: Int) -> IntegerLinear.Group {
                let record = g * a.blocks
                return IntegerLinear.Group(integers: UnsafeRawPointer(packed.integers.pointer) + record * F.groupIntegerBytes,
                                           headers: UnsafeRawPointer(packed.headers.pointer) + record * F.groupHeaderBytes)
            }
            check(a)
            check(f)
        }
        compare(Q8_0Blocks.self, .q8_0)
        compare(Q4_0Blocks.self, .q4_0)
        compare(Q4_1Blocks.self, .q4_1)
        compare(Int8GroupBlocks.self, .int8Group)
        compare(Int4GroupBlocks.self, .int4Group)
    }

    /// In every round (a decode step's number), with no reset between rounds.
    func testStealableRangesHandOutEveryItemOnce() {
        let pool = ThreadPool(threads: 3)
        for (total, parts, piece) in [(1000, 6, 7), (5, 6, 2), (0, 2, 3), (4096, 2, 1)] {
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(1, total))
            let ranges = StealableRanges(splitting: total, into: parts)
            for round in [1, 2, 65_539] {
                hits.initialize(repeating: 0, count: max(1, total))
                let claimed = Claimed()
                // Owners take from the front of their parts while everyone takes from the backs of all parts.
                pool.parallelFor(parts) { p in
                    func take(_ r: Range<Int>) {
                        claimed.count.add(r.count, ordering: .relaxed)
                        for i in r { hits[i] = 1 }
                    }
                    while let r = ranges.takeFront(p, piece, round: round) { take(r) }
                    for v in 0..<parts { while let r = ranges.takeBack(v, piece, round: round) { take(r) } }
                }
                // Every item claimed, and no more claims than items (so none twice); the round's parts stay empty.
                XCTAssertTrue((0..<total).allSatisfy { hits[$0] == 1 }, "total \(total), parts \(parts), round \(round)")
                XCTAssertEqual(claimed.count.load(ordering: .relaxed), total)
                XCTAssertTrue((0..<parts).allSatisfy { ranges.takeFront($0, piece, round: round) == nil })
            }
            hits.deallocate()
            ranges.deallocate()
        }
    }

    func testVectorExpMatchesTheCLibrary() {
        var worst: Float = 0
        for i in 0..<20_000 {
            let x = Float(-87 + 175 * Double(i) / 20_000)
            let expected = Foundation.exp(Double(x))
            worst = max(worst, Float(abs(Double(VectorMath.exp(x)) - expected) / expected))
        }
        XCTAssertLessThan(worst, 5e-7)
        XCTAssertGreaterThan(VectorMath.exp(-1000), 0)
        XCTAssertTrue(VectorMath.exp(1000).isFinite)
    }

    func testSiluMultiplyAndAttentionMatchScalarFormulas() {
        let count = 1_000
        var gate = (0..<count).map { Float(sin(Double($0))) * 12 }
        let up = (0..<count).map { Float(cos(Double($0) * 0.3)) }
        let expected = zip(gate, up).map { g, u in Double(g) / (1 + Foundation.exp(-Double(g))) * Double(u) }
        gate.withUnsafeMutableBufferPointer { Activation.siluMultiply($0.baseAddress!, up, count: count) }
        for i in 0..<count { XCTAssertEqual(Double(gate[i]), expected[i], accuracy: 1e-6 * max(1, abs(expected[i]))) }

        // One query over 13 keys (a tail after the vector lanes), against the textbook formula.
        for headDim in [16, 64, 80] { checkAttention(headDim: headDim, n: 13) }
    }

    /// GELU (erf and tanh forms) and LayerNorm (rows with a tail after the vector lanes, with and without weight and
    /// bias) against their formulas in Double, on a pool of three threads.
    func testGELUAndLayerNormMatchScalarFormulas() {
        let pool = ThreadPool(threads: 3)
        let count = 50_003
        let inputs = (0..<count).map { Float(sin(Double($0) * 0.37)) * (12 * Float($0) / Float(count)) }
        for approximate in [false, true] {
            var x = inputs
            x.withUnsafeMutableBufferPointer { Activation.gelu($0.baseAddress!, count: count, approximate: approximate, pool: pool) }
            for i in 0..<count {
                let v = Double(inputs[i])
                let expected = approximate ? 0.5 * v * (1 + Foundation.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
                    : 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot()))
                XCTAssertEqual(Double(x[i]), expected, accuracy: 1e-6 * max(1, abs(expected)), "x = \(v), approximate: \(approximate)")
            }
        }
        for dim in [37, 64] {
            let rows = 5
            let x = (0..<(rows * dim)).map { Float(cos(Double($0) * 0.11)) * 3 + 0.5 }
            let weight = (0..<dim).map { 0.5 + Float($0) / Float(dim) }, bias = (0..<dim).map { Float($0 % 5) * 0.1 - 0.2 }
            for affine in [false, true] {
                var out = [Float](repeating: 0, count: rows * dim)
                if affine {
                    Normalization.layer(x, rows: rows, dim: dim, weight: weight, bias: bias, eps: 1e-5, out: &out, pool: pool)
                } else {
                    Normalization.layer(x, rows: rows, dim: dim, weight: nil, bias: nil, eps: 1e-5, out: &out, pool: pool)
                }
                for r in 0..<rows {
                    let row = x[r * dim..<(r + 1) * dim].map(Double.init)
                    let mean = row.reduce(0, +) / Double(dim)
                    let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(dim)
                    for i in 0..<dim {
                        let normed = (row[i] - mean) / (variance + 1e-5).squareRoot()
                        let expected = affine ? normed * Double(weight[i]) + Double(bias[i]) : normed
                        XCTAssertEqual(Double(out[r * dim + i]), expected, accuracy: 1e-5, "dim \(dim), row \(r), column \(i)")
                    }
                }
            }
        }
    }

    func checkAttention(headDim: Int, n: Int) {
        let q = (0..<headDim).map { Float(sin(Double($0) + 1)) }
        var keys = (0..<(n * headDim)).map { Float(cos(Double($0) * 0.7)) }
        var values = (0..<(n * headDim)).map { Float(sin(Double($0) * 0.2)) }
        let slots = (0..<n).map { Int32(n - 1 - $0) }, starts: [Int32] = [0, Int32(n)]
        var out = [Float](repeating: 0, count: headDim)
        keys.withUnsafeMutableBufferPointer { k in
            values.withUnsafeMutableBufferPointer { v in
                Attention.forward(q: q, tokens: 1, numHeads: 1, numKVHeads: 1, headDim: headDim,
                                  kv: KVStore(keys: k.baseAddress!, values: v.baseAddress!, layout: .interleaved(kvHeads: 1, headDim: headDim)),
                                  slotStart: starts, slots: slots, scale: 0.25, out: &out)
            }
        }
        let scores = (0..<n).map { j in 0.25 * (0..<headDim).reduce(0.0) { $0 + Double(q[$1] * keys[j * headDim + $1]) } }
        let weights = scores.map { Foundation.exp($0 - scores.max()!) }
        for d in 0..<headDim {
            let reference = (0..<n).reduce(0.0) { $0 + weights[$1] * Double(values[$1 * headDim + d]) } / weights.reduce(0, +)
            XCTAssertEqual(Double(out[d]), reference, accuracy: 1e-5)
        }
    }

    /// Grouped-query attention reading scattered slots, with the cache token-major and head-major (`KVLayout`):
    /// the textbook formula per head, and the same bits either way; with an fp16 cache, the formula over the
    /// keys and values rounded to fp16.
    func testGroupedAttentionInBothKVLayoutsAndTypes() {
        checkGroupedAttention(heads: 9, kvHeads: 3, keys: 37, capacity: 48)
        // One KV head over 300 keys: fewer sets than threads, so decoding splits keys, heads and columns over the threads.
        checkGroupedAttention(heads: 3, kvHeads: 1, keys: 300, capacity: 320)
        // Three heads' weighted values 64 columns at a time, then 32 (a shared set's half in the decode step takes those
        // alone); the tiles and the decode step are checked against this path, so it is checked against the formula.
        checkGroupedAttention(heads: 9, kvHeads: 3, keys: 37, capacity: 48, headDim: 96)
        checkGroupedAttention(heads: 9, kvHeads: 3, keys: 37, capacity: 48, headDim: 32)
    }

    func checkGroupedAttention(heads: Int, kvHeads: Int, keys n: Int, capacity: Int, headDim: Int = 64) {
        let slots: [Int32] = (0..<n).map { Int32(($0 * 7 + 3) % capacity) }
        func key(_ s: Int, _ h: Int, _ d: Int) -> Float { Float(cos(Double(s * 131 + h * 17 + d) * 0.37)) }
        func value(_ s: Int, _ h: Int, _ d: Int) -> Float { Float(sin(Double(s * 71 + h * 29 + d) * 0.23)) }
        let q = (0..<(heads * headDim)).map { Float(sin(Double($0) * 0.11 + 1)) }
        var outputs: [[Float]] = []
        let stores: [(KVLayout, KVCacheType)] = [(.interleaved(kvHeads: kvHeads, headDim: headDim), .f32),
                                                 (.planar(slots: capacity, headDim: headDim), .f32),
                                                 (.planar(slots: capacity, headDim: headDim), .f16)]
        for (layout, type) in stores {
            let bytes = capacity * kvHeads * headDim * type.bytes
            let keys = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64), values = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            defer { keys.deallocate(); values.deallocate() }
            keys.initializeMemory(as: UInt8.self, repeating: 0xFF, count: bytes)  // NaN in either type
            values.initializeMemory(as: UInt8.self, repeating: 0xFF, count: bytes)
            let store = KVStore(keys: keys, values: values, type: type, layout: layout)
            for s in slots.map(Int.init) {
                for h in 0..<kvHeads {
                    store.write(slot: s, head: h, key: (0..<headDim).map { key(s, h, $0) }, value: (0..<headDim).map { value(s, h, $0) }, headDim: headDim)
                }
            }
            var out = [Float](repeating: 0, count: heads * headDim)
            Attention.forward(q: q, tokens: 1, numHeads: heads, numKVHeads: kvHeads, headDim: headDim, kv: store,
                              slotStart: [0, Int32(n)], slots: slots, scale: 0.125, out: &out)
            outputs.append(out)
        }
        XCTAssertEqual(outputs[0], outputs[1])
        XCTAssertNotEqual(outputs[1], outputs[2])
        for (output, rounded) in [(outputs[1], false), (outputs[2], true)] {
            func k(_ s: Int, _ h: Int, _ d: Int) -> Double { rounded ? Double(Float16(key(s, h, d))) : Double(key(s, h, d)) }
            func v(_ s: Int, _ h: Int, _ d: Int) -> Double { rounded ? Double(Float16(value(s, h, d))) : Double(value(s, h, d)) }
            for head in 0..<heads {
                let h = head / (heads / kvHeads)
                let scores = slots.map { s in
                    0.125 * (0..<headDim).reduce(0.0) { $0 + Double(q[head * headDim + $1]) * k(Int(s), h, $1) }
                }
                let weights = scores.map { Foundation.exp($0 - scores.max()!) }, total = weights.reduce(0, +)
                for d in 0..<headDim {
                    let reference = zip(weights, slots).reduce(0.0) { $0 + $1.0 * v(Int($1.1), h, d) } / total
                    XCTAssertEqual(Double(output[head * headDim + d]), reference, accuracy: 1e-5,
                                   "\(n) keys, head dimension \(headDim), fp16 \(rounded): head \(head) column \(d)")
                }
            }
        }
    }

    /// Runs of eight tokens or more whose visible slots extend one another (a prefill, a chain of drafts) take the tile kernels
    /// (`AttentionTiles`): each token's output must equal that token attended alone, bit for bit, for any batch.
    /// Two sequences' causal runs (156 tokens: nine tiles of 16 and one of 12, in pairs with AVX-512; then 9), a tree's
    /// siblings, the cache's unused slots NaN; query heads per KV head 3, 1 and 8; head dimensions 64 and 128; fp32 and
    /// fp16 caches. Against the textbook formula too.
    /// With ALiBi (MPT, falcon-rw) too: each score gets its head's slope times (key − query position).
    func testTokenTilesMatchEachTokenAloneBitForBit() {
        for (heads, kvHeads, headDim, type, alibi) in [(9, 3, 64, KVCacheType.f32, false), (4, 4, 128, .f32, false), (8, 1, 64, .f16, false),
                                                       (4, 4, 64, .f32, true), (6, 2, 64, .f16, true)] {
            let capacity = 224
            // Sequence A: slots 5, 6, ... in order (past 64 keys, `valueBlock`, and again past 128; nine tiles of 16 and
            // one of 12, in pairs); sequence B: scattered slots; then two siblings after B's first 4.
            let a = (0..<156).map { Int32(5 + $0) }, b = (0..<9).map { Int32(($0 * 11 + 50) % capacity) }
            var lists: [[Int32]] = (1...156).map { Array(a[..<$0]) } + (1...9).map { Array(b[..<$0]) }
            lists += [Array(b[..<4]) + [Int32(190)], Array(b[..<4]) + [Int32(191)]]
            let tokens = lists.count
            let starts = lists.reduce(into: [Int32(0)]) { $0.append($0.last! + Int32($1.count)) }, slots = lists.flatMap { $0 }
            // Every list is a sequence's keys at positions 0, 1, ...; its token is at the last.
            let slotPositions = lists.flatMap { (0..<Int32($0.count)).map { $0 } }, queryPositions = lists.map { Int32($0.count - 1) }
            let slopes: [Float]? = alibi ? (0..<heads).map { 0.5 / Float(1 << $0) + 0.01 } : nil
            let layout = KVLayout.planar(slots: capacity, headDim: headDim)
            let bytes = capacity * kvHeads * headDim * type.bytes
            let keys = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64), values = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            defer { keys.deallocate(); values.deallocate() }
            keys.initializeMemory(as: UInt8.self, repeating: 0xFF, count: bytes)
            values.initializeMemory(as: UInt8.self, repeating: 0xFF, count: bytes)
            let store = KVStore(keys: keys, values: values, type: type, layout: layout)
            func key(_ s: Int, _ h: Int, _ d: Int) -> Float { Float(cos(Double(s * 131 + h * 17 + d) * 0.37)) * 3 }
            func value(_ s: Int, _ h: Int, _ d: Int) -> Float { Float(sin(Double(s * 71 + h * 29 + d) * 0.23)) }
            for s in Set(slots).map(Int.init) {
                for h in 0..<kvHeads {
                    store.write(slot: s, head: h, key: (0..<headDim).map { key(s, h, $0) }, value: (0..<headDim).map { value(s, h, $0) }, headDim: headDim)
                }
            }
            let width = heads * headDim
            let q = (0..<(tokens * width)).map { Float(sin(Double($0) * 0.11 + 1)) }
            var batched = [Float](repeating: 0, count: tokens * width)
            func attend(_ q: [Float], _ tokens: Int, _ starts: [Int32], _ slots: [Int32], _ queryPositions: [Int32],
                        _ slotPositions: [Int32], _ out: inout [Float]) {
                if let slopes {
                    Attention.forward(q: q, tokens: tokens, numHeads: heads, numKVHeads: kvHeads, headDim: headDim, kv: store,
                                      slotStart: starts, slots: slots, scale: 0.125, out: &out, alibiSlopes: slopes,
                                      queryPositions: queryPositions, slotPositions: slotPositions)
                } else {
                    Attention.forward(q: q, tokens: tokens, numHeads: heads, numKVHeads: kvHeads, headDim: headDim, kv: store,
                                      slotStart: starts, slots: slots, scale: 0.125, out: &out)
                }
            }
            attend(q, tokens, starts, slots, queryPositions, slotPositions, &batched)
            for t in 0..<tokens {
                var alone = [Float](repeating: 0, count: width)
                attend(Array(q[t * width..<(t + 1) * width]), 1, [0, Int32(lists[t].count)], lists[t], [queryPositions[t]],
                       (0..<Int32(lists[t].count)).map { $0 }, &alone)
                XCTAssertEqual(Array(batched[t * width..<(t + 1) * width]), alone,
                               "\(heads)/\(kvHeads) heads, \(headDim), \(type), ALiBi \(alibi): token \(t)")
                for head in [0, heads - 1] {
                    func rounded(_ x: Float) -> Double { type == .f16 ? Double(Float16(x)) : Double(x) }
                    let h = head / (heads / kvHeads)
                    let scores = lists[t].enumerated().map { position, s in
                        0.125 * (0..<headDim).reduce(0.0) { $0 + Double(q[t * width + head * headDim + $1]) * rounded(key(Int(s), h, $1)) }
                            + Double(slopes?[head] ?? 0) * Double(position - lists[t].count + 1)
                    }
                    let weights = scores.map { Foundation.exp($0 - scores.max()!) }, total = weights.reduce(0, +)
                    for d in stride(from: 0, to: headDim, by: 7) {
                        let reference = zip(weights, lists[t]).reduce(0.0) { $0 + $1.0 * rounded(value(Int($1.1), h, d)) } / total
                        XCTAssertEqual(Double(batched[t * width + head * headDim + d]), reference, accuracy: 1e-5)
                    }
                }
            }
        }
    }

    /// Phases in one region: every task of a phase runs once, after all of every phase before (an empty one too); threads with no task
    /// left call `whileWaiting` (here until the phase is done), and the thread index each task gets is in range.
    func testRunPhasesKeepsPhasesInOrder() {
        let pool = ThreadPool(threads: 3)
        let counts = [1, 5, 0, 2, 64, 1]
        let starts = counts.reduce(into: [0]) { $0.append($0.last! + $1) }
        let hits = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: starts.last!)
        for i in 0..<starts.last! { (hits + i).initialize(to: Atomic(0)) }
        let finished = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: counts.count)
        for p in counts.indices { (finished + p).initialize(to: Atomic(0)) }
        let misordered = Atomic<Int>(0), badThread = Atomic<Int>(0)
        for _ in 0..<20 {
            for i in 0..<starts.last! { hits[i].store(0, ordering: .relaxed) }
            for p in counts.indices { finished[p].store(0, ordering: .relaxed) }
            pool.runPhases(counts, { phase, task, thread in
                if (0..<phase).contains(where: { finished[$0].load(ordering: .acquiring) < counts[$0] }) { misordered.add(1, ordering: .relaxed) }
                if !(0..<3).contains(thread) { badThread.add(1, ordering: .relaxed) }
                hits[starts[phase] + task].add(1, ordering: .relaxed)
                if counts[phase] == 1 { usleep(300) }  // a lone task the other threads must wait for
                finished[phase].add(1, ordering: .releasing)
            }, whileWaiting: { _, thread in
                if !(0..<3).contains(thread) { badThread.add(1, ordering: .relaxed) }
                return true
            })
            XCTAssertTrue((0..<starts.last!).allSatisfy { hits[$0].load(ordering: .relaxed) == 1 })
        }
        XCTAssertEqual(misordered.load(ordering: .relaxed), 0)
        XCTAssertEqual(badThread.load(ordering: .relaxed), 0)
        hits.deinitialize(count: starts.last!); hits.deallocate()
        finished.deinitialize(count: counts.count); finished.deallocate()
    }

    /// Shares in one region: every share of every phase runs once, after all of every phase before, on pools with fewer,
    /// as many and more threads than shares (a thread then runs the shares no thread owns, or a late thread's).
    func testRunSharesKeepsPhasesInOrder() {
        let phases = 6
        for (threads, shares) in [(3, 2), (2, 2), (2, 5), (1, 3)] {
            let pool = ThreadPool(threads: threads)
            let hits = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: phases * shares)
            for i in 0..<(phases * shares) { (hits + i).initialize(to: Atomic(0)) }
            let finished = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: phases)
            for p in 0..<phases { (finished + p).initialize(to: Atomic(0)) }
            let misordered = Atomic<Int>(0)
            for _ in 0..<20 {
                for i in 0..<(phases * shares) { hits[i].store(0, ordering: .relaxed) }
                for p in 0..<phases { finished[p].store(0, ordering: .relaxed) }
                pool.runShares(phases: phases, shares: shares) { phase, share in
                    if (0..<phase).contains(where: { finished[$0].load(ordering: .acquiring) < shares }) { misordered.add(1, ordering: .relaxed) }
                    hits[phase * shares + share].add(1, ordering: .relaxed)
                    if share == phase % shares { usleep(200) }  // a slow share the others must wait for
                    finished[phase].add(1, ordering: .releasing)
                }
                XCTAssertTrue((0..<(phases * shares)).allSatisfy { hits[$0].load(ordering: .relaxed) == 1 }, "\(threads) threads, \(shares) shares")
            }
            XCTAssertEqual(misordered.load(ordering: .relaxed), 0, "\(threads) threads, \(shares) shares")
            hits.deinitialize(count: phases * shares); hits.deallocate()
            finished.deinitialize(count: phases); finished.deallocate()
        }
    }

    func testThreadPoolRunsEveryIndexOnce() {
        let pool = ThreadPool(threads: 3)
        for count in [1, 2, 7, 100, 1000] {
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
            hits.initialize(repeating: 0, count: count)
            for _ in 0..<50 { pool.parallelFor(count) { hits[$0] += 1 } }
            XCTAssertTrue((0..<count).allSatisfy { hits[$0] == 50 }, "count \(count)")
            hits.deallocate()
        }
    }
}
