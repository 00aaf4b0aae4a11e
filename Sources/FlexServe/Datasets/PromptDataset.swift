import Foundation

/// Prompt datasets in FlexFlow's format: a JSON array of strings. Objects with a `"prompt"`
/// (and optionally `"max_new_tokens"`) are accepted too, and so are chat datasets (arrays of
/// `{"role", "content"}` messages), whose prompt is the first user message.
public enum PromptDataset {
    /// One entry of a prompt file.
    public struct Entry: Equatable, Sendable {
        public var prompt: String
        public var maxNewTokens: Int?
        public init(prompt: String, maxNewTokens: Int? = nil) {
            self.prompt = prompt
            self.maxNewTokens = maxNewTokens
        }
    }

    public enum LoadError: Error, CustomStringConvertible, LocalizedError {
        case unreadable(path: String, reason: String)
        case notAnArray(path: String)
        case badEntry(path: String, index: Int, reason: String)
        case notFound(name: String, searched: [String])

        public var description: String {
            switch self {
            case .unreadable(let p, let r): return "cannot read prompt file \(p): \(r)"
            case .notAnArray(let p): return "prompt file \(p) is not a JSON array (expected [\"prompt\", ...] or [{\"prompt\": ..., \"max_new_tokens\": N}, ...])"
            case .badEntry(let p, let i, let r): return "prompt file \(p), entry \(i): \(r)"
            case .notFound(let n, let s): return "no prompt dataset '\(n)' (looked for \(s.joined(separator: ", "))); build the datasets with `flexserve datasets build`"
            }
        }
        public var errorDescription: String? { description }
    }

    /// The prompts of a prompt file.
    public static func load(path: String) throws -> [String] {
        try loadEntries(path: path).map(\.prompt)
    }

    /// The prompts of a prompt file with their per-prompt `max_new_tokens` where given.
    public static func loadEntries(path: String) throws -> [Entry] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw LoadError.unreadable(path: path, reason: error.localizedDescription)
        }
        let value: JSON
        do {
            value = try IncrementalJSONParser.parse(data)
        } catch {
            throw LoadError.unreadable(path: path, reason: "\(error)")
        }
        guard case .array(let items) = value else { throw LoadError.notAnArray(path: path) }
        return try items.enumerated().map { i, item in
            switch item {
            case .string(let s):
                return Entry(prompt: s)
            case .object:
                guard let p = item["prompt"]?.stringValue else {
                    throw LoadError.badEntry(path: path, index: i, reason: "object without a string \"prompt\"")
                }
                var m: Int? = nil
                if let v = item["max_new_tokens"], v != .null {
                    guard let n = v.numberValue, n >= 0, n == n.rounded() else {
                        throw LoadError.badEntry(path: path, index: i, reason: "\"max_new_tokens\" must be a non-negative integer")
                    }
                    m = Int(n)
                }
                return Entry(prompt: p, maxNewTokens: m)
            case .array(let turns):
                // a chat conversation: its first user message
                for t in turns where t["role"]?.stringValue == "user" {
                    if let c = t["content"]?.stringValue { return Entry(prompt: c) }
                }
                throw LoadError.badEntry(path: path, index: i, reason: "conversation without a user message")
            default:
                throw LoadError.badEntry(path: path, index: i, reason: "expected a string or an object with \"prompt\"")
            }
        }
    }

    /// The conversations of a chat dataset (like `sharegpt-chat.json`).
    public static func loadConversations(path: String) throws -> [[ChatTurn]] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw LoadError.unreadable(path: path, reason: error.localizedDescription)
        }
        guard case .array(let items) = try IncrementalJSONParser.parse(data) else { throw LoadError.notAnArray(path: path) }
        return try items.enumerated().map { i, item in
            guard case .array(let turns) = item else { throw LoadError.badEntry(path: path, index: i, reason: "expected an array of messages") }
            return try turns.map { t in
                guard let r = t["role"]?.stringValue, let c = t["content"]?.stringValue else {
                    throw LoadError.badEntry(path: path, index: i, reason: "message without string \"role\" and \"content\"")
                }
                return ChatTurn(role: r, content: c)
            }
        }
    }

    /// The names `datasets build` writes.
    public static let builtinNames = ["sharegpt", "sharegpt-eval", "sharegpt-train", "sharegpt-chat", "humaneval", "shakespeare"]

    /// The file of dataset `nameOrPath`: an existing file as is, else `<directory>/<name>.json`
    /// (directory: `$FLEXSERVE_DATASETS`, else `datasets`).
    public static func locate(_ nameOrPath: String, directory: String? = nil) throws -> URL {
        let fm = FileManager.default
        if fm.fileExists(atPath: nameOrPath) { return URL(fileURLWithPath: nameOrPath) }
        let dir = directory ?? ProcessInfo.processInfo.environment["FLEXSERVE_DATASETS"] ?? "datasets"
        let candidates = [dir + "/" + nameOrPath + ".json", dir + "/" + nameOrPath]
        for c in candidates where fm.fileExists(atPath: c) { return URL(fileURLWithPath: c) }
        throw LoadError.notFound(name: nameOrPath, searched: [nameOrPath] + candidates)
    }

    /// The prompts of a dataset given by name (see `locate`) or path.
    public static func load(named nameOrPath: String, directory: String? = nil) throws -> [String] {
        try load(path: locate(nameOrPath, directory: directory).path)
    }
}
