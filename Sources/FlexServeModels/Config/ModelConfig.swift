import Foundation

/// How RoPE frequencies are rescaled for long contexts.
public enum RopeScaling: Sendable, Equatable {
    case none
    case linear(factor: Double)
    /// LLaMA-3.1's wavelength-dependent scaling.
    case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
}

/// The hyper-parameters of a causal LM, from config.json or GGUF metadata.
public struct ModelConfig: Sendable, Equatable {
    public var architecture: String
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    /// The dtype the checkpoint was saved in (`torch_dtype` or `dtype`), informational.
    public var dtype: String?
    /// For a draft model whose vocabulary is a prefix of its LLM's: the id it reads in place of
    /// the LLM's tokens it has no embedding for (`flexserve_draft.oov_input_token_id`; in GGUF,
    /// `flexserve.draft.oov_input_token_id`).
    public var draftOOVTokenID: Int?
    /// Mistral's sliding-window attention: a token sees the keys of the last `slidingWindow` positions (itself included).
    public var slidingWindow: Int? = nil
    /// Every key of config.json as read, for the architecture-specific settings (OPT's `do_layer_norm_before`,
    /// Falcon's `new_decoder_architecture`, MPT's `attn_config`...); for GGUF, the metadata those architectures
    /// need under their config.json names.
    public var raw: [String: ConfigValue] = [:]

    public init(architecture: String, vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int,
                numHeads: Int, numKVHeads: Int, headDim: Int? = nil, rmsNormEps: Float = 1e-5,
                ropeTheta: Double = 10000, ropeScaling: RopeScaling = .none, maxPositionEmbeddings: Int = 2048,
                tieWordEmbeddings: Bool = false, bosTokenID: Int? = nil, eosTokenIDs: [Int] = [], dtype: String? = nil) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headDim = headDim ?? hiddenSize / numHeads
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
        self.dtype = dtype
    }
}

public struct ModelConfigError: Error, CustomStringConvertible, Sendable {
    public let source: String
    public let problem: String
    public var description: String { "\(source): \(problem)" }
}

