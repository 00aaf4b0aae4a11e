import FlexServeTensor

/// A token embedding table `[vocab][dim]` in any storage format.
public struct Embedding: Sendable {
    public let table: TensorView

    public init(_ table: TensorView) { self.table = table }

    public var vocabSize: Int { table.shape[0] }
    public var dim: Int { table.shape[1] }

    public func lookup(_ ids: [Int], into out: UnsafeMutablePointer<Float>) throws {
        let rowBytes = table.dtype.byteCount(values: dim)!
        for (t, id) in ids.enumerated() {
            guard id >= 0, id < vocabSize else {
                throw ModelError("token id \(id) is outside the vocabulary (0..<\(vocabSize))")
            }
            Dequantize.row(table.dtype, table.data + id * rowBytes, count: dim, into: out + t * dim)
        }
    }
}

extension TensorView {
    /// Checks a weight's shape against what the architecture expects.
    public func expecting(_ shape: [Int], _ name: String, in source: String) throws -> TensorView {
        guard self.shape == shape else {
            throw WeightFileError(file: source, tensor: name, problem: "shape \(self.shape), expected \(shape)")
        }
        return self
    }
}
