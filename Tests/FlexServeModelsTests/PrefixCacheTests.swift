import FlexServeModels
import XCTest

/// `PagedKVCache`'s prefix caching: which blocks a sequence adopts, when they are shared, and which go first when the
/// free list runs out.
final class PrefixCacheTests: XCTestCase {
    func testWholeBlocksAreSharedThenEvictedLeastRecentFirst() throws {
        let cache = PagedKVCache(layers: 1, kvHeads: 1, headDim: 4, capacityTokens: 4 * 16)
        cache.cachesPrefixes = true
        let a = Array(0..<40), b = Array(100..<148)
        try cache.reserve(sequence: 1, length: 40)
        cache.cacheFullBlocks(sequence: 1, tokens: a, committed: 40)
        // Whole blocks only (32 of 40 tokens), within the limit, and the same slots while the first sequence runs.
        XCTAssertEqual(cache.adoptCachedPrefix(sequence: 2, tokens: a, limit: 39), 32)
        XCTAssertEqual(cache.slot(sequence: 2, index: 31), cache.slot(sequence: 1, index: 31))
        XCTAssertEqual(cache.adoptCachedPrefix(sequence: 3, tokens: a, limit: 31), 16)
        XCTAssertEqual(cache.adoptCachedPrefix(sequence: 4, tokens: b, limit: 47), 0)
        XCTAssertEqual(cache.adoptCachedPrefix(sequence: 5, tokens: [0, 1, 2] + a.dropFirst(3).map { $0 == 20 ? 99 : $0 }, limit: 39), 16,
                       "a different token in the second block")
        cache.release(sequence: 5)
        XCTAssertEqual(cache.freeBlockCount, 1)
        for s in 1...3 { cache.release(sequence: s) }
        XCTAssertEqual(cache.freeBlockCount, 4, "two free blocks and two cached ones no sequence holds")
        // Three blocks for b: the two free ones, then the cached block released first (a's second: its first was held longer).
        try cache.reserve(sequence: 6, length: 48)
        XCTAssertEqual(cache.adoptCachedPrefix(sequence: 7, tokens: a, limit: 39), 16)
        XCTAssertThrowsError(try cache.reserve(sequence: 8, length: 16), "every block held")
        cache.release(sequence: 7)
        // b's blocks indexed: the evicted block now holds b's tokens and is found by them, not by a's.
        cache.cacheFullBlocks(sequence: 6, tokens: b, committed: 48)
        XCTAssertEqual(cache.adoptCachedPrefix(sequence: 9, tokens: b, limit: 48), 48)
        XCTAssertEqual(cache.adoptCachedPrefix(sequence: 10, tokens: a, limit: 39), 16)
    }

    /// A block is found by its tokens and by every token before it: the same sixteen tokens after another first block
    /// are another block's K/V.
    func testABlockIsKeyedByItsWholePrefix() throws {
        let cache = PagedKVCache(layers: 1, kvHeads: 1, headDim: 4, capacityTokens: 8 * 16)
        cache.cachesPrefixes = true
        let second = Array(200..<216), a = Array(0..<16) + second + [1], b = Array(50..<66) + second + [1]
        for (s, tokens) in [(1, a), (2, b)] {
            try cache.reserve(sequence: s, length: tokens.count)
            cache.cacheFullBlocks(sequence: s, tokens: tokens, committed: tokens.count)
        }
        XCTAssertEqual(cache.adoptCachedPrefix(sequence: 3, tokens: b, limit: 32), 32)
        XCTAssertEqual(cache.slot(sequence: 3, index: 20), cache.slot(sequence: 2, index: 20))
        XCTAssertNotEqual(cache.slot(sequence: 3, index: 20), cache.slot(sequence: 1, index: 20))
    }

    func testNothingIsSharedWithPrefixCachingOff() throws {
        let cache = PagedKVCache(layers: 1, kvHeads: 1, headDim: 4, capacityTokens: 4 * 16)
        let a = Array(0..<40)
        try cache.reserve(sequence: 1, length: 40)
        cache.cacheFullBlocks(sequence: 1, tokens: a, committed: 40)
        XCTAssertEqual(cache.adoptCachedPrefix(sequence: 2, tokens: a, limit: 39), 0)
        cache.release(sequence: 1)
        XCTAssertEqual(cache.freeBlockCount, 4)
    }
}
