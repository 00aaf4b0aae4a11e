import FlexServe
@testable import FlexServeHub
import Foundation
import XCTest

final class HubDownloadTests: XCTestCase {
    var hub: FakeHub!
    var cacheDir: URL!

    override func setUpWithError() throws {
        hub = FakeHub()
        hub.add(FakeHub.tinyModel)
        hub.add(FakeHub.shardedModel)
        hub.add(FakeHub.ggufModel)
        try hub.start()
        cacheDir = FileManager.default.temporaryDirectory.appendingPathComponent("flexserve-hub-\(UUID().uuidString)", isDirectory: true)
    }

    override func tearDownWithError() throws {
        hub.stop()
        try? FileManager.default.removeItem(at: cacheDir)
    }

    func config(token: String? = nil, offline: Bool = false, attempts: Int = 5) -> HubConfiguration {
        HubConfiguration(
            endpoint: hub.endpoint, token: token, offline: offline, cache: HubCache(root: cacheDir),
            maxAttempts: attempts, retryDelay: 0, readTimeout: 10)
    }

    func withDownloader<T>(_ c: HubConfiguration, _ body: (HubDownloader) async throws -> T) async throws -> T {
        let d = HubDownloader(configuration: c)
        do {
            let r = try await body(d)
            try await d.shutdown()
            return r
        } catch {
            try? await d.shutdown()
            throw error
        }
    }

    func expectError(_ c: HubConfiguration, _ id: String, revision: String = "main", ggufFile: String? = nil) async -> HubError? {
        do {
            _ = try await withDownloader(c) { try await $0.download(id, revision: revision, ggufFile: ggufFile) }
            XCTFail("download of \(id) should have failed")
            return nil
        } catch let e as HubError {
            return e
        } catch {
            XCTFail("unexpected error \(error)")
            return nil
        }
    }

    var repoDir: URL { cacheDir.appendingPathComponent("models--flex-test--tiny-model") }

