/// `Linear` for a weight in `InterleavedRows`: each token's activations are prepared once, quantized
/// (`Q8Activations`, `q8` activations) or put in the kernel's order (`F32Activations`, fp32 ones), then every
/// group of sixteen rows and token takes, over the blocks in order,
///
///     sums    += dot · d        (a lane per row, one fused multiply-add; with q8 activations dot = Float(Σ u·x_q), d·a)
///     offsets += c · Σx         (fused; fp32 activations add it into `sums` too)
///     out      = sums + offsets (+ bias)
///
/// (`GroupActivations`) whatever the number of tokens, so decoding and tree verification agree bit for bit here too.
enum IntegerLinear {
    /// Several projections of the same activations (Q, K and V; gate and up): the activations are
    /// quantized once and all rows are shared out in one dispatch.
    static func forward(x: UnsafePointer<Float>, tokens: Int, projections: [Linear.Projection], pool: ThreadPool) {
        guard tokens > 0 else { return }
        switch projections[0].weight.dtype {
        case .q8_0: forward(Q8_0Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .q4_0: forward(Q4_0Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .q4_1: forward(Q4_1Blocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .int8Group: forward(Int8GroupBlocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case .int4Group: forward(Int4GroupBlocks.self, x: x, tokens: tokens, projections: projections, pool: pool)
        case let dtype: preconditionFailure("\(dtype) has no integer blocks")
        }
    }

    /// Tokens that go past a group while its blocks stay in L1.
    static let tokenTile = 128

    /// One projection's groups as a range of the groups of all.
    struct Segment {
        let groups: Range<Int>
        let rows: Int
        let integers: UnsafeRawPointer, headers: UnsafeRawPointer
        let bias: UnsafePointer<Float>?
        var out: UnsafeMutablePointer<Float>

        /// Local group `g`'s records.
        @inline(__always) func group<F: IntegerBlockFormat>(_ g: Int, _: F.Type, blocks: Int) -> Group {
            let record = g * blocks
            return Group(integers: integers + record * F.groupIntegerBytes, headers: headers + record * F.groupHeaderBytes)
        }

        /// Stores the results of local group `g` (rows 16g..<16g+16 that exist) for token t.
        @inline(__always) func store(_ v: SIMD16<Float>, group g: Int, token t: Int) {
            let o = out + t * rows + groupRows * g
            let n = min(groupRows, rows - groupRows * g)
            if let bias {
                let b = bias + groupRows * g
                for k in 0..<n { o[k] = v[k] + b[k] }
            } else if n == groupRows {
                UnsafeMutableRawPointer(o).storeBytes(of: v, as: SIMD16<Float>.self)
            } else {
                for k in 0..<n { o[k] = v[k] }
            }
        }
    }

    /// Where one group's records start.
    struct Group {
        let integers: UnsafeRawPointer, headers: UnsafeRawPointer
    }

    static func forward<F: IntegerBlockFormat>(_: F.Type, x: UnsafePointer<Float>, tokens: Int, projections: [Linear.Projection],
                                               pool: ThreadPool) {
        let cols = projections[0].weight.shape.last!, activations = projections[0].weight.interleaved!.activations
        var segments: [Segment] = []
        var first = 0
        for p in projections {
            let packed = p.weight.interleaved!
            segments.append(Segment(groups: first..<(first + packed.groups), rows: packed.rows,
                                    integers: UnsafeRawPointer(packed.integers.pointer), headers: UnsafeRawPointer(packed.headers.pointer),
                                    bias: p.bias, out: p.out))
            first += packed.groups
        }
        @inline(__always) func prepareEach(_ prepare: (Int) -> Void) {
            if tokens >= 16 {
                pool.parallelChunks(tokens, minChunk: 8) { range in for t in range { prepare(t) } }
            } else {
                for t in 0..<tokens { prepare(t) }
            }
        }
        if activations == .f32 {
            withUnsafeTemporaryAllocation(byteCount: F32Activations.byteCount(tokens: tokens, cols: cols), alignment: 64) { scratch in
                let a = F32Activations(scratch: scratch.baseAddress!, tokens: tokens, cols: cols)
                prepareEach { t in a.prepare(x + t * cols, token: t, F.self) }
                segments.withUnsafeBufferPointer { segments in
                    if tokens == 1 {
                        decode(F.self, a, segments, totalGroups: first, pool: pool)
                    } else {
                        forward(F.self, a, tokens: tokens, segments, totalGroups: first, pool: pool)
                    }
                }
            }
            return
        }
        withUnsafeTemporaryAllocation(byteCount: Q8Activations.byteCount(tokens: tokens, cols: cols), alignment: 64) { scratch in
            let a = Q8Activations(scratch: scratch.baseAddress!, tokens: tokens, cols: cols)
            prepareEach { t in a.quantize(x + t * cols, token: t) }
            segments.withUnsafeBufferPointer { segments in
                if tokens == 1 {
                    decode(F.self, a, segments, totalGroups: first, pool: pool)
                } else {
                    forward(F.self, a, tokens: tokens, segments, totalGroups: first, pool: pool)
                }
            }
        }
    }

    /// Calls `body(segment, local group range)` for the parts of `range` (global groups) in each segment.
    @inline(__always)
    static func forEachPart(of range: Range<Int>, in segments: UnsafeBufferPointer<Segment>, _ body: (Segment, Range<Int>) -> Void) {
        for s in segments where s.groups.overlaps(range) {
            body(s, (max(range.lowerBound, s.groups.lowerBound) - s.groups.lowerBound)..<(min(range.upperBound, s.groups.upperBound) - s.groups.lowerBound))
        }
    }

    /// One token. Each thread owns a part of the groups (of all projections together) and streams it in
    /// order, taking pieces of `decodePieceBytes.own` from its front; when done it takes pieces of
    /// `decodePieceBytes.stolen` from the backs of the other threads' parts (`StealableRanges`), so a core
    /// slowed by a neighbour does not hold up the step (with one fixed task per thread the threads finished 1–2 ms apart per SmolLM2 token; with
    /// stealing 0.1–0.2 ms). One stream per thread (a 160 MB Q8_0 matrix streamed at 96–98% of the read
    /// probe with the threads in one core complex and 79–85% with them in two, against 83% and 61–70% for two
    /// streams per thread prefetched 256 bytes ahead, interleaved in one process), asking for lines
    /// as `decodeStreamPrefetch` says; each piece as four streams where the activations ask for them (`GroupActivations.decodeStreams`).
    static func decode<F: IntegerBlockFormat, A: GroupActivations>(_: F.Type, _ a: A, _ segments: UnsafeBufferPointer<Segment>,
                                              totalGroups: Int, pool: ThreadPool) {
        let threads = decodeThreads(totalGroups: totalGroups, pool: pool)
        let pieces = decodePieces(F.self, a)
        let parts = StealableRanges(splitting: totalGroups, into: threads)
        defer { parts.deallocate() }
        pool.parallelFor(threads) { t in decodeSlot(F.self, t, a, segments, parts: parts, pieces: pieces) }
    }

    /// At least 64 rows a thread.
    static func decodeThreads(totalGroups: Int, pool: ThreadPool) -> Int { min(pool.threadCount, max(1, totalGroups / 4)) }

    /// `decodePieceBytes` in groups.
    static func decodePieces<F: IntegerBlockFormat, A: GroupActivations>(_: F.Type, _ a: A) -> (own: Int, stolen: Int) {
        pieces(F.self, blocks: a.blocks, streams: A.decodeStreams)
    }

    /// `decodePieceBytes(streams:)` in groups of `blocks` blocks.
    static func pieces<F: IntegerBlockFormat>(_: F.Type, blocks: Int, streams: Int) -> (own: Int, stolen: Int) {
        let groupBytes = blocks * (F.groupIntegerBytes + F.groupHeaderBytes), bytes = decodePieceBytes(streams: streams)
        return (max(1, bytes.own / groupBytes), max(1, bytes.stolen / groupBytes))
    }

    /// Thread slot `t`'s groups: part t in pieces from its front, then pieces from the backs of the others.
    @inline(__always)
    static func takeShare(_ t: Int, parts: StealableRanges, pieces: (own: Int, stolen: Int), round: Int = 0, _ run: (Range<Int>) -> Void) {
        while let own = parts.takeFront(t, pieces.own, round: round) { run(own) }
        for victim in 1..<parts.parts {
            let part = (t + victim) % parts.parts
            while let stolen = parts.takeBack(part, pieces.stolen, round: round) { run(stolen) }
        }
    }

    /// Thread slot `t`'s share of a decode: part t from its front, then pieces from the backs of the others.
    @inline(__always)
    static func decodeSlot<F: IntegerBlockFormat, A: GroupActivations>(_: F.Type, _ t: Int, _ a: A, _ segments: UnsafeBufferPointer<Segment>,
                                                  parts: StealableRanges, pieces: (own: Int, stolen: Int), round: Int = 0) {
        @inline(__always) func run(_ groups: Range<Int>) {
            var rest = groups
            if A.decodeStreams == 4, groups.count >= 4 {
                // Four equal runs of the piece, their groups taken side by side; what is left over after them alone.
                let run = groups.count / 4, prefetch = streamPrefetchBytes(F.self)
                for i in 0..<run {
                    let g = groups.lowerBound + i
                    let (s0, l0) = locate(g, segments), (s1, l1) = locate(g + run, segments)
                    let (s2, l2) = locate(g + 2 * run, segments), (s3, l3) = locate(g + 3 * run, segments)
                    let v = fourGroups(a, (s0.group(l0, F.self, blocks: a.blocks), s1.group(l1, F.self, blocks: a.blocks),
                                           s2.group(l2, F.self, blocks: a.blocks), s3.group(l3, F.self, blocks: a.blocks)),
                                       F.self, prefetch: prefetch)
                    s0.store(v.0, group: l0, token: 0); s1.store(v.1, group: l1, token: 0)
                    s2.store(v.2, group: l2, token: 0); s3.store(v.3, group: l3, token: 0)
                }
                rest = (groups.lowerBound + 4 * run)..<groups.upperBound
            }
            let stream = decodeStreamPrefetch(F.self)
            for g in rest {
                let (s, local) = locate(g, segments)
                s.store(group(a, token: 0, s.group(local, F.self, blocks: a.blocks), F.self, prefetch: stream.bytes,
                              nonTemporal: stream.nonTemporal), group: local, token: 0)
            }
        }
        takeShare(t, parts: parts, pieces: pieces, round: round, run)
    }

    /// Asks for the lines of the `chunk`th group slot `t` reads once the decode starts, in the order its streams
    /// reach them; false past the first `warmGroupsPerStream` of each stream of its first piece. For a thread
    /// waiting for the phases before the decode (`TokenProjection.warm`), so it starts from the cache.
    @inline(__always)
    static func warm<F: IntegerBlockFormat, A: GroupActivations>(_: F.Type, _: A.Type, slot t: Int, chunk k: Int, blocks: Int,
                                                                 _ segments: UnsafeBufferPointer<Segment>, parts: StealableRanges,
                                                                 pieces: (own: Int, stolen: Int)) -> Bool {
        let part = parts.part(t)
        let piece = part.lowerBound..<min(part.upperBound, part.lowerBound + pieces.own)
        let streams = A.decodeStreams == 4 && piece.count >= 4 ? 4 : 1
        let run = piece.count / streams, i = k % streams, j = k / streams
        guard j < min(run, warmGroupsPerStream) else { return false }
        let (s, local) = locate(piece.lowerBound + i * run + j, segments)
        let w = s.group(local, F.self, blocks: blocks)
        for line in stride(from: 0, to: blocks * F.groupIntegerBytes, by: 64) { Prefetch.line(w.integers + line) }
        for line in stride(from: 0, to: blocks * F.groupHeaderBytes, by: 64) { Prefetch.line(w.headers + line) }
        return true
    }

    /// How many groups of each stream `warm` asks for (8: 184 KB of a SmolLM2 projection's Q4_1 records over four
    /// streams, more than a waiting thread reaches in most pauses). In interleaved 8-token segments of SmolLM2 decoding
    /// (q8 activations) on the Sapphire Rapids host, against no warming: Q4_1 +4.0% (16 of 24 pairs, into L2) and +2.2%
    /// (17 of 24, prefetcht0), int4 +5.8% (18 of 24), Q8_0 unchanged (16 of 24); 2 and 4 groups +5.6% and +3.6%, 16
    /// +1.0% (16 pairs). prefetcht0 against prefetcht1 (into L2) +3.9% (14 of 24), prefetcht2 against prefetcht1
    /// +1.2%. Warming the next layer's KV rows the same way gained nothing (+0.4%, 9 of 24).
    static let warmGroupsPerStream = 8

    /// Bytes of a decode piece an owner takes from its part, and one a thread that is done takes from another's.
    /// A stolen piece is about two microseconds of one stream, the most a thread is left waiting at the join
    /// once all own pieces are taken (with the four-row kernels, 32 KB pieces decoded 1.3–5.2% faster than
    /// 16 KB and 0.8–2.5% faster than 64 KB). An owner's pieces are larger: each take is an atomic exchange on
    /// a cache line the other thread also writes, ~165 ns away with the threads in two core complexes. In
    /// interleaved 8-token segments of SmolLM2 decoding (q8 activations, contexts 16–80), 128 KB own pieces
    /// against 32 KB: with the threads apart Q8_0 4.7% and Q4_1 4.1% faster (237 and 235 of 298 segment pairs;
    /// 256 KB: Q8_0 5.6%), with them together Q4_1 1.5% slower (0.5% at 256 KB), Q8_0 unchanged at 64 KB.
    /// With four streams (`decodeStreams`) a piece is cut in four, and longer own pieces stream better: on the
    /// Sapphire Rapids host 256 KB against 128 KB Q8_0 +4.0%, Q4_1 +3.6% (13 and 10 of 16 pairs); 512 KB and 2 MB
    /// the same as 256 KB (20 pairs), 64 KB −9%.
    static func decodePieceBytes(streams: Int) -> (own: Int, stolen: Int) { (own: (streams == 4 ? 256 : 128) << 10, stolen: 32 << 10) }

    /// Weight streams a decode thread reads side by side with `q8` activations: 4 on Intel, 1 elsewhere. On the Sapphire Rapids host one
    /// stream per thread reads about 21 GB/s of the 24–29 the probe's four-stream passes reach (likely because its L2
    /// streamer stops at each 4 KB page and a core's software prefetches are bounded by its fill buffers). Four streams (each piece cut into four
    /// equal runs, their groups decoded together, `fourGroups`), against one, in interleaved 8-token segments of
    /// SmolLM2 decoding (q8 activations): Q8_0 +9.6% (20 of 20 pairs), Q4_1 +10.2% (17 of 20), the stored model +9.9%
    /// (19 of 20); two streams gained 6–9%. On Zen 5 one stream read 96–98% of the probe with the threads in one core
    /// complex; four were not measured there.
    static let decodeStreams = CPUVendor.isIntel ? 4 : 1

    /// How far ahead each of four streams asks for its lines: 4 KB for 8-bit records, 1 KB for 4-bit ones, half as long.
    /// On the Sapphire Rapids host against 4 KB for all: int4 +6% (15 of 16 pairs), Q4_1 +6%, Q4_0 +1%; 8-bit ones with
    /// 1 KB −2 to −9%.
    @inline(__always)
    static func streamPrefetchBytes<F: IntegerBlockFormat>(_: F.Type) -> Int { F.groupIntegerBytes >= 512 ? 4096 : 1024 }

    /// How far ahead of a decode's integer records (headers in proportion) the kernel asks for cache lines:
    /// the hardware prefetchers alone fall behind the memory a core can reach. In interleaved 8-token
    /// segments of SmolLM2 decoding (q8 activations), against no software prefetch, on Zen 5: Q4_1 +8–14%
    /// with the threads in one core complex and +21–26% in two, Q4_0 +11–15% and +10–18%, int4 +7–14%, int8
    /// +9% and +15%; Q8_0, the lightest kernel, 0.98–1.03 in eleven of thirteen comparisons. On a Sapphire
    /// Rapids host, whose L2 streamer stops at each 4 KB page, Q8_0 +15% (19 of 20 pairs; 1 KB +7%, 2 KB
    /// +15%, 3 and 6 KB within 5% of 4). 2 KB gained less on Zen 5, 5–6 KB about the same, 8 KB and into L2 only
    /// less (on Sapphire Rapids too: Q8_0 and Q4_1 −3 to −4% into L2, Q4_1 −2 to −6% at 1, 2, 6 or 8 KB).
    static let decodePrefetchBytes = 4096

    /// How a decode thread's single stream (`decodeSlot`) asks for format F's lines: `decodePrefetchBytes` ahead into
    /// every level (6 KB for 4-bit records, below); with AVX2 (measured on the Zen 3 host only) 2 KB ahead with the
    /// non-temporal hint. There, q8 activations, `bench throughput` with the settings alternated (twelve rounds,
    /// 10:55–11:10 UTC 2026-12-04), of the concurrent reads: with the threads in two core complexes Q8_0 75–78% against
    /// 62–67% and Q4_1 72–73% against 66–74%; in one Q8_0 84–89% against 81–87% and Q4_1 81–90% against 80–88%. 4 KB
    /// with the hint and 4 KB into L2 only (`prefetcht1`) fell between (two core complexes: 70–73%); no software
    /// prefetch was lowest (62–65%).
    ///
    /// With AVX-512, 4-bit records are asked for 6 KB ahead. `bench throughput` rounds alternating 4, 5 and 6 KB in one
    /// build (Zen 5, 2026-12-05 12:29–12:52, three runs of 16–24 rounds, q8 activations, of the concurrent reads): Q4_1
    /// with the threads in two core complexes 0.643 / 0.648 / 0.641 at 4 KB against 0.694 / 0.682 / 0.697 at 6 KB, in one
    /// 0.899 / 0.892 / 0.877 against 0.899 / 0.900 / 0.879; against the build before it (16 rounds, 12:54–13:00) Q4_1 0.686
    /// → 0.695 and 0.887 → 0.878, Q4_0 0.652 → 0.672 and 0.858 → 0.873, int4 0.721 → 0.738 and 0.872 → 0.872, and once
    /// more (24 rounds, 13:57–14:03) Q4_1 0.655 → 0.660 and 0.830 → 0.833: build against build, where two builds of the
    /// same code differ by 2–3 points apart, the gain is small. Q8_0 at 6 KB gained less apart (+0.1 to +3.6 points)
    /// than it lost together (−1.5 to −2.2), so it keeps 4 KB.
    @inline(__always)
    static func decodeStreamPrefetch<F: IntegerBlockFormat>(_: F.Type) -> (bytes: Int, nonTemporal: Bool) {
        #if FLEXSERVE_AVX2
        (bytes: 2048, nonTemporal: true)
        #else
        (bytes: F.valueBits == 4 ? 6144 : decodePrefetchBytes, nonTemporal: false)
        #endif
    }

    /// The segment holding global group `g`, and `g`'s index in it.
    @inline(__always)
    static func locate(_ g: Int, _ segments: UnsafeBufferPointer<Segment>) -> (Segment, Int) {
        var i = 0
        while g >= segments[i].groups.upperBound { i += 1 }
        return (segments[i], g - segments[i].groups.lowerBound)
    }

    /// The groups of a multi-token forward shared out between the threads: `body(segment, local group, its records,
    /// tokens)` for each group and tile of `tokenTile` tokens, so a group's blocks stay in L1 while a tile goes past them.
    ///
    /// A forward of one tile (a speculative step's verification) is bound by the weights' reads, as decoding is, and
    /// shares them out the same way: each thread streams its own part in pieces, then takes pieces of the other's
    /// (`takeShare`). Chunks handed to whichever thread asked broke each thread's stream into short runs: SmolLM2
    /// (Q4_1 as stored, context 256, Zen 5, `bench verify` alternated), in decode steps for 2, 4, 8 and 16 tokens,
    /// fp32 activations 1.48, 2.23, 3.98, 6.04 → 1.21, 1.82, 3.43, 5.28; q8 activations (with the first pass over a
    /// group asking for its lines ahead, `groupTokens`) 1.60, 2.05, 3.17 → 1.35, 1.74, 2.73, and 1–5% fewer steps
    /// from 12 to 48 tokens.
    @inline(__always)
    static func forEachGroupTile<F: IntegerBlockFormat>(_: F.Type, tokens: Int, blocks: Int, _ segments: UnsafeBufferPointer<Segment>,
                                                        totalGroups: Int, pool: ThreadPool,
                                                        _ body: (Segment, Int, Group, Range<Int>) -> Void) {
        if tokens <= tokenTile {
            let parts = StealableRanges(splitting: totalGroups, into: decodeThreads(totalGroups: totalGroups, pool: pool))
            defer { parts.deallocate() }
            let pieces = pieces(F.self, blocks: blocks, streams: 1)
            pool.parallelFor(parts.parts) { t in
                takeShare(t, parts: parts, pieces: pieces) { groups in
                    forEachPart(of: groups, in: segments) { s, local in
                        for g in local { body(s, g, s.group(g, F.self, blocks: blocks), 0..<tokens) }
                    }
                }
            }
            return
        }
        pool.parallelChunks(totalGroups, minChunk: max(1, 16 / tokens)) { range in
            var tile = 0
            while tile < tokens {
                let tileEnd = min(tokens, tile + tokenTile)
                forEachPart(of: range, in: segments) { s, local in
                    for g in local { body(s, g, s.group(g, F.self, blocks: blocks), tile..<tileEnd) }
                }
                tile = tileEnd
            }
        }
    }

    /// Several tokens with q8 activations: with AVX-512 eight at a time (`Q8TokenTiles`), otherwise four, the rest in one
    /// pass, the first pass over a group asking for its lines ahead as decoding does. (With the groups handed out in
    /// chunks that made no difference on Zen 3: 1.48–1.56 decode steps for 3 tokens either way; in each thread's own
    /// stream it is most of the gain above.)
    static func forward<F: IntegerBlockFormat>(_: F.Type, _ a: Q8Activations, tokens: Int, _ segments: UnsafeBufferPointer<Segment>,
                                               totalGroups: Int, pool: ThreadPool) {
        forEachGroupTile(F.self, tokens: tokens, blocks: a.blocks, segments, totalGroups: totalGroups, pool: pool) { s, g, w, tile in
            var t = tile.lowerBound
            #if FLEXSERVE_AVX512
            while t < tile.upperBound {
                let count = min(8, tile.upperBound - t), first = t
                let prefetch = t == tile.lowerBound ? decodePrefetchBytes : 0
                @inline(__always) func pass<let n: Int>(_: Q8TokenTiles<n>.Type) {
                    Q8TokenTiles<n>.run(a, token: first, w, F.self, prefetch: prefetch) { k, v in s.store(v, group: g, token: first + k) }
                }
                switch count {
                case 8: pass(Q8TokenTiles<8>.self)
                case 7: pass(Q8TokenTiles<7>.self)
                case 6: pass(Q8TokenTiles<6>.self)
                case 5: pass(Q8TokenTiles<5>.self)
                case 4: pass(Q8TokenTiles<4>.self)
                case 3: pass(Q8TokenTiles<3>.self)
                case 2: pass(Q8TokenTiles<2>.self)
                default: pass(Q8TokenTiles<1>.self)
                }
                t += count
            }
            #else
            while t < tile.upperBound {
                let count = min(4, tile.upperBound - t)
                let prefetch = t == tile.lowerBound ? decodePrefetchBytes : 0
                let v = switch count {
                case 4: groupTokens(a, token: t, count: 4, w, F.self, prefetch: prefetch)
                case 3: groupTokens(a, token: t, count: 3, w, F.self, prefetch: prefetch)
                case 2: groupTokens(a, token: t, count: 2, w, F.self, prefetch: prefetch)
                default: groupTokens(a, token: t, count: 1, w, F.self, prefetch: prefetch)
                }
                s.store(v.0, group: g, token: t)
                if count > 1 { s.store(v.1, group: g, token: t + 1) }
                if count > 2 { s.store(v.2, group: g, token: t + 2) }
                if count > 3 { s.store(v.3, group: g, token: t + 3) }
                t += count
            }
            #endif
        }
    }

    /// Several tokens with fp32 activations: from `GroupPairPanel.minimumTokens` on, groups in pairs against panels
    /// (`forwardInPairs`); fewer, each group against twelve tokens at a time (`groupTokens`). The first pass over a group
    /// reads it from memory and asks for the lines ahead, as decoding does (a few tokens, as in speculative verification,
    /// are bound by the weights' reads).
    static func forward<F: IntegerBlockFormat>(_: F.Type, _ a: F32Activations, tokens: Int, _ segments: UnsafeBufferPointer<Segment>,
                                               totalGroups: Int, pool: ThreadPool) {
        if tokens >= GroupPairPanel.minimumTokens {
            forwardInPairs(F.self, a, tokens: tokens, segments, totalGroups: totalGroups, pool: pool)
            return
        }
        forEachGroupTile(F.self, tokens: tokens, blocks: a.blocks, segments, totalGroups: totalGroups, pool: pool) { s, g, w, tile in
            groupTokens(F.self, a, s, group: g, w, tile)
        }
    }

    /// Group g against the tokens of `tile`: twelve at a time (`F32Activations.group`; six with AVX2), then what is left in
    /// one pass (with AVX2 up to five). Every pass converts the group's values again, so fewer passes is faster: four at a
    /// time, then the rest (a lone token to a pass of its own), took SmolLM2's 5-, 6- and 10-token forwards 2.54, 2.87 and
    /// 4.41 decode steps against 2.10, 2.35 and 3.86 with passes of up to six (`bench verify`, Zen 5, six alternated runs);
    /// nine to eleven in one pass instead of two, 9–11 tokens 13–20% shorter and 21–23 7–9% (Emerald Rapids, as stored).
    /// 13 to 20 tokens take two halves (`bench kernels`, Emerald Rapids: 4-bit formats 6–10% shorter, Q8_0 level to 3%).
    @inline(__always)
    static func groupTokens<F: IntegerBlockFormat>(_: F.Type, _ a: F32Activations, _ s: Segment, group g: Int, _ w: Group, _ tile: Range<Int>) {
        // `t` is passed, not captured: a local function that changed a captured `t` kept it in a heap box, allocated and
        // freed for every group (5.5% of a speculative server's time in `perf`).
        /// One pass over `count` tokens from t.
        @inline(__always) func pass(_ t: Int, _ count: Int) {
            let prefetch = t == tile.lowerBound ? decodePrefetchBytes : 0
            @inline(__always) func tokens<T: TokenTile>(_: T.Type) {
                a.group(T.self, token: t, w, F.self, prefetch: prefetch) { k, v in s.store(v, group: g, token: t + k) }
            }
            switch count {
            #if FLEXSERVE_AVX2
            case 6: tokens(TokenTiles<6>.self)
            #else
            case 12: tokens(TokenTiles<12>.self)
            case 11: tokens(TokenTiles<11>.self)
            case 10: tokens(TokenTiles<10>.self)
            case 9: tokens(TokenTiles<9>.self)
            case 8: tokens(TokenTiles<8>.self)
            case 7: tokens(TokenTiles<7>.self)
            case 6: tokens(TokenTiles<6>.self)
            #endif
            case 5: tokens(TokenTiles<5>.self)
            case 4: tokens(TokenTiles<4>.self)
            case 3: tokens(TokenTiles<3>.self)
            case 2: tokens(TokenTiles<2>.self)
            case 1: tokens(TokenTiles<1>.self)
            default: break
            }
        }
        var t = tile.lowerBound
        #if FLEXSERVE_AVX2
        while t + 6 <= tile.upperBound { pass(t, 6); t += 6 }
        #else
        if (13...20).contains(tile.count) {
            // Two halves of at most ten (blocks side by side) rather than twelve and a short rest: as many instructions per
            // value, at the higher rate of the halves' passes.
            let first = (tile.count + 1) / 2
            pass(t, first)
            pass(t + first, tile.count - first)
            return
        }
        while t + 12 <= tile.upperBound { pass(t, 12); t += 12 }
        #endif
        pass(t, tile.upperBound - t)
    }

    /// Pairs of groups against a tile of `GroupPairPanel.tokenTile` tokens at a time, each thread with a panel of its own
    /// (`GroupPairPanel`); the tile's tokens past its last six (and a segment's odd group) as `groupTokens`.
    ///
    /// The work is handed out in units of `pairsPerUnit` pairs against one tile, all of a tile's units before the next
    /// tile's, to whichever thread asks: both threads then read the same tile's activations, and the last unit is
    /// small. Chunks of an eighth of the pairs, each against every tile in turn, left the threads finishing up to 0.9 ms
    /// apart in a 3 ms projection: two threads ran a 512-token projection 1.44–1.58× as fast as one, 1.51–1.80× with
    /// these units (median 0.99–1.10× per shape against the chunks, docs/cpu-performance.md). A unit's weights come from
    /// memory or L3 once per tile: ~20 KB of records for ~40 µs of FMAs.
    static func forwardInPairs<F: IntegerBlockFormat>(_: F.Type, _ a: F32Activations, tokens: Int, _ segments: UnsafeBufferPointer<Segment>,
                                                      totalGroups: Int, pool: ThreadPool) {
        let pairs = (totalGroups + 1) / 2
        let unitsPerTile = (pairs + pairsPerUnit - 1) / pairsPerUnit
        let units = unitsPerTile * ((tokens + GroupPairPanel.tokenTile - 1) / GroupPairPanel.tokenTile)
        pool.forEachUnit(units, scratchBytes: GroupPairPanel.byteCount) { scratch, u in
            let panel = GroupPairPanel(scratch)
            let pairsInUnit = (u % unitsPerTile * pairsPerUnit)..<min(pairs, (u % unitsPerTile + 1) * pairsPerUnit)
            let tile = u / unitsPerTile * GroupPairPanel.tokenTile
            let tileEnd = min(tokens, tile + GroupPairPanel.tokenTile), sixes = tile + (tileEnd - tile) / 6 * 6
            forEachPart(of: (2 * pairsInUnit.lowerBound)..<min(totalGroups, 2 * pairsInUnit.upperBound), in: segments) { s, local in
                var g = local.lowerBound
                while g + 2 <= local.upperBound {
                    let w0 = s.group(g, F.self, blocks: a.blocks), w1 = s.group(g + 1, F.self, blocks: a.blocks)
                    panel.run(w0, w1, a, tokens: tile..<sixes, F.self) { t, r0, r1 in
                        s.store(r0, group: g, token: t); s.store(r1, group: g + 1, token: t)
                    }
                    groupTokens(F.self, a, s, group: g, w0, sixes..<tileEnd)
                    groupTokens(F.self, a, s, group: g + 1, w1, sixes..<tileEnd)
                    g += 2
                }
                if g < local.upperBound { groupTokens(F.self, a, s, group: g, s.group(g, F.self, blocks: a.blocks), tile..<tileEnd) }
            }
        }
    }

    /// Pairs of groups per unit of `forwardInPairs` (one and four measured the same within the host's noise).
    static let pairsPerUnit = 2

    /// One block's dot products (`groupDots`) of one token (`x`) into a group's sums with `q8` activations: the step
    /// every path takes.
    @inline(__always)
    static func accumulate(_ sums: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>, _ dots: SIMD16<Float>, _ x: Q8Activations.Block,
                           scales d: SIMD16<Float>, offsetsPerUnit c: SIMD16<Float>) {
        accumulate(&sums, &offsets, dots, scale: x.scale, scaledSum: x.scaledSum, scales: d, offsetsPerUnit: c)
    }

    /// The same step with the token's block given by its scale and scaled sum.
    @inline(__always)
    static func accumulate(_ sums: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>, _ dots: SIMD16<Float>, scale: Float, scaledSum: Float,
                           scales d: SIMD16<Float>, offsetsPerUnit c: SIMD16<Float>) {
        sums = sums.addingProduct(dots, d * scale)
        offsets = offsets.addingProduct(c, scaledSum)
    }

    /// One block of group `w` into its sums for token t; a decode streaming the group from memory asks for the lines
    /// `prefetch` bytes ahead of the block's integer record first (its headers in proportion).
    @inline(__always)
    static func streamBlock<F: IntegerBlockFormat, A: GroupActivations>(_ sums: inout SIMD16<Float>, _ offsets: inout SIMD16<Float>, _ a: A,
                                                                        token t: Int, _ w: Group, block b: Int, _: F.Type, prefetch: Int,
                                                                        nonTemporal: Bool = false) {
        let integers = w.integers + b * F.groupIntegerBytes, header = w.headers + b * F.groupHeaderBytes
        prefetchAhead(w, block: b, F.self, by: prefetch, nonTemporal: nonTemporal)
        let (d, c) = F.groupScalesAndOffsets(header)
        a.accumulate(&sums, &offsets, token: t, block: b, integers, scales: d, offsetsPerUnit: c, F.self)
    }

    /// Asks for the lines `prefetch` bytes ahead of block b's integer record in group `w` (its headers in proportion), with
    /// the non-temporal hint where `nonTemporal`; none for 0.
    @inline(__always)
    static func prefetchAhead<F: IntegerBlockFormat>(_ w: Group, block b: Int, _: F.Type, by prefetch: Int, nonTemporal: Bool = false) {
        guard prefetch > 0 else { return }
        let integers = w.integers + b * F.groupIntegerBytes, header = w.headers + b * F.groupHeaderBytes
        @inline(__always) func ask(_ p: UnsafeRawPointer, _ bytes: Int) {
            if nonTemporal { Prefetch.aheadNonTemporal(p, by: bytes) } else { Prefetch.ahead(p, by: bytes) }
        }
        for line in stride(from: 0, to: F.groupIntegerBytes, by: 64) { ask(integers + line, prefetch) }
        for line in stride(from: 0, to: F.groupHeaderBytes, by: 64) { ask(header + line, prefetch * F.groupHeaderBytes / F.groupIntegerBytes) }
    }

    /// One token against one group (`prefetch` as in `streamBlock`).
    @inline(__always)
    static func group<F: IntegerBlockFormat, A: GroupActivations>(_ a: A, token t: Int, _ w: Group, _: F.Type, prefetch: Int = 0,
                                                                  nonTemporal: Bool = false) -> SIMD16<Float> {
        var sums = SIMD16<Float>(), offsets = SIMD16<Float>()
        for b in 0..<a.blocks { streamBlock(&sums, &offsets, a, token: t, w, block: b, F.self, prefetch: prefetch, nonTemporal: nonTemporal) }
        return sums + offsets
    }

    /// One token against four groups, a block of each in turn: four streams from memory (`prefetch` as in
    /// `streamBlock`). The same sums as `group` for each.
    @inline(__always)
    static func fourGroups<F: IntegerBlockFormat, A: GroupActivations>(_ a: A, _ w: (Group, Group, Group, Group), _: F.Type, prefetch: Int)
        -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        var sums = FourSums(), offsets = FourSums()
        for b in 0..<a.blocks {
            prefetchAhead(w.0, block: b, F.self, by: prefetch); prefetchAhead(w.1, block: b, F.self, by: prefetch)
            prefetchAhead(w.2, block: b, F.self, by: prefetch); prefetchAhead(w.3, block: b, F.self, by: prefetch)
            a.accumulate(&sums, &offsets, block: b, w, F.self)
        }
        return (sums.s0 + offsets.s0, sums.s1 + offsets.s1, sums.s2 + offsets.s2, sums.s3 + offsets.s3)
    }

    /// Tokens t..<t + count (1...4) against one group (prefill, verification): each block's values unpacked once for
    /// all of them, each token's sums the same as `group`'s (results past `count` are not meaningful; `prefetch` as in
    /// `streamBlock`).
    @inline(__always)
    static func groupTokens<F: IntegerBlockFormat>(_ a: Q8Activations, token t: Int, count: Int, _ w: Group, _: F.Type, prefetch: Int = 0)
        -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        var sums = FourSums(), offsets = FourSums()
        for b in 0..<a.blocks {
            prefetchAhead(w, block: b, F.self, by: prefetch)
            let (d, c) = F.groupScalesAndOffsets(w.headers + b * F.groupHeaderBytes)
            let x = (a.block(t, b), a.block(t + min(1, count - 1), b), a.block(t + min(2, count - 1), b), a.block(t + min(3, count - 1), b))
            let dots = groupDots(w.integers + b * F.groupIntegerBytes, x, count: count, F.self)
            accumulate(&sums.s0, &offsets.s0, dots.0, x.0, scales: d, offsetsPerUnit: c)
            if count > 1 { accumulate(&sums.s1, &offsets.s1, dots.1, x.1, scales: d, offsetsPerUnit: c) }
            if count > 2 { accumulate(&sums.s2, &offsets.s2, dots.2, x.2, scales: d, offsetsPerUnit: c) }
            if count > 3 { accumulate(&sums.s3, &offsets.s3, dots.3, x.3, scales: d, offsetsPerUnit: c) }
        }
        return (sums.s0 + offsets.s0, sums.s1 + offsets.s1, sums.s2 + offsets.s2, sums.s3 + offsets.s3)
    }
}
