import AsyncHTTPClient
import Crypto
import FlexServe
import Foundation
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Model info from `GET {endpoint}/api/models/{id}/revision/{revision}`.
public struct HubModelInfo: Decodable, Sendable, Equatable {
    public struct Sibling: Decodable, Sendable, Equatable {
        public struct LFS: Decodable, Sendable, Equatable {
            public var sha256: String?
            public var size: Int64?
        }
        public var rfilename: String
        public var size: Int64?
        public var lfs: LFS?
    }
    public var id: String?
    public var sha: String?
    public var siblings: [Sibling]?
    public var gated: Gated?

    /// `gated` is `false` or a string ("auto"/"manual").
    public enum Gated: Decodable, Sendable, Equatable {
        case no, yes(String)
        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = b ? .yes("true") : .no } else { self = .yes((try? c.decode(String.self)) ?? "true") }
        }
    }

    public var fileNames: [String] { (siblings ?? []).map(\.rfilename) }
}

/// What `HubDownloader.download` produced.
public struct HubDownloadResult: Sendable, Equatable {
    public var id: String
    public var revision: String
    public var commit: String
    /// `snapshots/<commit>` in the cache.
    public var folder: URL
    /// Files (relative to `folder`) that serving uses.
    public var files: [String]
    /// True when the cache already held everything and no request was made.
    public var fromCache: Bool
    /// Bytes transferred in this call.
    public var downloadedBytes: Int64
    /// The model path to hand to `LLM(...)`: the folder, or the .gguf file for a GGUF download.
    public var modelPath: URL
}

/// Metadata of one file from `HEAD {endpoint}/{id}/resolve/{revision}/{file}`.
public struct HubFileMetadata: Sendable, Equatable {
    public var commit: String?
    /// Normalized ETag: the sha256 of the content for LFS files (`X-Linked-Etag`), the git blob id otherwise.
    public var etag: String
    public var size: Int64?
    /// Where to GET the content (the CDN location for LFS files).
    public var downloadURL: String
    /// Whether the etag is a sha256 of the content (LFS), so the download can be checked against it.
    public var isSHA256: Bool
}

/// Downloads models from a HuggingFace-compatible hub into the HuggingFace cache layout,
/// speaking the hub's HTTP protocol: model info (`/api/models/{id}/revision/{rev}`), `HEAD`
/// then `GET` of `/{id}/resolve/{rev}/{file}` with manual redirects (so `X-Repo-Commit`,
/// `X-Linked-Etag` and `X-Linked-Size` of the hub's 302 are seen, and the token never goes to
/// the CDN), resumes with `Range` from `blobs/<etag>.incomplete`, and checks sizes and sha256.
public final class HubDownloader: @unchecked Sendable {
    public let configuration: HubConfiguration
    public var progress: HubProgressReporter?
    let client: HTTPClient
    let ownsClient: Bool
    let endpointHost: String?
    let endpointPort: Int?

    /// Files that serving needs besides the weights (those the repository has).
    public static let servingFiles = [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "chat_template.jinja",
    ]
    public static let safetensorsIndex = "model.safetensors.index.json"

