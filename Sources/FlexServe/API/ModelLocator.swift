import Foundation

/// Turns what a user passes as a model (a folder, a `.gguf` file, or a hub id such as
/// `HuggingFaceTB/SmolLM2-135M-Instruct`) into a local path.
public enum ModelLocator {
    public static func resolve(_ model: String) throws -> String {
        let expanded = (model as NSString).expandingTildeInPath
        if FileManager.default.fileExists(atPath: expanded) { return expanded }
        if HubCache.isRepoID(model) {
            let snapshot = try HubCache().snapshot(model)
            // A snapshot holding a single GGUF file (and no config.json) is served from that file.
            let files = HubCache.files(in: snapshot)
            if !files.contains("config.json"), let gguf = files.first(where: { $0.hasSuffix(".gguf") }) {
                return snapshot.appendingPathComponent(gguf).path
            }
            return snapshot.path
        }
        throw GenerationError.invalidSetting("model not found: '\(model)' is not a folder, a .gguf file or a hub id")
    }
}
