import Foundation
import FlexServeTensor

/// Memory read bandwidth: every thread sums its share of a 512 MiB buffer (far larger than the caches) in each of
/// `Pattern`'s ways, so the ceiling is the machine's, not one access pattern's. The buffer is kept, so the benchmark
/// can read slices of it between decode steps and compare the steps with the bandwidth of the same moments.
final class ReadProbe: @unchecked Sendable {
    /// One probe for the process's benchmarks on the shared pool (run one at a time): the buffer is allocated
    /// and touched once, not for every format a benchmark measures.
    static let shared = ReadProbe(pool: .shared)

    /// `shared` for the shared pool, else a new probe.
    static func on(_ pool: ThreadPool) -> ReadProbe { pool === ThreadPool.shared ? shared : ReadProbe(pool: pool) }

    let pool: ThreadPool
    private let count = 128 << 20
    private let memory: OwnedBuffer
    private let buffer: UnsafeMutablePointer<Float>

    /// The buffer is in huge pages, as the weights are: the ceiling is what such memory can give.
    init(pool: ThreadPool) {
        self.pool = pool
        memory = OwnedBuffer(byteCount: count * 4, hugePages: true)
        let buffer = memory.pointer.bindMemory(to: Float.self, capacity: count)
        self.buffer = buffer
        pool.parallelChunks(count, minChunk: 1 << 16) { r in (buffer + r.lowerBound).initialize(repeating: 1, count: r.count) }
    }

    private var nextByte = 0

    /// The most `read(phases:)` can read in one call.
    var capacityBytes: Int { count * 4 }

    /// How a pass reads. None is always fastest: on the Zen 4 host four prefetched streams read ~40% more than one
    /// plain stream; on the Zen 5 host the three read within ~10% of each other on a whole pass, but the decode step's
    /// projections stripped of their arithmetic (`flexserve bench bound`) read 6–14% faster than reads without the
    /// third pattern (2026-12-05), and still 90–111% of them with it: the probe can understate the machine by that much.
    enum Pattern: CaseIterable {
        /// Four chunks a thread, each one sequential stream left to the hardware prefetchers.
        case sequential
        /// Four chunks a thread, each read as four interleaved streams with every line asked for 512 bytes ahead.
        case fourStreams
        /// One stream a thread with every line asked for 4 KB ahead, as the decode kernels read their weights.
        case prefetched
    }

    /// GB/s of one pass over the buffer.
    func pass(_ pattern: Pattern) -> Double { read(floats: 0..<count, pattern) }

    /// GB/s of reading about `bytes` (at most the buffer) from where the previous call stopped, so successive calls
    /// read memory not in the caches.
    func read(bytes: Int, _ pattern: Pattern) -> Double {
        let n = min(count, max(bytes / 4, 1 << 16)) / (pool.threadCount * 4 * 128) * (pool.threadCount * 4 * 128)
        if nextByte / 4 + n > count { nextByte = 0 }
        let start = nextByte / 4
        nextByte += n * 4
        return read(floats: start..<(start + n), pattern)
    }

    /// GB/s of reading `phases` (bytes each) in one parallel region, every phase finished by all threads before the
    /// next starts, each thread's share of a phase as two streams prefetched ahead: how the decode step reads its
    /// weights (`ThreadPool.runPhases`), without the arithmetic and the attention between the phases.
    func read(phases: [Int]) -> Double {
        let threads = pool.threadCount, unit = 2 * threads * 64
        let sizes = phases.map { max(unit, $0 / unit * unit) }
        let total = sizes.reduce(0, +)
        precondition(total <= capacityBytes, "phases larger than the probe's buffer")
        if nextByte + total > capacityBytes { nextByte = 0 }
        var offsets: [Int] = []
        for size in sizes { offsets.append(nextByte); nextByte += size }
        let base = UnsafeRawPointer(buffer)
        let sinks = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: threads)
        defer { sinks.deallocate() }
        sinks.initialize(repeating: SIMD16<Float>(), count: threads)
        let start = Date()
        pool.runPhases([Int](repeating: threads, count: sizes.count)) { phase, task, _ in
            let quarter = sizes[phase] / threads / 2
            let a = base + offsets[phase] + 2 * task * quarter, b = a + quarter
            var s0 = SIMD16<Float>(), s1 = SIMD16<Float>()
            var i = 0
            while i < quarter {
                Prefetch.ahead(a + i); Prefetch.ahead(b + i)
                s0 += a.loadUnaligned(fromByteOffset: i, as: SIMD16<Float>.self)
                s1 += b.loadUnaligned(fromByteOffset: i, as: SIMD16<Float>.self)
                i += 64
            }
            sinks[task] += s0 + s1
        }
        return Double(total) / Date().timeIntervalSince(start) / 1e9
    }

    private func read(floats: Range<Int>, _ pattern: Pattern) -> Double {
        @inline(__always) func sum(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float> {
            p.loadUnaligned(fromByteOffset: i, as: SIMD16<Float>.self) + p.loadUnaligned(fromByteOffset: i + 64, as: SIMD16<Float>.self)
        }
        let buffer = buffer + floats.lowerBound, count = floats.count
        let sinks = UnsafeMutablePointer<Float>.allocate(capacity: 64)
        defer { sinks.deallocate() }
        sinks.initialize(repeating: 0, count: 64)
        let chunks = pattern == .prefetched ? pool.threadCount : pool.threadCount * 4
        let size = count / chunks
        let start = Date()
        pool.parallelFor(chunks) { c in
            let p = UnsafeRawPointer(buffer + c * size)
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
            switch pattern {
            case .sequential:
                var i = 0
                while i < size * 4 {
                    a0 += sum(p, i); a1 += sum(p, i + 128)
                    i += 256
                }
            case .prefetched:
                var i = 0
                while i < size * 4 {
                    Prefetch.ahead(p + i, by: 4096); Prefetch.ahead(p + i + 64, by: 4096)
                    Prefetch.ahead(p + i + 128, by: 4096); Prefetch.ahead(p + i + 192, by: 4096)
                    a0 += sum(p, i); a1 += sum(p, i + 128)
                    i += 256
                }
            case .fourStreams:
                let quarter = size, q = (p, p + quarter, p + 2 * quarter, p + 3 * quarter)
                var i = 0
                while i < quarter {
                    Prefetch.ahead(q.0 + i, by: 512); Prefetch.ahead(q.1 + i, by: 512)
                    Prefetch.ahead(q.2 + i, by: 512); Prefetch.ahead(q.3 + i, by: 512)
                    a0 += sum(q.0, i); a1 += sum(q.1, i); a2 += sum(q.2, i); a3 += sum(q.3, i)
                    i += 128
                }
            }
            sinks[c % 64] += (a0 + a1 + a2 + a3).sum()
        }
        return Double(count * 4) / Date().timeIntervalSince(start) / 1e9
    }
}
