import Foundation
import FlexServeTensor

/// The tensors of one model under HuggingFace names, whichever file format they came from.
/// GGUF tensors are renamed to HF names and llama.cpp's permuted Q/K rows are put back, so that
/// every architecture reads one naming scheme and both formats give the same model.
public protocol WeightStore: Sendable {
    var source: String { get }
    func tensor(_ name: String) throws -> TensorView
    func contains(_ name: String) -> Bool
}

/// One or several safetensors files (sharded checkpoints list theirs in model.safetensors.index.json).
public struct SafetensorsStore: WeightStore {
    public let source: String
    let files: [SafetensorsFile]

    public init(folder: String) throws {
        source = folder
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: folder)) ?? []
        let shards = names.filter { $0.hasSuffix(".safetensors") }.sorted()
        guard !shards.isEmpty else {
            throw WeightFileError(file: folder, tensor: nil, problem: "no .safetensors files in the folder")
        }
        files = try shards.map { try SafetensorsFile(path: (folder as NSString).appendingPathComponent($0)) }
    }

    public init(files: [SafetensorsFile]) {
        source = files.first?.path ?? ""
        self.files = files
    }

    public func tensor(_ name: String) throws -> TensorView {
        for file in files { if let t = file.tensors[name] { return t } }
        throw WeightFileError(file: source, tensor: name, problem: "missing from the checkpoint")
    }

    public func contains(_ name: String) -> Bool { files.contains { $0.tensors[name] != nil } }
}
