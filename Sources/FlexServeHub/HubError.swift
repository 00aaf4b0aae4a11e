import Foundation
import FlexServe

/// Why a hub download failed. Every case says what to do about it.
public enum HubError: Error, CustomStringConvertible, LocalizedError, Equatable {
    case invalidModelID(String)
    /// 401/403: the model is private or gated, or the token is missing/invalid.
    case authentication(id: String, status: Int, tokenSent: Bool, gated: Bool, serverMessage: String?)
    case modelNotFound(id: String, serverMessage: String?)
    case revisionNotFound(id: String, revision: String, serverMessage: String?)
    case fileNotFound(id: String, revision: String, file: String, serverMessage: String?)
    /// The repository holds no weights this engine serves (safetensors or GGUF).
    case noServingWeights(id: String, revision: String, files: [String])
    /// A GGUF-only repository with several files: `--gguf-file` must choose.
    case ggufChoiceNeeded(id: String, available: [String])
    /// HF_HUB_OFFLINE is set and the cache lacks the model.
    case offlineNotCached(id: String, revision: String, cacheRoot: String, detail: String)
    case sizeMismatch(file: String, expected: Int64, actual: Int64)
    case checksumMismatch(file: String, expected: String, actual: String)
    case httpStatus(status: Int, url: String, serverMessage: String?)
    case invalidResponse(url: String, reason: String)
    /// The transfer kept failing (network); the partial file is kept for a later resume.
    case transfer(file: String, attempts: Int, underlying: String)
    case fileSystem(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidModelID(let s):
            return "'\(s)' is not a HuggingFace model id (expected 'org/name')"
        case .authentication(let id, let status, let tokenSent, let gated, let msg):
            var s = "access to model '\(id)' was refused (HTTP \(status)). "
            if gated {
                s += "It is a gated model: accept its license on the model page, then "
                s += tokenSent ? "make sure HF_TOKEN belongs to that account." : "set HF_TOKEN to an access token of that account."
            } else if tokenSent {
                s += "The token in HF_TOKEN (or the HF token file) was rejected or has no access to this model: check it, or check the model id (the hub answers 401 for models that don't exist, too)."
            } else {
                s += "The model is private or gated, or doesn't exist (the hub answers 401 for both): check the id, and set HF_TOKEN to a HuggingFace access token with read access."
            }
            if let msg, !msg.isEmpty { s += " Server said: \(msg)" }
            return s
        case .modelNotFound(let id, let msg):
            return "unknown model '\(id)' on the hub (HTTP 404)" + (msg.map { ": \($0)" } ?? "")
        case .revisionNotFound(let id, let rev, let msg):
            return "model '\(id)' has no revision '\(rev)' (HTTP 404)" + (msg.map { ": \($0)" } ?? "")
        case .fileNotFound(let id, let rev, let file, let msg):
            return "model '\(id)' (revision '\(rev)') has no file '\(file)' (HTTP 404)" + (msg.map { ": \($0)" } ?? "")
        case .noServingWeights(let id, let rev, let files):
            return "model '\(id)' (revision '\(rev)') has no safetensors or GGUF weights (files: \(files.joined(separator: ", ")))"
        case .ggufChoiceNeeded(let id, let available):
            return "model '\(id)' holds several GGUF files; choose one with --gguf-file: \(available.joined(separator: ", "))"
        case .offlineNotCached(let id, let rev, let root, let detail):
            return "HF_HUB_OFFLINE is set and model '\(id)' (revision '\(rev)') is not in the cache at \(root): \(detail). "
                + "Unset HF_HUB_OFFLINE to download it, or point HF_HUB_CACHE/--cache-folder at a cache that holds it."
        case .sizeMismatch(let file, let e, let a):
            return "size check of '\(file)' failed: expected \(e) bytes, got \(a); the partial file was removed"
        case .checksumMismatch(let file, let e, let a):
            return "sha256 check of '\(file)' failed: expected \(e), got \(a); the corrupt file was removed"
        case .httpStatus(let status, let url, let msg):
            return "the hub answered HTTP \(status) for \(url)" + (msg.map { ": \($0)" } ?? "")
        case .invalidResponse(let url, let reason):
            return "unexpected answer from \(url): \(reason)"
        case .transfer(let file, let attempts, let underlying):
            return "downloading '\(file)' failed after \(attempts) attempt(s): \(underlying); run the download again to resume"
        case .fileSystem(let path, let reason):
            return "cannot write \(path): \(reason)"
        }
    }

    public var errorDescription: String? { description }
}
