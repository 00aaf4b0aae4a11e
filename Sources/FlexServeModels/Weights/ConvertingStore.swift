import FlexServeTensor

/// Another store's weights with every projection matrix converted to one format at load time:
/// FlexFlow's `--8bit-quantization`/`--4bit-quantization` (asymmetric, groups of 32) and the
/// benchmark's per-format runs. Norms, biases and embedding tables keep their format. With
/// `interleaving`, every matrix in an integer block format (a tied vocabulary head included) is
/// rearranged for the CPU kernels of its activations (`InterleavedRows`).
public struct ConvertingStore: WeightStore {
    public let base: any WeightStore
    public let dtype: DType?
    public let activations: ActivationFormat
    public let interleaving: Bool
    public var source: String { base.source }

    public init(_ base: any WeightStore, to dtype: DType?, activations: ActivationFormat = .f32, interleaving: Bool = true) {
        self.base = base
        self.dtype = dtype
        self.activations = activations
        self.interleaving = interleaving
    }

    public func contains(_ name: String) -> Bool { base.contains(name) }

    public func tensor(_ name: String) throws -> TensorView {
        var t = try base.tensor(name)
        let isEmbedding = name.contains("embed") || name.hasSuffix("wte.weight") || name.hasSuffix("wpe.weight")
        if let dtype, t.shape.count == 2, !isEmbedding, name.hasSuffix(".weight"), t.shape[1] % dtype.blockValues == 0 {
            guard let converted = t.converted(to: dtype) else {
                throw WeightFileError(file: source, tensor: name, problem: "cannot be stored as \(dtype)")
            }
            // The converted copy is what the model reads; the file's pages it was made from go back (SmolLM2 with
            // --8bit-quantization: peak resident memory 406 → 347 MB, --4bit 300 → 242).
            if let file = t.owner as? MappedFile { file.release(t.data, byteCount: t.byteCount) }
            t = converted
        }
        if interleaving {
            t = t.withInterleavedRows(for: activations)
            // The kernels read the interleaved copy; the file's bytes it was built from would stay resident beside it
            // (SmolLM2 as stored: 150 → 246 MB). They go back to the page cache, read again only if something
            // else (a tied head's embedding lookup) touches them.
            if t.interleaved != nil, let file = t.owner as? MappedFile { file.release(t.data, byteCount: t.byteCount) }
        }
        return t
    }
}