extension ModelConfig {
    /// Reads a HuggingFace config.json. Keys that moved between transformers versions are
    /// accepted in both spellings (`rope_theta` / `rope_parameters.rope_theta`, `torch_dtype` / `dtype`).
    public init(configJSON path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelConfigError(source: path, problem: "cannot read the file")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelConfigError(source: path, problem: "not a JSON object")
        }
        try self.init(json: json, source: path)
    }

    public init(json original: [String: Any], source: String) throws {
        // GPT-2-style and MPT configs name the common hyper-parameters differently.
        var json = original
        func alias(_ key: String, _ alternatives: [String]) {
            guard json[key] == nil || json[key] is NSNull,
                  let other = alternatives.first(where: { json[$0] is NSNumber }) else { return }
            json[key] = json[other]
        }
        alias("hidden_size", ["n_embd", "d_model"])
        alias("num_attention_heads", ["n_head", "n_heads"])
        alias("num_hidden_layers", ["n_layer", "n_layers"])
        alias("max_position_embeddings", ["n_positions", "max_seq_len"])
        alias("intermediate_size", ["ffn_dim", "n_inner", "ffn_hidden_size"])
        alias("num_key_value_heads", ["num_kv_heads", "n_head_kv"])
        func int(_ key: String) -> Int? { (json[key] as? NSNumber)?.intValue }
        func double(_ key: String) -> Double? { (json[key] as? NSNumber)?.doubleValue }
        func require(_ key: String) throws -> Int {
            guard let v = int(key) else { throw ModelConfigError(source: source, problem: "missing integer '\(key)'") }
            guard v > 0 else { throw ModelConfigError(source: source, problem: "'\(key)' must be positive, is \(v)") }
            return v
        }
        let architectures = json["architectures"] as? [String] ?? []
        let modelType = json["model_type"] as? String ?? ""
        let hidden = try require("hidden_size")
        let heads = try require("num_attention_heads")
        let ropeParameters = json["rope_parameters"] as? [String: Any]
        var theta = double("rope_theta") ?? (ropeParameters?["rope_theta"] as? NSNumber)?.doubleValue ?? 10000
        if theta <= 0 { theta = 10000 }
        let scalingJSON = (json["rope_scaling"] as? [String: Any]) ?? ropeParameters
        var scaling = RopeScaling.none
        if let s = scalingJSON {
            let type = (s["rope_type"] as? String) ?? (s["type"] as? String) ?? "default"
            let factor = (s["factor"] as? NSNumber)?.doubleValue ?? 1
            switch type {
            case "linear": scaling = .linear(factor: factor)
            case "llama3":
                scaling = .llama3(factor: factor,
                                  lowFreqFactor: (s["low_freq_factor"] as? NSNumber)?.doubleValue ?? 1,
                                  highFreqFactor: (s["high_freq_factor"] as? NSNumber)?.doubleValue ?? 4,
                                  originalMaxPositions: (s["original_max_position_embeddings"] as? NSNumber)?.intValue ?? 8192)
            case "default": break
            default: throw ModelConfigError(source: source, problem: "unsupported rope_scaling type '\(type)'")
            }
        }
        var eos: [Int] = []
        if let e = json["eos_token_id"] as? NSNumber { eos = [e.intValue] }
        if let e = json["eos_token_id"] as? [NSNumber] { eos = e.map(\.intValue) }
        self.init(
            architecture: architectures.first ?? modelType,
            vocabSize: try require("vocab_size"),
            hiddenSize: hidden,
            intermediateSize: int("intermediate_size") ?? 4 * hidden,
            numLayers: try require("num_hidden_layers"),
            numHeads: heads,
            numKVHeads: int("num_key_value_heads") ?? heads,
            headDim: int("head_dim"),
            rmsNormEps: Float(double("rms_norm_eps") ?? 1e-6),
            ropeTheta: theta,
            ropeScaling: scaling,
            maxPositionEmbeddings: int("max_position_embeddings") ?? 2048,
            tieWordEmbeddings: json["tie_word_embeddings"] as? Bool ?? false,
            bosTokenID: int("bos_token_id"),
            eosTokenIDs: eos,
            dtype: (json["torch_dtype"] as? String) ?? (json["dtype"] as? String))
        raw = original.mapValues(ConfigValue.init)
        if let window = int("sliding_window"), window > 0, json["use_sliding_window"] as? Bool ?? true {
            slidingWindow = window
        }
        draftOOVTokenID = ((json["flexserve_draft"] as? [String: Any])?["oov_input_token_id"] as? NSNumber)?.intValue
        guard hidden % heads == 0 || int("head_dim") != nil else {
            throw ModelConfigError(source: source, problem: "hidden_size \(hidden) is not divisible by num_attention_heads \(heads)")
        }
        guard numHeads % numKVHeads == 0 else {
            throw ModelConfigError(source: source, problem: "num_attention_heads \(numHeads) is not a multiple of num_key_value_heads \(numKVHeads)")
        }
    }

    /// Reads the hyper-parameters from GGUF metadata (`{arch}.embedding_length` and friends).
    public init(gguf: GGUFFile) throws {
        let m = gguf.metadata
        guard let arch = m["general.architecture"]?.string else {
            throw ModelConfigError(source: gguf.path, problem: "missing general.architecture")
        }
        func require(_ key: String) throws -> Int {
            guard let v = m["\(arch).\(key)"]?.int, v > 0 else {
                throw ModelConfigError(source: gguf.path, problem: "missing or invalid \(arch).\(key)")
            }
            return v
        }
        let hidden = try require("embedding_length")
        let heads = try require("attention.head_count")
        let vocab = m["\(arch).vocab_size"]?.int ?? m["tokenizer.ggml.tokens"]?.array?.count
            ?? gguf.tensorInfos.first { $0.name == "token_embd.weight" }?.shape.first
        guard let vocab else { throw ModelConfigError(source: gguf.path, problem: "cannot tell the vocabulary size") }
        var scaling = RopeScaling.none
        if m["\(arch).rope.scaling.type"]?.string == "linear", let f = m["\(arch).rope.scaling.factor"]?.double {
            scaling = .linear(factor: f)
        }
        var eos: [Int] = []
        if let e = m["tokenizer.ggml.eos_token_id"]?.int { eos.append(e) }
        if let e = m["tokenizer.ggml.eot_token_id"]?.int, !eos.contains(e) { eos.append(e) }
        let headDim = m["\(arch).attention.key_length"]?.int
        self.init(
            architecture: Self.hfArchitecture(gguf: arch),
            vocabSize: vocab,
            hiddenSize: hidden,
            intermediateSize: m["\(arch).feed_forward_length"]?.int ?? 4 * hidden,
            numLayers: try require("block_count"),
            numHeads: heads,
            numKVHeads: m["\(arch).attention.head_count_kv"]?.int ?? heads,
            headDim: headDim,
            rmsNormEps: Float(m["\(arch).attention.layer_norm_rms_epsilon"]?.double ?? 1e-5),
            ropeTheta: m["\(arch).rope.freq_base"]?.double ?? 10000,
            ropeScaling: scaling,
            maxPositionEmbeddings: m["\(arch).context_length"]?.int ?? 2048,
            tieWordEmbeddings: !gguf.hasTensor("output.weight"),
            bosTokenID: m["tokenizer.ggml.bos_token_id"]?.int,
            eosTokenIDs: eos,
            dtype: nil)
        raw = Self.ggufArchitectureSettings(arch, gguf)
        // A draft model exported as GGUF (tools/distill/export.py) names its OOV input id here.
        draftOOVTokenID = m[Self.ggufDraftOOVKey]?.int
    }

    /// GGUF metadata key of `draftOOVTokenID` (config.json: `flexserve_draft.oov_input_token_id`).
    public static let ggufDraftOOVKey = "flexserve.draft.oov_input_token_id"

    static func hfArchitecture(gguf arch: String) -> String {
        switch arch {
        case "llama": return "LlamaForCausalLM"
        case "mistral": return "MistralForCausalLM"
        case "qwen2": return "Qwen2ForCausalLM"
        case "falcon": return "FalconForCausalLM"
        case "starcoder": return "GPTBigCodeForCausalLM"
        case "mpt": return "MPTForCausalLM"
        default: return arch
        }
    }
}