    public init(configuration: HubConfiguration = .fromEnvironment(), progress: HubProgressReporter? = nil, client: HTTPClient? = nil) {
        self.configuration = configuration
        self.progress = progress
        if let client {
            self.client = client
            ownsClient = false
        } else {
            let timeout = HTTPClient.Configuration.Timeout(
                connect: .seconds(30), read: .milliseconds(Int64(configuration.readTimeout * 1000)))
            let config = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: timeout, decompression: .disabled)
            self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
            ownsClient = true
        }
        let u = URL(string: configuration.endpoint)
        endpointHost = u?.host?.lowercased()
        endpointPort = u?.port
    }

    private let stateLock = NSLock()
    private var isShutDown = false

    deinit {
        if ownsClient && !isShutDown { client.shutdown { _ in } }
    }

    /// Closes the HTTP client (call when done).
    public func shutdown() async throws {
        let first: Bool = stateLock.withLock {
            defer { isShutDown = true }
            return !isShutDown
        }
        if ownsClient && first { try await client.shutdown() }
    }

    // MARK: - whole models

    /// Downloads what serving needs of model `id` at `revision` (config, generation config,
    /// tokenizer files, chat template, and safetensors weights — or the one GGUF file `ggufFile`)
    /// and returns its snapshot folder. A complete snapshot already in the cache is returned at
    /// once without any request (unless `force`). Offline, only the cache is used.
    public func download(_ id: String, revision: String = "main", ggufFile: String? = nil, force: Bool = false) async throws -> HubDownloadResult {
        guard HubCache.isRepoID(id) else { throw HubError.invalidModelID(id) }
        let cache = configuration.cache
        if !force || configuration.offline, let folder = cache.completeSnapshot(id, revision: revision, ggufFile: ggufFile) {
            return try cachedResult(id, revision: revision, folder: folder, ggufFile: ggufFile)
        }
        if configuration.offline {
            var detail = "no cached snapshot"
            if let folder = try? cache.snapshot(id, revision: revision) {
                detail = "the cached snapshot lacks " + HubCache.missingServingFiles(in: folder, ggufFile: ggufFile).joined(separator: ", ")
            }
            throw HubError.offlineNotCached(id: id, revision: revision, cacheRoot: cache.root.path, detail: detail)
        }

        let info = try await modelInfo(id, revision: revision)
        let names = info.fileNames
        var plan = try HubDownloader.selectFiles(names, ggufFile: ggufFile, id: id, revision: revision)
        // Resolve by commit when the hub told us one, so that every file comes from the same commit.
        var commit = info.sha.flatMap { HubCache.isCommitHash($0) ? $0 : nil }
        var downloaded: Int64 = 0
        var done: [String] = []

        func fetch(_ file: String) async throws {
            let r = try await downloadFile(id, revision: commit ?? revision, file: file, commit: commit)
            if commit == nil { commit = r.commit }
            downloaded += r.transferred
            done.append(file)
        }
        for f in plan.files { try await fetch(f) }
        if let index = plan.index {
            try await fetch(index)
            let folder = cache.snapshotFolder(id, commit: commit!)
            let shards = try HubDownloader.shards(ofIndex: folder.appendingPathComponent(index))
            for s in shards where !names.contains(s) {
                throw HubError.fileNotFound(id: id, revision: revision, file: s, serverMessage: "named by \(index) but not in the repository")
            }
            plan.files += shards
            for s in shards { try await fetch(s) }
        }
        guard let commit else { throw HubError.invalidResponse(url: configuration.endpoint, reason: "no commit hash (sha / X-Repo-Commit) for \(id)") }
        if revision != commit {
            try writeRef(id, revision: revision, commit: commit)
        }
        let folder = cache.snapshotFolder(id, commit: commit)
        let gguf = ggufFile ?? (plan.index == nil ? done.first(where: { $0.hasSuffix(".gguf") }) : nil)
        return HubDownloadResult(
            id: id, revision: revision, commit: commit, folder: folder, files: done, fromCache: false,
            downloadedBytes: downloaded, modelPath: gguf.map { folder.appendingPathComponent($0) } ?? folder)
    }

    func cachedResult(_ id: String, revision: String, folder: URL, ggufFile: String?) throws -> HubDownloadResult {
        let files = HubCache.files(in: folder)
        for f in files { progress?.finish(file: f, bytes: fileSize(folder.appendingPathComponent(f).path) ?? 0, cached: true) }
        let model = try configuration.cache.resolve(id, revision: revision, ggufFile: ggufFile)
        return HubDownloadResult(
            id: id, revision: revision, commit: folder.lastPathComponent, folder: folder, files: files,
            fromCache: true, downloadedBytes: 0, modelPath: model)
    }

    /// The files to fetch for serving: the small files present, plus the weights: the GGUF file
    /// asked for; else the safetensors index (its shards are read from it after download); else
    /// `model.safetensors` or every top-level `*.safetensors`; else the only `.gguf`.
    public static func selectFiles(_ names: [String], ggufFile: String?, id: String, revision: String) throws -> (files: [String], index: String?) {
        let small = servingFiles.filter { names.contains($0) }
        if let ggufFile {
            guard names.contains(ggufFile) else {
                let available = names.filter { $0.hasSuffix(".gguf") }
                throw HubError.fileNotFound(
                    id: id, revision: revision, file: ggufFile,
                    serverMessage: available.isEmpty ? "the repository has no .gguf files" : "GGUF files: " + available.joined(separator: ", "))
            }
            return (small + [ggufFile], nil)
        }
        if names.contains(safetensorsIndex) { return (small, safetensorsIndex) }
        let rootSafetensors = names.filter { !$0.contains("/") && $0.hasSuffix(".safetensors") }.sorted()
        if rootSafetensors.contains("model.safetensors") { return (small + ["model.safetensors"], nil) }
        if !rootSafetensors.isEmpty { return (small + rootSafetensors, nil) }
        let ggufs = names.filter { $0.hasSuffix(".gguf") }.sorted()
        if ggufs.count == 1 { return (small + ggufs, nil) }
        if ggufs.count > 1 { throw HubError.ggufChoiceNeeded(id: id, available: ggufs) }
        throw HubError.noServingWeights(id: id, revision: revision, files: names)
    }

    /// Shard file names of a safetensors index (`weight_map` values), sorted.
    public static func shards(ofIndex url: URL) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: url.path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let map = obj["weight_map"] as? [String: Any] else {
            throw HubError.invalidResponse(url: url.path, reason: "not a safetensors index (no weight_map)")
        }
        return Set(map.values.compactMap { $0 as? String }).sorted()
    }

    func writeRef(_ id: String, revision: String, commit: String) throws {
        let ref = configuration.cache.refFile(id, revision: revision)
        do {
            try FileManager.default.createDirectory(at: ref.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(commit.utf8).write(to: ref, options: .atomic)
        } catch {
            throw HubError.fileSystem(path: ref.path, reason: error.localizedDescription)
        }
    }

    // MARK: - requests

    static func encodeComponent(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    static func encodePath(_ s: String) -> String {
        s.split(separator: "/", omittingEmptySubsequences: false).map { encodeComponent(String($0)) }.joined(separator: "/")
    }

    public func modelInfoURL(_ id: String, revision: String) -> String {
        "\(configuration.endpoint)/api/models/\(id)/revision/\(HubDownloader.encodeComponent(revision))"
    }

    public func resolveURL(_ id: String, revision: String, file: String) -> String {
        "\(configuration.endpoint)/\(id)/resolve/\(HubDownloader.encodeComponent(revision))/\(HubDownloader.encodePath(file))"
    }

    func isEndpointHost(_ url: String) -> Bool {
        guard let u = URL(string: url), let h = u.host?.lowercased() else { return false }
        return h == endpointHost && u.port == endpointPort
    }

    func request(_ url: String, method: HTTPMethod, range: Int64? = nil) -> HTTPClientRequest {
        var r = HTTPClientRequest(url: url)
        r.method = method
        r.headers.add(name: "User-Agent", value: configuration.userAgent)
        r.headers.add(name: "Accept-Encoding", value: "identity")
        if let token = configuration.token, isEndpointHost(url) {
            r.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        if let range { r.headers.add(name: "Range", value: "bytes=\(range)-") }
        return r
    }

    static func absolute(_ location: String, relativeTo base: String) -> String {
        if let u = URL(string: location), u.scheme != nil { return location }
        guard let b = URL(string: base), let u = URL(string: location, relativeTo: b) else { return location }
        return u.absoluteString
    }

    enum Target {
        case model(id: String, revision: String)
        case file(id: String, revision: String, file: String)
    }

    func statusError(_ response: HTTPClientResponse, url: String, target: Target, body: String?) -> HubError {
        let code = Int(response.status.code)
        let errorCode = response.headers.first(name: "X-Error-Code")
        var message = response.headers.first(name: "X-Error-Message")
        if message == nil, let body, let data = body.data(using: .utf8),
           let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let e = obj["error"] as? String {
            message = e
        }
        if message == nil, let body, !body.isEmpty, body.count < 300 { message = body }
        let id: String
        let revision: String
        switch target {
        case .model(let i, let r): id = i; revision = r
        case .file(let i, let r, _): id = i; revision = r
        }
        switch code {
        case 401, 403:
            if code == 401, errorCode == "RepoNotFound", configuration.token != nil {
                return .modelNotFound(id: id, serverMessage: message)
            }
            return .authentication(
                id: id, status: code, tokenSent: configuration.token != nil,
                gated: errorCode == "GatedRepo" || (message?.lowercased().contains("gated") ?? false), serverMessage: message)
        case 404:
            if errorCode == "RevisionNotFound" { return .revisionNotFound(id: id, revision: revision, serverMessage: message) }
            if case .file(_, _, let file) = target, errorCode != "RepoNotFound" {
                return .fileNotFound(id: id, revision: revision, file: file, serverMessage: message)
            }
            if errorCode == nil, revision != "main", message?.lowercased().contains("revision") ?? false {
                return .revisionNotFound(id: id, revision: revision, serverMessage: message)
            }
            return .modelNotFound(id: id, serverMessage: message)
        default:
            return .httpStatus(status: code, url: url, serverMessage: message)
        }
    }

    func collectText(_ response: HTTPClientResponse) async -> String? {
        guard let buf = try? await response.body.collect(upTo: 1 << 20) else { return nil }
        return String(buffer: buf)
    }

    /// `GET {endpoint}/api/models/{id}/revision/{revision}`.
    public func modelInfo(_ id: String, revision: String = "main") async throws -> HubModelInfo {
        let url = modelInfoURL(id, revision: revision)
        let response = try await withNetworkErrors(url) { try await self.client.execute(self.request(url, method: .GET), timeout: .seconds(120)) }
        guard response.status.code == 200 else {
            throw statusError(response, url: url, target: .model(id: id, revision: revision), body: await collectText(response))
        }
        let body = try await withNetworkErrors(url) { try await response.body.collect(upTo: 64 << 20) }
        do {
            return try JSONDecoder().decode(HubModelInfo.self, from: Data(body.readableBytesView))
        } catch {
            throw HubError.invalidResponse(url: url, reason: "model info is not the expected JSON (\(error))")
        }
    }

    func withNetworkErrors<T>(_ url: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let e as HubError {
            throw e
        } catch {
            throw HubError.transfer(file: url, attempts: 1, underlying: "\(error)")
        }
    }

    /// `HEAD` of the resolve URL, following the hub's own redirects, stopping at the one to the
    /// CDN (for LFS files), collecting `X-Repo-Commit`, `X-Linked-Etag`/`ETag`, `X-Linked-Size`.
    public func fileMetadata(_ id: String, revision: String, file: String) async throws -> HubFileMetadata {
        var url = resolveURL(id, revision: revision, file: file)
        var commit: String?
        var linkedEtag: String?
        var linkedSize: Int64?
        for _ in 0..<10 {
            let response = try await withNetworkErrors(url) { try await self.client.execute(self.request(url, method: .HEAD), timeout: .seconds(120)) }
            _ = try? await response.body.collect(upTo: 1 << 20)
            let h = response.headers
            commit = commit ?? h.first(name: "X-Repo-Commit")
            linkedEtag = linkedEtag ?? h.first(name: "X-Linked-Etag").map(HubDownloader.normalizeEtag)
            linkedSize = linkedSize ?? h.first(name: "X-Linked-Size").flatMap { Int64($0) }
            switch response.status.code {
            case 200..<300:
                guard let etag = linkedEtag ?? h.first(name: "ETag").map(HubDownloader.normalizeEtag), !etag.isEmpty else {
                    throw HubError.invalidResponse(url: url, reason: "no ETag for \(file)")
                }
                let size = linkedSize ?? h.first(name: "Content-Length").flatMap { Int64($0) }
                return HubFileMetadata(commit: commit, etag: etag, size: size, downloadURL: url, isSHA256: HubDownloader.isSHA256(etag))
            case 300..<400:
                guard let location = h.first(name: "Location") else {
                    throw HubError.invalidResponse(url: url, reason: "redirect without Location")
                }
                let next = HubDownloader.absolute(location, relativeTo: url)
                if let etag = linkedEtag {
                    // The hub's redirect to the CDN carries everything we need: GET goes there directly.
                    return HubFileMetadata(commit: commit, etag: etag, size: linkedSize, downloadURL: next, isSHA256: HubDownloader.isSHA256(etag))
                }
                url = next
            default:
                throw statusError(response, url: url, target: .file(id: id, revision: revision, file: file), body: nil)
            }
        }
        throw HubError.invalidResponse(url: url, reason: "too many redirects")
    }

    static func normalizeEtag(_ raw: String) -> String {
        var s = raw.trimmingCharacters(in: .whitespaces)
        if s.hasPrefix("W/") { s.removeFirst(2) }
        return s.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    static func isSHA256(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    // MARK: - one file

    /// Downloads one file of the repository into `blobs/<etag>` (unless there already) and links
    /// `snapshots/<commit>/<file>` to it. Returns the commit and the bytes transferred.
    @discardableResult
    public func downloadFile(_ id: String, revision: String, file: String, commit knownCommit: String? = nil) async throws -> (commit: String, blob: URL, transferred: Int64) {
        let meta = try await fileMetadata(id, revision: revision, file: file)
        guard let commit = knownCommit ?? meta.commit ?? (HubCache.isCommitHash(revision) ? revision : nil) else {
            throw HubError.invalidResponse(url: resolveURL(id, revision: revision, file: file), reason: "no X-Repo-Commit header")
        }
        let fm = FileManager.default
        let blobs = configuration.cache.blobsFolder(id)
        let blob = blobs.appendingPathComponent(meta.etag)
        do { try fm.createDirectory(at: blobs, withIntermediateDirectories: true) } catch {
            throw HubError.fileSystem(path: blobs.path, reason: error.localizedDescription)
        }
        var transferred: Int64 = 0
        if let existing = fileSize(blob.path), meta.size == nil || existing == meta.size! {
            progress?.finish(file: file, bytes: existing, cached: true)
        } else {
            transferred = try await fetchBlob(meta, id: id, revision: revision, file: file, to: blob)
        }
        try link(id, commit: commit, file: file, etag: meta.etag)
        return (commit, blob, transferred)
    }

    func link(_ id: String, commit: String, file: String, etag: String) throws {
        let fm = FileManager.default
        let target = configuration.cache.snapshotFolder(id, commit: commit).appendingPathComponent(file)
        let depth = file.split(separator: "/").count - 1
        let relative = String(repeating: "../", count: 2 + depth) + "blobs/" + etag
        do {
            try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            if (try? fm.destinationOfSymbolicLink(atPath: target.path)) == relative { return }
            if (try? fm.attributesOfItem(atPath: target.path)) != nil { try fm.removeItem(at: target) }
            try fm.createSymbolicLink(atPath: target.path, withDestinationPath: relative)
        } catch {
            throw HubError.fileSystem(path: target.path, reason: error.localizedDescription)
        }
    }

    /// GETs the content into `<blob>.incomplete`, resuming with `Range`, retrying network
    /// failures, then checks size and sha256 and moves it to `blob`. A failed check removes the
    /// partial file. Returns the bytes transferred.
    func fetchBlob(_ meta: HubFileMetadata, id: String, revision: String, file: String, to blob: URL) async throws -> Int64 {
        let fm = FileManager.default
        let partial = URL(fileURLWithPath: blob.path + ".incomplete")
        var transferred: Int64 = 0
        var attempt = 0
        var delay = configuration.retryDelay
        var lastError = ""
        transfer: while true {
            attempt += 1
            if attempt > configuration.maxAttempts {
                throw HubError.transfer(file: file, attempts: configuration.maxAttempts, underlying: lastError)
            }
            if attempt > 1 {
                progress?.note("\(file): \(lastError); retrying (\(attempt)/\(configuration.maxAttempts))")
                if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay * 1e9)) }
                delay *= 2
            }
            var have = fileSize(partial.path) ?? 0
            if let size = meta.size {
                if have == size && have > 0 { break transfer }
                if have > size { try? fm.removeItem(at: partial); have = 0 }
            }
            do {
                let (response, url) = try await getFollowingRedirects(meta.downloadURL, range: have > 0 ? have : nil, file: file)
                let code = response.status.code
                var offset: Int64
                switch code {
                case 206:
                    offset = have
                    if let cr = response.headers.first(name: "Content-Range"), let start = HubDownloader.contentRangeStart(cr), start != have {
                        _ = try? await response.body.collect(upTo: 0)
                        try? fm.removeItem(at: partial)
                        lastError = "the server resumed at byte \(start) instead of \(have)"
                        continue transfer
                    }
                case 200:
                    offset = 0
                case 416:
                    _ = try? await response.body.collect(upTo: 1 << 16)
                    if let size = meta.size, have == size { break transfer }
                    try? fm.removeItem(at: partial)
                    lastError = "the server refused to resume (HTTP 416)"
                    continue transfer
                case 500..<600, 408, 429:
                    _ = try? await response.body.collect(upTo: 1 << 16)
                    lastError = "HTTP \(code) from \(url)"
                    continue transfer
                default:
                    throw statusError(response, url: url, target: .file(id: id, revision: revision, file: file), body: await collectText(response))
                }
                if offset == 0 {
                    guard fm.createFile(atPath: partial.path, contents: nil) else {
                        throw HubError.fileSystem(path: partial.path, reason: "cannot create file")
                    }
                }
                guard let handle = FileHandle(forWritingAtPath: partial.path) else {
                    throw HubError.fileSystem(path: partial.path, reason: "cannot open for writing")
                }
                defer { try? handle.close() }
                _ = try handle.seekToEnd()
                var completed = offset
                progress?.start(file: file, total: meta.size, resumedAt: offset)
                do {
                    for try await chunk in response.body {
                        try chunk.withUnsafeReadableBytes { raw in
                            try HubDownloader.writeAll(handle.fileDescriptor, raw, path: partial.path)
                        }
                        completed += Int64(chunk.readableBytes)
                        transferred += Int64(chunk.readableBytes)
                        progress?.advance(file: file, completed: completed)
                    }
                } catch let e as HubError {
                    throw e
                } catch {
                    lastError = "connection lost at byte \(completed) (\(error))"
                    continue transfer
                }
                if let size = meta.size, completed < size {
                    lastError = "transfer ended at byte \(completed) of \(size)"
                    continue transfer
                }
                break transfer
            } catch let e as HubError {
                if case .transfer(_, _, let underlying) = e {
                    lastError = underlying
                    continue transfer
                }
                throw e
            }
        }
        // verify
        let actual = fileSize(partial.path) ?? 0
        if let size = meta.size, actual != size {
            try? fm.removeItem(at: partial)
            throw HubError.sizeMismatch(file: file, expected: size, actual: actual)
        }
        if meta.isSHA256 {
            progress?.note("\(file): checking sha256")
            let digest = try HubDownloader.sha256Hex(ofFile: partial)
            if digest != meta.etag {
                try? fm.removeItem(at: partial)
                throw HubError.checksumMismatch(file: file, expected: meta.etag, actual: digest)
            }
        }
        do {
            if fm.fileExists(atPath: blob.path) { try fm.removeItem(at: blob) }
            try fm.moveItem(at: partial, to: blob)
        } catch {
            throw HubError.fileSystem(path: blob.path, reason: error.localizedDescription)
        }
        progress?.finish(file: file, bytes: actual, cached: false)
        return transferred
    }

    /// GET that follows redirects itself (the token only goes to the hub's host).
    func getFollowingRedirects(_ start: String, range: Int64?, file: String) async throws -> (HTTPClientResponse, String) {
        var url = start
        for _ in 0..<10 {
            let response = try await withNetworkErrors(url) {
                try await self.client.execute(self.request(url, method: .GET, range: range), timeout: .hours(24))
            }
            if (300..<400).contains(response.status.code), response.status.code != 304 {
                _ = try? await response.body.collect(upTo: 1 << 16)
                guard let location = response.headers.first(name: "Location") else {
                    throw HubError.invalidResponse(url: url, reason: "redirect without Location")
                }
                url = HubDownloader.absolute(location, relativeTo: url)
                continue
            }
            return (response, url)
        }
        throw HubError.invalidResponse(url: url, reason: "too many redirects")
    }

    static func contentRangeStart(_ header: String) -> Int64? {
        // "bytes 100-199/200"
        let s = header.trimmingCharacters(in: .whitespaces)
        guard s.lowercased().hasPrefix("bytes ") else { return nil }
        let rest = s.dropFirst(6)
        guard let dash = rest.firstIndex(of: "-") else { return nil }
        return Int64(rest[rest.startIndex..<dash].trimmingCharacters(in: .whitespaces))
    }

    static func writeAll(_ fd: Int32, _ raw: UnsafeRawBufferPointer, path: String) throws {
        guard var p = raw.baseAddress else { return }
        var left = raw.count
        while left > 0 {
            let n = write(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                throw HubError.fileSystem(path: path, reason: String(cString: strerror(errno)))
            }
            p += n
            left -= n
        }
    }

    /// Hex sha256 of a file, read in 4 MiB pieces.
    public static func sha256Hex(ofFile url: URL) throws -> String {
        guard let h = FileHandle(forReadingAtPath: url.path) else { throw HubError.fileSystem(path: url.path, reason: "cannot open") }
        defer { try? h.close() }
        var hasher = SHA256()
        while true {
            let d = try h.read(upToCount: 4 << 20) ?? Data()
            if d.isEmpty { break }
            hasher.update(data: d)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// Size of a regular file (symlinks followed), nil if absent or not a regular file.
func fileSize(_ path: String) -> Int64? {
    var st = stat()
    guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
    return Int64(st.st_size)
}
