import FlexServeTensor

public struct KVCacheError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Keys and values of every sequence in fixed-size blocks drawn from one free list, so memory
/// is taken as sequences grow rather than reserved for the longest one. A sequence's block table
/// maps its logical entry i to slot `table[i / blockSize] * blockSize + i % blockSize`.
public final class PagedKVCache: @unchecked Sendable {
    public let layers: Int
    public let kvHeads: Int
    public let headDim: Int
    public let blockSize: Int
    public let blockCount: Int
    /// How each key and value element is held.
    public let type: KVCacheType
    let keys: [OwnedBuffer]
    let values: [OwnedBuffer]
    /// Each layer's keys (and values) head by head, `[kvHead][slot][headDim]`: a decode step's attention
    /// reads one head's keys over a sequence as one run, where the token-major layout put them 768 bytes
    /// apart (SmolLM2) and the prefetchers pulled in the other heads' rows with them. Measured in interleaved
    /// segments of one decode: 3.8% faster steps, 29 of 38 segment pairs.
    public let layout: KVLayout
    private var freeBlocks: [Int32]
    /// The position (as `Batch.Token.position`) of the token whose K/V each physical slot holds, recorded
    /// by `positionedAddressing` at write time: ALiBi and sliding windows need keys' positions, which differ
    /// from their cache index for token-tree nodes.
    private var slotPositions: [Int32]
    private var tables: [Int: [Int32]] = [:]
    /// Prefix caching (vLLM's automatic prefix caching): whole blocks of committed entries are indexed by their
    /// tokens and those of every block before them, and a new sequence that starts with the same tokens takes those
    /// blocks instead of computing them again. A block's K/V are the same bits however its tokens were batched, so
    /// the output is too. Off unless set (the engine turns it on).
    public var cachesPrefixes = false
    /// Per block: the sequences whose tables hold it.
    private var holders: [Int32]
    private var prefixIndex: [PrefixKey: Int32] = [:]
    private var indexed: [Int32: PrefixEntry] = [:]
    /// Indexed blocks no sequence holds, least recently released first: taken (and forgotten) once the free list is empty.
    private var evictable: [Int32] = []
    /// Per sequence: how many of its first blocks are indexed, and the last one's entry.
    private var indexedPrefix: [Int: (blocks: Int, entry: Int)] = [:]
    private var nextEntry = 1
    /// Told of every `move` as (source slot, destination slot), so a backend that keeps K/V in its own
    /// memory (the GPU) can copy them too; CPU models leave it nil.
    public var moveObserver: ((_ from: Int32, _ to: Int32) -> Void)?

    public init(layers: Int, kvHeads: Int, headDim: Int, capacityTokens: Int, blockSize: Int = 16, type: KVCacheType = .f32) {
        self.layers = layers
        self.type = type
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.blockSize = blockSize
        blockCount = max(1, (capacityTokens + blockSize - 1) / blockSize)
        let bytes = blockCount * blockSize * kvHeads * headDim * type.bytes
        // Ordinary pages: a cache is touched block by block as sequences grow, and a huge-page fault there
        // (zeroing 2 MiB, compacting memory first when it is fragmented) stalls a request mid-generation
        // (measured: the demo ran 15-25% slower with the cache in huge pages).
        keys = (0..<layers).map { _ in OwnedBuffer(byteCount: bytes) }
        values = (0..<layers).map { _ in OwnedBuffer(byteCount: bytes) }
        layout = .planar(slots: blockCount * blockSize, headDim: headDim)
        freeBlocks = (0..<Int32(blockCount)).reversed()
        holders = [Int32](repeating: 0, count: blockCount)
        slotPositions = [Int32](repeating: 0, count: blockCount * blockSize)
    }

    /// Blocks a sequence can take: free ones and cached ones that no sequence holds.
    public var freeBlockCount: Int { freeBlocks.count + evictable.count }
    public var capacityTokens: Int { blockCount * blockSize }
    public var bytes: Int { 2 * layers * blockCount * blockSize * kvHeads * headDim * type.bytes }

    /// Entries the sequence can hold without taking more blocks.
    public func capacity(of sequence: Int) -> Int { (tables[sequence]?.count ?? 0) * blockSize }

    public func blocksNeeded(sequence: Int, length: Int) -> Int {
        max(0, (length + blockSize - 1) / blockSize - (tables[sequence]?.count ?? 0))
    }