/// A config.json value, kept for the settings only some architectures have.
public enum ConfigValue: Sendable, Equatable {
    case number(Double), bool(Bool), string(String), array([ConfigValue]), object([String: ConfigValue]), null

    public init(_ any: Any) {
        switch any {
        case let s as String: self = .string(s)
        case let n as NSNumber:
            #if canImport(Darwin)
            if CFGetTypeID(n) == CFBooleanGetTypeID() { self = .bool(n.boolValue); return }
            #endif
            self = .number(n.doubleValue)
        case let b as Bool: self = .bool(b)
        case let a as [Any]: self = .array(a.map(ConfigValue.init))
        case let o as [String: Any]: self = .object(o.mapValues(ConfigValue.init))
        default: self = .null
        }
    }

    public var double: Double? {
        switch self {
        case .number(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
    public var int: Int? { double.map { Int($0) } }
    /// JSON true/false (numbers count as true when non-zero: Foundation may read booleans as numbers).
    public var bool: Bool? { double.map { $0 != 0 } }
    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var object: [String: ConfigValue]? { if case .object(let o) = self { return o } else { return nil } }
}

extension ModelConfig {
    /// The config.json settings of Falcon, StarCoder and MPT that llama.cpp keeps in GGUF metadata or implies.
    static func ggufArchitectureSettings(_ arch: String, _ gguf: GGUFFile) -> [String: ConfigValue] {
        let m = gguf.metadata
        let heads = m["\(arch).attention.head_count"]?.int ?? 1
        let kvHeads = m["\(arch).attention.head_count_kv"]?.int ?? heads
        var raw: [String: ConfigValue] = [:]
        if let eps = m["\(arch).attention.layer_norm_epsilon"]?.double { raw["layer_norm_epsilon"] = .number(eps) }
        if let ffn = m["\(arch).feed_forward_length"]?.int { raw["ffn_hidden_size"] = .number(Double(ffn)); raw["n_inner"] = .number(Double(ffn)) }
        switch arch {
        case "falcon":
            // llama.cpp's Falcon is always parallel with RoPE; the 40B layout is told by its second norm.
            raw["new_decoder_architecture"] = .bool(gguf.hasTensor("blk.0.attn_norm_2.weight"))
            raw["num_kv_heads"] = .number(Double(kvHeads))
            raw["multi_query"] = .bool(kvHeads == 1)
            raw["parallel_attn"] = .bool(true)
            raw["alibi"] = .bool(false)
        case "starcoder":
            raw["multi_query"] = .bool(kvHeads == 1)
        case "mpt":
            var attention: [String: ConfigValue] = ["alibi": .bool(true)]
            if let b = m["mpt.attention.max_alibi_bias"]?.double { attention["alibi_bias_max"] = .number(b) }
            if let c = m["mpt.attention.clamp_kqv"]?.double, c > 0 { attention["clip_qkv"] = .number(c) }
            raw["attn_config"] = .object(attention)
        default: break
        }
        return raw
    }
}
