import Foundation

/// Turns what a user passes as a model (a folder, a `.gguf` file, or a hub id such as
/// `HuggingFaceTB/SmolLM2-135M-Instruct` already in the HuggingFace cache) into a local path.
public enum ModelLocator {
    public static func resolve(_ model: String) throws -> String {
        try HubCache.resolveModel(model).path
    }
}
