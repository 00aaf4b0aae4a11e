import FlexServe
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A HuggingFace hub look-alike on loopback: `GET /api/models/{id}/revision/{rev}`,
/// `HEAD`/`GET /{id}/resolve/{rev}/{file}` (small files served directly with a git-style ETag,
/// LFS files answered by a 302 with X-Linked-Etag / X-Linked-Size to a CDN-like path on
/// another host name), and `GET /cdn-lfs/{sha256}` with Range support. It can require a
/// token, serve corrupt LFS content, and cut a connection mid-file.
final class FakeHub: @unchecked Sendable {
    struct Repo {
        var id: String
        var commit: String
        var files: [String: [UInt8]]
        var lfs: Set<String>
    }

    struct LoggedRequest {
        var method: String
        var path: String
        var headers: [(String, String)]
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    private let lock = NSLock()
    private var _repos: [String: Repo] = [:]
    private var _log: [LoggedRequest] = []
    var requiredToken: String? { get { locked { _requiredToken } } set { locked { _requiredToken = newValue } } }
    private var _requiredToken: String?
    /// LFS files (by name) served with one byte flipped: their sha256 won't match.
    var corrupt: Set<String> { get { locked { _corrupt } } set { locked { _corrupt = newValue } } }
    private var _corrupt: Set<String> = []
    /// LFS file name → bytes to send before closing the connection, on the next GET only.
    var cutOnce: [String: Int] { get { locked { _cutOnce } } set { locked { _cutOnce = newValue } } }
    private var _cutOnce: [String: Int] = [:]
    /// Host name used in CDN redirects (differs from the endpoint's 127.0.0.1 so that the token must not follow).
    var cdnHost = "localhost"

    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var channel: Channel?
    var port: Int { channel?.localAddress?.port ?? 0 }
    var endpoint: String { "http://127.0.0.1:\(port)" }

    func locked<T>(_ f: () -> T) -> T {
        lock.lock(); defer { lock.unlock() }
        return f()
    }

    var log: [LoggedRequest] { locked { _log } }
    func clearLog() { locked { _log.removeAll() } }

    func add(_ repo: Repo) { locked { _repos[repo.id] = repo } }

