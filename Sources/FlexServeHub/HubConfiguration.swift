import Foundation
import FlexServe

/// Where and how to talk to a HuggingFace-compatible hub.
public struct HubConfiguration: Sendable {
    /// Base URL of the hub, without a trailing slash (`HF_ENDPOINT`, default https://huggingface.co).
    public var endpoint: String
    /// Access token sent as `Authorization: Bearer` to the endpoint's host only (`HF_TOKEN`).
    public var token: String?
    /// Use only the cache (`HF_HUB_OFFLINE=1`).
    public var offline: Bool
    /// The cache to read and fill.
    public var cache: HubCache
    /// Tries per file before giving up on network errors (each resumes where the last stopped).
    public var maxAttempts: Int
    /// Delay before the first retry, in seconds; doubled after each failure.
    public var retryDelay: Double
    /// Seconds without any byte arriving before a transfer counts as failed.
    public var readTimeout: Double
    public var userAgent: String

    public static let defaultEndpoint = "https://huggingface.co"

    public init(
        endpoint: String = HubConfiguration.defaultEndpoint, token: String? = nil, offline: Bool = false,
        cache: HubCache = HubCache(), maxAttempts: Int = 5, retryDelay: Double = 1, readTimeout: Double = 60,
        userAgent: String = "flexserve/0.1 (huggingface_hub-compatible)"
    ) {
        var e = endpoint
        while e.hasSuffix("/") { e.removeLast() }
        self.endpoint = e
        self.token = token.flatMap { $0.isEmpty ? nil : $0 }
        self.offline = offline
        self.cache = cache
        self.maxAttempts = max(1, maxAttempts)
        self.retryDelay = retryDelay
        self.readTimeout = readTimeout
        self.userAgent = userAgent
    }

    /// Reads `HF_ENDPOINT`, `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`, or the token file
    /// `$HF_TOKEN_PATH` / `$HF_HOME/token` that `huggingface-cli login` writes), `HF_HUB_OFFLINE`,
    /// and the cache location (`cacheFolder`, else `HF_HUB_CACHE` / `HF_HOME`).
    public static func fromEnvironment(
        cacheFolder: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> HubConfiguration {
        let endpoint = environment["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultEndpoint
        var token = environment["HF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["HUGGING_FACE_HUB_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if token == nil {
            let path = environment["HF_TOKEN_PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? HubCache.hfHome(environment: environment) + "/token"
            if let d = FileManager.default.contents(atPath: path),
               let t = String(data: d, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty {
                token = t
            }
        }
        return HubConfiguration(
            endpoint: endpoint, token: token, offline: isTruthy(environment["HF_HUB_OFFLINE"]),
            cache: HubCache(cacheFolder: cacheFolder, environment: environment))
    }

    static func isTruthy(_ v: String?) -> Bool {
        guard let v = v?.trimmingCharacters(in: .whitespaces).uppercased() else { return false }
        return ["1", "ON", "YES", "TRUE"].contains(v)
    }
}

/// Receives download progress; `TerminalProgress` draws bars on a terminal.
public protocol HubProgressReporter: Sendable {
    /// A file transfer starts (`resumedAt` > 0 when continuing a partial file).
    func start(file: String, total: Int64?, resumedAt: Int64)
    /// `completed` bytes of the file are on disk.
    func advance(file: String, completed: Int64)
    /// The file is in the cache (`cached`: it was already there, nothing was transferred).
    func finish(file: String, bytes: Int64, cached: Bool)
    /// A note (retries, verification).
    func note(_ text: String)
}

extension HubProgressReporter {
    public func note(_ text: String) {}
}
