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
        files = try Self.checkpointFiles(in: folder).map {
            try SafetensorsFile(path: (folder as NSString).appendingPathComponent($0))
        }
    }

    /// The files of the checkpoint: those the index names, else `model.safetensors`, else every `.safetensors` file.
    static func checkpointFiles(in folder: String) throws -> [String] {
        let fm = FileManager.default
        let indexPath = (folder as NSString).appendingPathComponent("model.safetensors.index.json")
        if let data = fm.contents(atPath: indexPath) {
            guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                  let map = json["weight_map"] as? [String: String] else {
                throw WeightFileError(file: indexPath, tensor: nil, problem: "not a valid index (no weight_map)")
            }
            return Set(map.values).sorted()
        }
        if fm.fileExists(atPath: (folder as NSString).appendingPathComponent("model.safetensors")) { return ["model.safetensors"] }
        let names = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
        guard !names.isEmpty else {
            throw WeightFileError(file: folder, tensor: nil, problem: "no .safetensors files in the folder")
        }
        return names
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