    func blobNames() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: repoDir.appendingPathComponent("blobs").path))?.sorted() ?? []
    }

    // MARK: -

    func testFreshDownloadWritesHFCacheLayout() async throws {
        let r = try await withDownloader(config(token: "secret")) { try await $0.download("flex-test/tiny-model") }
        let repo = FakeHub.tinyModel
        XCTAssertFalse(r.fromCache)
        XCTAssertEqual(r.commit, repo.commit)
        XCTAssertEqual(r.folder.standardizedFileURL.path, repoDir.appendingPathComponent("snapshots/\(repo.commit)").standardizedFileURL.path)
        XCTAssertEqual(r.modelPath, r.folder)
        // only what serving needs
        XCTAssertEqual(HubCache.files(in: r.folder), ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        for f in HubCache.files(in: r.folder) {
            XCTAssertEqual(try Data(contentsOf: r.folder.appendingPathComponent(f)), Data(repo.files[f]!), f)
        }
        // snapshot entries are relative symlinks into ../../blobs, blobs are named by etag
        let fm = FileManager.default
        let sha = FakeHub.sha256Hex(repo.files["model.safetensors"]!)
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: r.folder.appendingPathComponent("model.safetensors").path), "../../blobs/\(sha)")
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: r.folder.appendingPathComponent("config.json").path),
                       "../../blobs/\(FakeHub.gitID(repo.files["config.json"]!))")
        XCTAssertTrue(blobNames().contains(sha))
        XCTAssertFalse(blobNames().contains { $0.hasSuffix(".incomplete") })
        XCTAssertEqual(try String(contentsOf: repoDir.appendingPathComponent("refs/main"), encoding: .utf8), repo.commit)
        XCTAssertEqual(r.downloadedBytes, Int64(repo.files.filter { r.files.contains($0.key) }.values.map(\.count).reduce(0, +)))

        // the protocol: model info, HEAD + 302 to the CDN with X-Linked-Etag, GET on the CDN without the token
        let log = hub.log
        XCTAssertEqual(log.first?.path, "/api/models/flex-test/tiny-model/revision/main")
        XCTAssertEqual(log.first?.header("Authorization"), "Bearer secret")
        let cdn = log.filter { $0.path.hasPrefix("/cdn-lfs/") }
        XCTAssertEqual(cdn.count, 1)
        XCTAssertEqual(cdn.first?.method, "GET")
        XCTAssertNil(cdn.first?.header("Authorization"), "the token must not be sent to the CDN")
        XCTAssertTrue(log.contains { $0.method == "HEAD" && $0.path == "/flex-test/tiny-model/resolve/\(repo.commit)/model.safetensors" })
        XCTAssertFalse(log.contains { $0.path.hasSuffix("pytorch_model.bin") || $0.path.hasSuffix("README.md") })

        // the core library finds it by id
        let resolved = try HubCache.resolveModel("flex-test/tiny-model", cacheFolder: cacheDir.path)
        XCTAssertEqual(resolved.standardizedFileURL.path, r.folder.standardizedFileURL.path)
    }

    func testResumeAfterConnectionCut() async throws {
        let content = FakeHub.tinyModel.files["model.safetensors"]!
        hub.cutOnce = ["model.safetensors": 70_000]
        // one attempt only: the cut fails the run and leaves the partial file
        let e = await expectError(config(attempts: 1), "flex-test/tiny-model")
        guard case .transfer(let file, _, _) = e else { return XCTFail("expected a transfer error, got \(String(describing: e))") }
        XCTAssertEqual(file, "model.safetensors")
        let sha = FakeHub.sha256Hex(content)
        let partial = repoDir.appendingPathComponent("blobs/\(sha).incomplete")
        // what arrived before the cut is kept (all 70000 bytes unless the client dropped some in flight)
        let kept = fileSize(partial.path) ?? 0
        XCTAssertGreaterThan(kept, 0)
        XCTAssertLessThanOrEqual(kept, 70_000)
        XCTAssertNil(try? HubCache.resolveModel("flex-test/tiny-model", cacheFolder: cacheDir.path), "an interrupted model is not complete")

        // the next run resumes with a Range request
        hub.clearLog()
        let r = try await withDownloader(config()) { try await $0.download("flex-test/tiny-model") }
        let gets = hub.log.filter { $0.path.hasPrefix("/cdn-lfs/") }
        XCTAssertEqual(gets.count, 1)
        XCTAssertEqual(gets.first?.header("Range"), "bytes=\(kept)-")
        XCTAssertEqual(r.downloadedBytes, Int64(content.count) - kept)
        XCTAssertEqual(try Data(contentsOf: r.folder.appendingPathComponent("model.safetensors")), Data(content))
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial.path))
    }

    func testCutWithinOneRunRetriesAndResumes() async throws {
        hub.cutOnce = ["model.safetensors": 123_456]
        let r = try await withDownloader(config()) { try await $0.download("flex-test/tiny-model") }
        let gets = hub.log.filter { $0.path.hasPrefix("/cdn-lfs/") }
        XCTAssertEqual(gets.count, 2)
        XCTAssertNil(gets.first?.header("Range"))
        // the retry asks for the rest, from what had been written (123456 bytes unless some were in flight)
        let resumedAt = gets.last?.header("Range").flatMap { Int($0.dropFirst(6).dropLast()) } ?? 0
        XCTAssertGreaterThan(resumedAt, 0)
        XCTAssertLessThanOrEqual(resumedAt, 123_456)
        XCTAssertEqual(try Data(contentsOf: r.folder.appendingPathComponent("model.safetensors")), Data(FakeHub.tinyModel.files["model.safetensors"]!))
    }

    func testCorruptFileFailsAndLeavesNoHalfFile() async throws {
        hub.corrupt = ["model.safetensors"]
        let e = await expectError(config(), "flex-test/tiny-model")
        guard case .checksumMismatch(let file, let expected, let actual) = e else { return XCTFail("expected a checksum error, got \(String(describing: e))") }
        XCTAssertEqual(file, "model.safetensors")
        XCTAssertEqual(expected, FakeHub.sha256Hex(FakeHub.tinyModel.files["model.safetensors"]!))
        XCTAssertNotEqual(expected, actual)
        XCTAssertTrue(e!.description.contains("sha256"))
        let sha = expected
        XCTAssertFalse(blobNames().contains(sha))
        XCTAssertFalse(blobNames().contains { $0.hasSuffix(".incomplete") }, "no half file may remain: \(blobNames())")
        let snap = repoDir.appendingPathComponent("snapshots/\(FakeHub.tinyModel.commit)/model.safetensors")
        XCTAssertNil(try? FileManager.default.attributesOfItem(atPath: snap.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: repoDir.appendingPathComponent("refs/main").path))
        XCTAssertThrowsError(try HubCache.resolveModel("flex-test/tiny-model", cacheFolder: cacheDir.path))

        // once the hub serves the right bytes, a new run completes
        hub.corrupt = []
        let r = try await withDownloader(config()) { try await $0.download("flex-test/tiny-model") }
        XCTAssertEqual(try Data(contentsOf: r.folder.appendingPathComponent("model.safetensors")), Data(FakeHub.tinyModel.files["model.safetensors"]!))
    }

    func testAuthFailureSaysToSetHFToken() async throws {
        hub.requiredToken = "hf_secret"
        let e = await expectError(config(), "flex-test/tiny-model")
        guard case .authentication(_, let status, let sent, _, _) = e else { return XCTFail("expected an auth error, got \(String(describing: e))") }
        XCTAssertEqual(status, 401)
        XCTAssertFalse(sent)
        XCTAssertTrue(e!.description.contains("HF_TOKEN"), e!.description)
        XCTAssertTrue(e!.description.contains("401"))

        let wrong = await expectError(config(token: "hf_wrong"), "flex-test/tiny-model")
        XCTAssertTrue(wrong?.description.contains("HF_TOKEN") ?? false)
        guard case .authentication(_, _, true, _, _) = wrong else { return XCTFail("expected an auth error with a token sent") }

        let r = try await withDownloader(config(token: "hf_secret")) { try await $0.download("flex-test/tiny-model") }
        XCTAssertEqual(r.commit, FakeHub.tinyModel.commit)
    }

    func testOfflineUsesOnlyTheCache() async throws {
        let e = await expectError(config(offline: true), "flex-test/tiny-model")
        guard case .offlineNotCached = e else { return XCTFail("expected offlineNotCached, got \(String(describing: e))") }
        XCTAssertTrue(e!.description.contains("HF_HUB_OFFLINE"))
        XCTAssertTrue(hub.log.isEmpty, "offline mode made requests")

        _ = try await withDownloader(config()) { try await $0.download("flex-test/tiny-model") }
        hub.clearLog()
        let r = try await withDownloader(config(offline: true)) { try await $0.download("flex-test/tiny-model", force: true) }
        XCTAssertTrue(r.fromCache)
        XCTAssertTrue(hub.log.isEmpty)

        // the environment switch
        let env = ["HF_HUB_OFFLINE": "1", "HF_ENDPOINT": hub.endpoint + "/", "HF_TOKEN": "t", "HOME": "/nonexistent"]
        let c = HubConfiguration.fromEnvironment(cacheFolder: cacheDir.path, environment: env)
        XCTAssertTrue(c.offline)
        XCTAssertEqual(c.endpoint, hub.endpoint)
        XCTAssertEqual(c.token, "t")
        XCTAssertFalse(HubConfiguration.fromEnvironment(environment: ["HF_HUB_OFFLINE": "0", "HOME": "/nonexistent"]).offline)
    }

    func testModelDownloadedByHFToolsIsUsedWithoutRequests() async throws {
        // lay out the cache the way huggingface_hub does, for a model the fake hub doesn't even know
        let fm = FileManager.default
        let repo = cacheDir.appendingPathComponent("models--other-org--cached-model")
        let commit = "abcdefabcdefabcdefabcdefabcdefabcdefabcd"
        let snap = repo.appendingPathComponent("snapshots/\(commit)")
        try fm.createDirectory(at: snap, withIntermediateDirectories: true)
        try fm.createDirectory(at: repo.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try fm.createDirectory(at: repo.appendingPathComponent("refs"), withIntermediateDirectories: true)
        for (name, content) in [("config.json", "{}"), ("tokenizer.json", "{}"), ("model.safetensors", "weights")] {
            let etag = FakeHub.sha256Hex(Array(content.utf8))
            try Data(content.utf8).write(to: repo.appendingPathComponent("blobs/\(etag)"))
            try fm.createSymbolicLink(atPath: snap.appendingPathComponent(name).path, withDestinationPath: "../../blobs/\(etag)")
        }
        try Data(commit.utf8).write(to: repo.appendingPathComponent("refs/main"))

        let r = try await withDownloader(config()) { try await $0.download("other-org/cached-model") }
        XCTAssertTrue(r.fromCache)
        XCTAssertEqual(r.commit, commit)
        XCTAssertEqual(r.folder.standardizedFileURL.path, snap.standardizedFileURL.path)
        XCTAssertTrue(hub.log.isEmpty, "a cached model made \(hub.log.count) request(s)")
        // by commit hash too
        let byCommit = try await withDownloader(config()) { try await $0.download("other-org/cached-model", revision: commit) }
        XCTAssertTrue(byCommit.fromCache)
        XCTAssertTrue(hub.log.isEmpty)
        // and the core library's lookup
        XCTAssertEqual(try HubCache.resolveModel("other-org/cached-model", cacheFolder: cacheDir.path).standardizedFileURL.path, snap.standardizedFileURL.path)
        XCTAssertEqual(try HubCache.resolveModel("other-org/cached-model", revision: commit, cacheFolder: cacheDir.path).standardizedFileURL.path, snap.standardizedFileURL.path)

        // a second download of a model we fetched makes no request either
        _ = try await withDownloader(config()) { try await $0.download("flex-test/tiny-model") }
        hub.clearLog()
        let again = try await withDownloader(config()) { try await $0.download("flex-test/tiny-model") }
        XCTAssertTrue(again.fromCache)
        XCTAssertTrue(hub.log.isEmpty)
        // --force asks the hub but transfers nothing (the blobs are there)
        let forced = try await withDownloader(config()) { try await $0.download("flex-test/tiny-model", force: true) }
        XCTAssertFalse(forced.fromCache)
        XCTAssertEqual(forced.downloadedBytes, 0)
        XCTAssertFalse(hub.log.contains { $0.path.hasPrefix("/cdn-lfs/") })
    }

    func testUnknownModelRevisionAndFile() async throws {
        let e1 = await expectError(config(), "flex-test/nope")
        guard case .modelNotFound = e1 else { return XCTFail("got \(String(describing: e1))") }
        XCTAssertTrue(e1!.description.contains("unknown model 'flex-test/nope'"))
        let e2 = await expectError(config(), "flex-test/tiny-model", revision: "v9")
        guard case .revisionNotFound(_, "v9", _) = e2 else { return XCTFail("got \(String(describing: e2))") }
        let e3 = await expectError(config(), "flex-test/tiny-gguf", ggufFile: "missing.gguf")
        guard case .fileNotFound(_, _, "missing.gguf", _) = e3 else { return XCTFail("got \(String(describing: e3))") }
        let e4 = await expectError(config(), "not a model id")
        guard case .invalidModelID = e4 else { return XCTFail("got \(String(describing: e4))") }
    }

    func testShardedSafetensorsFollowTheIndex() async throws {
        let r = try await withDownloader(config()) { try await $0.download("flex-test/sharded") }
        XCTAssertEqual(HubCache.files(in: r.folder), [
            "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json",
        ])
        XCTAssertFalse(hub.log.contains { $0.path.contains("consolidated") })
        XCTAssertNotNil(HubCache(root: cacheDir).completeSnapshot("flex-test/sharded"))
    }

    func testGGUFChoice() async throws {
        let e = await expectError(config(), "flex-test/tiny-gguf")
        guard case .ggufChoiceNeeded(_, let available) = e else { return XCTFail("got \(String(describing: e))") }
        XCTAssertEqual(available, ["tiny-Q4_1.gguf", "tiny-Q8_0.gguf"])
        let r = try await withDownloader(config()) { try await $0.download("flex-test/tiny-gguf", ggufFile: "tiny-Q4_1.gguf") }
        XCTAssertEqual(HubCache.files(in: r.folder), ["tiny-Q4_1.gguf"])
        XCTAssertEqual(r.modelPath.lastPathComponent, "tiny-Q4_1.gguf")
        XCTAssertEqual(try HubCache.resolveModel("flex-test/tiny-gguf", cacheFolder: cacheDir.path).lastPathComponent, "tiny-Q4_1.gguf")
        hub.clearLog()
        let again = try await withDownloader(config()) { try await $0.download("flex-test/tiny-gguf", ggufFile: "tiny-Q4_1.gguf") }
        XCTAssertTrue(again.fromCache)
        XCTAssertTrue(hub.log.isEmpty)
    }
}