    /// Makes logical entries `0..<length` of `sequence` addressable, taking blocks from the free list.
    public func reserve(sequence: Int, length: Int) throws {
        let need = blocksNeeded(sequence: sequence, length: length)
        guard need <= freeBlockCount else {
            throw KVCacheError(description: "KV cache full: sequence \(sequence) needs \(need) more blocks of \(blockSize) tokens, \(freeBlockCount) free of \(blockCount)")
        }
        var table = tables[sequence] ?? []
        for _ in 0..<need { table.append(takeBlock()) }
        tables[sequence] = table
    }

    /// Keeps entries `0..<length` and returns the blocks past them to the free list.
    public func truncate(sequence: Int, length: Int) {
        guard var table = tables[sequence] else { return }
        let keep = (length + blockSize - 1) / blockSize
        while table.count > keep { drop(table.removeLast()) }
        tables[sequence] = table
        if let p = indexedPrefix[sequence], p.blocks > keep { indexedPrefix[sequence] = nil }
    }

    public func release(sequence: Int) {
        tables.removeValue(forKey: sequence)?.forEach(drop)
        indexedPrefix[sequence] = nil
    }

    /// Gives a sequence without blocks the cached blocks that hold its first tokens, whole blocks covering at most
    /// `limit` tokens; returns how many tokens they cover (0 with prefix caching off).
    public func adoptCachedPrefix(sequence: Int, tokens: [Int], limit: Int) -> Int {
        guard cachesPrefixes, tables[sequence] == nil else { return 0 }
        var table: [Int32] = [], entry = 0
        while (table.count + 1) * blockSize <= min(limit, tokens.count),
              let block = prefixIndex[PrefixKey(after: entry, tokens[(table.count * blockSize)..<((table.count + 1) * blockSize)])] {
            if holders[Int(block)] == 0 { evictable.removeAll { $0 == block } }
            holders[Int(block)] += 1
            table.append(block)
            entry = indexed[block]!.id
        }
        guard !table.isEmpty else { return 0 }
        tables[sequence] = table
        indexedPrefix[sequence] = (table.count, entry)
        return table.count * blockSize
    }

    /// Indexes the sequence's whole blocks among its first `committed` entries (of `tokens`), for later sequences
    /// to adopt. Where another block already holds the same tokens, this one stays out of the index.
    public func cacheFullBlocks(sequence: Int, tokens: [Int], committed: Int) {
        guard cachesPrefixes, let table = tables[sequence] else { return }
        var (done, entry) = indexedPrefix[sequence] ?? (0, 0)
        while done < min(min(committed, tokens.count) / blockSize, table.count) {
            let key = PrefixKey(after: entry, tokens[(done * blockSize)..<((done + 1) * blockSize)])
            if let block = prefixIndex[key] {
                entry = indexed[block]!.id
            } else {
                let block = table[done]
                guard indexed[block] == nil else { break }
                let e = PrefixEntry(key: key, id: nextEntry)
                nextEntry += 1
                prefixIndex[key] = block
                indexed[block] = e
                entry = e.id
            }
            done += 1
        }
        indexedPrefix[sequence] = (done, entry)
    }

    /// A free block, else the least recently released cached one (then forgotten).
    private func takeBlock() -> Int32 {
        let block: Int32
        if let b = freeBlocks.popLast() {
            block = b
        } else {
            block = evictable.removeFirst()
            if let e = indexed.removeValue(forKey: block) { prefixIndex[e.key] = nil }
        }
        holders[Int(block)] = 1
        return block
    }

    private func drop(_ block: Int32) {
        holders[Int(block)] -= 1
        guard holders[Int(block)] == 0 else { return }
        if indexed[block] != nil { evictable.append(block) } else { freeBlocks.append(block) }
    }

    @inline(__always)
    public func slot(sequence: Int, index: Int) -> Int32 {
        let table = tables[sequence]!
        return table[index / blockSize] * Int32(blockSize) + Int32(index % blockSize)
    }

    /// Copies entry `from` to entry `to` of a sequence in every layer (compacting accepted tree nodes).
    public func move(sequence: Int, from: Int, to: Int) {
        if from == to { return }
        let src = Int(slot(sequence: sequence, index: from)), dst = Int(slot(sequence: sequence, index: to))
        for l in 0..<layers {
            let store = store(layer: l)
            for h in 0..<kvHeads { store.copy(head: h, from: src, to: dst, headDim: headDim) }
        }
        slotPositions[dst] = slotPositions[src]
        moveObserver?(Int32(src), Int32(dst))
    }

    /// Layer `layer`'s keys and values, for attention.
    public func store(layer: Int) -> KVStore {
        KVStore(keys: UnsafeMutableRawPointer(keys[layer].pointer), values: UnsafeMutableRawPointer(values[layer].pointer), type: type, layout: layout)
    }

