import Foundation
import FlexServeTensor

/// Opens a model from a HuggingFace folder (config.json + safetensors) or a GGUF file and builds
/// the architecture its config names.
public enum ModelLoader {
    public struct Loaded: Sendable {
        public let model: any CausalLM
        public let weights: any WeightStore
        /// The GGUF file, when the model came from one (it also carries the tokenizer).
        public let gguf: GGUFFile?
        public let folder: String?
    }

    /// - weightFormat: convert projection matrices to this format at load (nil keeps the file's).
    /// - activations: `.q8` multiplies integer block formats with int8-quantized activations.
    /// - interleaving: rearranges matrices in integer block formats for the CPU kernels (`InterleavedRows`); a model
    ///   bound for a GPU with fp32 activations needs only the file's bytes.
    public static func load(path: String, weightFormat: DType? = nil, activations: ActivationFormat = .f32,
                            interleaving: Bool = true) throws -> Loaded {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError("model not found: \(path) is neither a folder nor a .gguf file")
        }
        if isDirectory.boolValue, let file = try ggufOnly(folder: path) {
            return try load(path: file, weightFormat: weightFormat, activations: activations, interleaving: interleaving)
        }
        if isDirectory.boolValue {
            let configPath = (path as NSString).appendingPathComponent("config.json")
            let config = try ModelConfig(configJSON: configPath)
            let weights = converting(try SafetensorsStore(folder: path), to: weightFormat, activations: activations, interleaving: interleaving)
            return Loaded(model: try build(config: config, weights: weights), weights: weights, gguf: nil, folder: path)
        }
        let gguf = try GGUFFile(path: path)
        let config = try ModelConfig(gguf: gguf)
        let weights = converting(GGUFStore(gguf), to: weightFormat, activations: activations, interleaving: interleaving)
        return Loaded(model: try build(config: config, weights: weights), weights: weights, gguf: gguf, folder: nil)
    }

    /// The folder's one `.gguf` file when it holds no safetensors (a draft model exported by
    /// tools/distill as GGUF; its config.json, if any, only documents it), else nil.
    static func ggufOnly(folder: String) throws -> String? {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder)
        guard !names.contains(where: { $0.hasSuffix(".safetensors") }) else { return nil }
        let ggufs = names.filter { $0.hasSuffix(".gguf") }
        return ggufs.count == 1 ? (folder as NSString).appendingPathComponent(ggufs[0]) : nil
    }

    static func converting(_ store: any WeightStore, to format: DType?, activations: ActivationFormat, interleaving: Bool) -> any WeightStore {
        guard format != nil || interleaving || activations == .q8 else { return store }
        return ConvertingStore(store, to: format, activations: activations, interleaving: interleaving || activations == .q8)
    }

    public static func build(config: ModelConfig, weights: WeightStore) throws -> any CausalLM {
        switch config.architecture {
        case "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "llama", "mistral", "qwen2":
            return try LlamaModel(config: config, weights: weights)
        case "OPTForCausalLM", "opt":
            return try OPTModel(config: config, weights: weights)
        case "FalconForCausalLM", "RWForCausalLM", "falcon":
            return try FalconModel(config: config, weights: weights)
        case "GPTBigCodeForCausalLM", "starcoder":
            return try GPTBigCodeModel(config: config, weights: weights)
        case "MPTForCausalLM", "MptForCausalLM", "mpt":
            return try MPTModel(config: config, weights: weights)
        default:
            throw ModelError("unsupported architecture '\(config.architecture)' in \(weights.source)")
        }
    }
}
