import FlexServeTensor

/// A decoder-only language model: one forward over a `Batch` reading and writing a paged KV cache.
public protocol CausalLM: AnyObject, Sendable {
    var config: ModelConfig { get }
    /// Logits of the batch's tokens that asked for them, in batch order: `[rows][config.vocabSize]`.
    func forward(_ batch: Batch, cache: PagedKVCache) throws -> Logits
}

/// A CPU model's matrices, for the benchmarks' counts of the bytes a decode step streams and of a prefill's flops.
public protocol ModelMatrices {
    /// Every projection matrix but the vocabulary head, each once.
    var projectionMatrices: [TensorView] { get }
    var vocabularyHead: TensorView { get }
}

extension CausalLM {
    public func makeCache(capacityTokens: Int, blockSize: Int = 16, type: KVCacheType = .f32) -> PagedKVCache {
        PagedKVCache(layers: config.numLayers, kvHeads: config.numKVHeads, headDim: config.headDim,
                     capacityTokens: capacityTokens, blockSize: blockSize, type: type)
    }
}

/// Rows of logits over the vocabulary.
public struct Logits: @unchecked Sendable {
    public let storage: FloatBuffer
    public let rows: Int
    public let vocabSize: Int

    public init(rows: Int, vocabSize: Int) {
        self.init(storage: FloatBuffer(rows * vocabSize), rows: rows, vocabSize: vocabSize)
    }

    /// Over `storage`, which holds at least `rows · vocabSize` floats.
    init(storage: FloatBuffer, rows: Int, vocabSize: Int) {
        self.storage = storage
        self.rows = rows
        self.vocabSize = vocabSize
    }

    /// Row `r` in place. The pointer is valid only while this value is alive: callers that keep
    /// it beyond one expression hold the value with `withExtendedLifetime`, or use `withRow`.
    public func row(_ r: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: storage.pointer + r * vocabSize, count: vocabSize)
    }

    public func withRow<R>(_ r: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(row(r)) }
    }

    public func rowArray(_ r: Int) -> [Float] { Array(row(r)) }
}

public struct ModelError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