    /// Stores one token's keys and values (`[kvHead][headDim]` each) at `slot` of `layer`.
    @inline(__always)
    public func write(layer: Int, slot: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) {
        for h in 0..<kvHeads { write(layer: layer, slot: slot, head: h, key: k + h * headDim, value: v + h * headDim) }
    }

    /// Stores KV head `head`'s key and value (`[headDim]` each) of one token at `slot` of `layer`.
    @inline(__always)
    public func write(layer: Int, slot: Int, head: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        store(layer: layer).write(slot: slot, head: head, key: key, value: value, headDim: headDim)
    }

    /// Physical slots for a batch: where each token writes, and the flattened list of slots each token reads.
    public func addressing(for batch: Batch) throws -> (write: [Int32], slotStart: [Int32], slots: [Int32]) {
        var write: [Int32] = []
        var slotStart: [Int32] = [0]
        var slots: [Int32] = []
        write.reserveCapacity(batch.count)
        for t in batch.tokens {
            let cap = capacity(of: t.sequence)
            guard t.cacheIndex < cap, t.visiblePrefix <= cap, t.visibleExtra.allSatisfy({ $0 < cap }) else {
                throw KVCacheError(description: "sequence \(t.sequence): entry \(t.cacheIndex) is beyond its reserved \(cap) entries")
            }
            // One table lookup per token, not per visible entry: prefill lists O(tokens²) entries.
            let table = tables[t.sequence]!
            let size = Int32(blockSize)
            func slotOf(_ i: Int) -> Int32 { table[i / blockSize] * size + Int32(i % blockSize) }
            write.append(slotOf(t.cacheIndex))
            for i in 0..<t.visiblePrefix { slots.append(slotOf(i)) }
            for i in t.visibleExtra { slots.append(slotOf(i)) }
            slotStart.append(Int32(slots.count))
        }
        return (write, slotStart, slots)
    }

    /// `addressing(for:)` plus the position of every visible slot, in the order of `slots`.
    public struct PositionedAddressing: Sendable {
        public var write: [Int32]
        public var slotStart: [Int32]
        public var slots: [Int32]
        /// Position of the key in each entry of `slots`.
        public var slotPositions: [Int32]
        /// Each batch token's position.
        public var queryPositions: [Int32]
    }

    /// Records the positions of the batch's tokens at their write slots and returns, with each visible slot,
    /// the position of its key. With `slidingWindow` W, a token at position p sees only keys at positions
    /// p-W+1...p (Mistral's window, as transformers masks it).
    public func positionedAddressing(for batch: Batch, slidingWindow: Int? = nil) throws -> PositionedAddressing {
        var write: [Int32] = []
        write.reserveCapacity(batch.count)
        for t in batch.tokens {
            let cap = capacity(of: t.sequence)
            guard t.cacheIndex < cap, t.visiblePrefix <= cap, t.visibleExtra.allSatisfy({ $0 < cap }) else {
                throw KVCacheError(description: "sequence \(t.sequence): entry \(t.cacheIndex) is beyond its reserved \(cap) entries")
            }
            let s = slot(sequence: t.sequence, index: t.cacheIndex)
            write.append(s)
            slotPositions[Int(s)] = Int32(t.position)
        }
        var slotStart: [Int32] = [0]
        var slots: [Int32] = [], positions: [Int32] = []
        for t in batch.tokens {
            let oldest = slidingWindow.map { Int32(t.position - $0 + 1) } ?? Int32.min
            func see(_ i: Int) {
                let s = slot(sequence: t.sequence, index: i)
                let p = slotPositions[Int(s)]
                if p >= oldest {
                    slots.append(s)
                    positions.append(p)
                }
            }
            for i in 0..<t.visiblePrefix { see(i) }
            for i in t.visibleExtra { see(i) }
            slotStart.append(Int32(slots.count))
        }
        return PositionedAddressing(write: write, slotStart: slotStart, slots: slots, slotPositions: positions,
                                    queryPositions: batch.tokens.map { Int32($0.position) })
    }
}

/// A whole block's tokens and the index entry of the block before it (0 for a sequence's first): entry ids are never
/// reused, so a key names one exact token prefix even after the blocks before it are evicted.
struct PrefixKey: Hashable {
    let previous: Int
    let tokens: [Int32]

    init(after previous: Int, _ tokens: ArraySlice<Int>) {
        self.previous = previous
        self.tokens = tokens.map { Int32(truncatingIfNeeded: $0) }
    }
}

struct PrefixEntry {
    let key: PrefixKey
    let id: Int
}