    func start() throws {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(hub: self))
                }
            }
        channel = try bootstrap.bind(host: "127.0.0.1", port: 0).wait()
    }

    func stop() {
        try? channel?.close().wait()
        try? group.syncShutdownGracefully()
    }

    static func sha256Hex(_ b: [UInt8]) -> String { PromptDataset.SHA256Digest.hex(b) }
    /// A git-blob-like id (40 hex digits) for small files.
    static func gitID(_ b: [UInt8]) -> String { String(PromptDataset.SHA256Digest.hex(Array("blob \(b.count)\0".utf8) + b).prefix(40)) }

    struct Response {
        var status: HTTPResponseStatus
        var headers: [(String, String)] = []
        var body: [UInt8] = []
        var cutAfter: Int? = nil
    }

    func handle(method: HTTPMethod, uri: String, headers: HTTPHeaders) -> Response {
        let path = String(uri.split(separator: "?", maxSplits: 1).first ?? "")
        locked { _log.append(LoggedRequest(method: method.rawValue, path: path, headers: headers.map { ($0.name, $0.value) })) }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map { $0.removingPercentEncoding ?? String($0) }
        func json(_ status: HTTPResponseStatus, _ obj: Any, _ extra: [(String, String)] = []) -> Response {
            let data = try! JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            return Response(status: status, headers: [("Content-Type", "application/json")] + extra, body: Array(data))
        }
        func authorized() -> Bool {
            guard let t = locked({ _requiredToken }) else { return true }
            return headers.first(name: "Authorization") == "Bearer \(t)"
        }
        func repo(_ org: String, _ name: String) -> Repo? { locked { _repos["\(org)/\(name)"] } }

        // CDN: /cdn-lfs/<sha256>/<file name>
        if parts.count >= 3, parts[0] == "cdn-lfs" {
            let sha = parts[1]
            let name = parts[2...].joined(separator: "/")
            guard let content = locked({ _repos.values.flatMap { r in r.files.filter { r.lfs.contains($0.key) } }.first { FakeHub.sha256Hex($0.value) == sha }?.value }) else {
                return Response(status: .notFound, body: Array("no such object".utf8))
            }
            var bytes = content
            if locked({ _corrupt.contains(name) }), !bytes.isEmpty { bytes[bytes.count / 2] ^= 0xFF }
            var start = 0
            var status = HTTPResponseStatus.ok
            var extra: [(String, String)] = [("ETag", "\"\(sha)\""), ("Accept-Ranges", "bytes")]
            if let range = headers.first(name: "Range"), range.hasPrefix("bytes="), let s = Int(range.dropFirst(6).split(separator: "-").first ?? "") {
                guard s < bytes.count else {
                    return Response(status: .rangeNotSatisfiable, headers: [("Content-Range", "bytes */\(bytes.count)")])
                }
                start = s
                status = .partialContent
                extra.append(("Content-Range", "bytes \(s)-\(bytes.count - 1)/\(bytes.count)"))
            }
            var r = Response(status: status, headers: extra, body: Array(bytes[start...]))
            if method == .GET, let cut = locked({ _cutOnce.removeValue(forKey: name) }) { r.cutAfter = cut }
            return r
        }
        guard authorized() else {
            return json(.unauthorized, ["error": "Invalid credentials in Authorization header"])
        }
        // /api/models/<org>/<name>/revision/<rev>
        if parts.count == 6, parts[0] == "api", parts[1] == "models", parts[4] == "revision" {
            guard let r = repo(parts[2], parts[3]) else {
                return json(.notFound, ["error": "Repository not found"], [("X-Error-Code", "RepoNotFound")])
            }
            guard parts[5] == "main" || parts[5] == r.commit else {
                return json(.notFound, ["error": "Invalid rev id: \(parts[5])"], [("X-Error-Code", "RevisionNotFound")])
            }
            let siblings = r.files.keys.sorted().map { ["rfilename": $0] }
            return json(.ok, ["id": r.id, "sha": r.commit, "siblings": siblings])
        }
        // /<org>/<name>/resolve/<rev>/<file...>
        if parts.count >= 5, parts[2] == "resolve" {
            guard let r = repo(parts[0], parts[1]) else {
                return json(.notFound, ["error": "Repository not found"], [("X-Error-Code", "RepoNotFound")])
            }
            guard parts[3] == "main" || parts[3] == r.commit else {
                return json(.notFound, ["error": "Invalid rev id"], [("X-Error-Code", "RevisionNotFound")])
            }
            let file = parts[4...].joined(separator: "/")
            guard let content = r.files[file] else {
                return json(.notFound, ["error": "Entry not found"], [("X-Error-Code", "EntryNotFound")])
            }
            if r.lfs.contains(file) {
                let sha = FakeHub.sha256Hex(content)
                return Response(status: .found, headers: [
                    ("Location", "http://\(cdnHost):\(port)/cdn-lfs/\(sha)/\(file)?X-Amz-Signature=abc"),
                    ("X-Repo-Commit", r.commit), ("X-Linked-Etag", "\"\(sha)\""), ("X-Linked-Size", "\(content.count)"),
                    ("ETag", "\"\(FakeHub.gitID(Array("pointer \(sha)".utf8)))\""),
                ])
            }
            return Response(status: .ok, headers: [("X-Repo-Commit", r.commit), ("ETag", "\"\(FakeHub.gitID(content))\"")], body: content)
        }
        return Response(status: .notFound, body: Array("not found".utf8))
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let hub: FakeHub
        var head: HTTPRequestHead?
        init(hub: FakeHub) { self.hub = hub }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h
            case .body: break
            case .end:
                guard let h = head else { return }
                let r = hub.handle(method: h.method, uri: h.uri, headers: h.headers)
                var headers = HTTPHeaders(r.headers)
                headers.replaceOrAdd(name: "Content-Length", value: "\(r.body.count)")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: r.status, headers: headers))), promise: nil)
                if h.method == .HEAD {
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                    return
                }
                if let cut = r.cutAfter {
                    let buf = context.channel.allocator.buffer(bytes: r.body.prefix(cut))
                    // close a little later, so that the client has read what was sent (as when a network drops)
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buf)))).whenComplete { _ in
                        context.eventLoop.scheduleTask(in: .milliseconds(200)) { context.close(promise: nil) }
                    }
                    return
                }
                let buf = context.channel.allocator.buffer(bytes: r.body)
                context.write(wrapOutboundOut(.body(.byteBuffer(buf))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

extension FakeHub {
    /// Deterministic pseudo-random bytes.
    static func bytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<n).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    static let tinyModel = Repo(
        id: "flex-test/tiny-model",
        commit: "0123456789abcdef0123456789abcdef01234567",
        files: [
            "config.json": Array(#"{"architectures":["LlamaForCausalLM"],"hidden_size":8,"model_type":"llama"}"#.utf8),
            "generation_config.json": Array(#"{"eos_token_id":2}"#.utf8),
            "tokenizer.json": Array(#"{"model":{"type":"BPE","vocab":{"a":0}}}"#.utf8),
            "tokenizer_config.json": Array(#"{"bos_token":"<s>"}"#.utf8),
            "README.md": Array("# tiny\n".utf8),
            ".gitattributes": Array("*.safetensors filter=lfs\n".utf8),
            "model.safetensors": bytes(200_000, seed: 1),
            "pytorch_model.bin": bytes(50_000, seed: 2),
        ],
        lfs: ["model.safetensors", "pytorch_model.bin"])

    static let shardedModel = Repo(
        id: "flex-test/sharded",
        commit: "1111111111111111111111111111111111111111",
        files: [
            "config.json": Array(#"{"model_type":"llama"}"#.utf8),
            "model.safetensors.index.json": Array(#"{"metadata":{"total_size":120000},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}}"#.utf8),
            "model-00001-of-00002.safetensors": bytes(70_000, seed: 3),
            "model-00002-of-00002.safetensors": bytes(50_000, seed: 4),
            "consolidated.safetensors": bytes(120_000, seed: 5),
        ],
        lfs: ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "consolidated.safetensors"])

    static let ggufModel = Repo(
        id: "flex-test/tiny-gguf",
        commit: "2222222222222222222222222222222222222222",
        files: [
            "README.md": Array("# gguf\n".utf8),
            "tiny-Q4_1.gguf": Array("GGUF".utf8) + bytes(30_000, seed: 6),
            "tiny-Q8_0.gguf": Array("GGUF".utf8) + bytes(40_000, seed: 7),
        ],
        lfs: ["tiny-Q4_1.gguf", "tiny-Q8_0.gguf"])
}
