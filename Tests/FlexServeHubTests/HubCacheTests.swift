import FlexServe
import Foundation
import XCTest

final class HubCacheTests: XCTestCase {
    func testCacheRootFollowsHFEnvironment() {
        XCTAssertEqual(HubCache.defaultRoot(environment: ["HOME": "/h"]).path, "/h/.cache/huggingface/hub")
        XCTAssertEqual(HubCache.defaultRoot(environment: ["HOME": "/h", "XDG_CACHE_HOME": "/x"]).path, "/x/huggingface/hub")
        XCTAssertEqual(HubCache.defaultRoot(environment: ["HOME": "/h", "HF_HOME": "/hf"]).path, "/hf/hub")
        XCTAssertEqual(HubCache.defaultRoot(environment: ["HOME": "/h", "HF_HOME": "/hf", "HF_HUB_CACHE": "/c"]).path, "/c")
        XCTAssertEqual(HubCache.defaultRoot(environment: ["HOME": "/h", "HF_HOME": "~/hf"]).path, "/h/hf/hub")
        XCTAssertEqual(HubCache(cacheFolder: "/given", environment: ["HF_HUB_CACHE": "/c"]).root.path, "/given")
        XCTAssertEqual(HubCache.hfHome(environment: ["HOME": "/h"]), "/h/.cache/huggingface")
    }

    func testRepoIDsAndLayout() {
        XCTAssertTrue(HubCache.isRepoID("HuggingFaceTB/SmolLM2-135M-Instruct"))
        XCTAssertTrue(HubCache.isRepoID("gpt2"))
        XCTAssertFalse(HubCache.isRepoID("a/b/c"))
        XCTAssertFalse(HubCache.isRepoID("models/../x"))
        XCTAssertFalse(HubCache.isRepoID("has space/x"))
        XCTAssertFalse(HubCache.isRepoID(""))
        let c = HubCache(root: URL(fileURLWithPath: "/cache"))
        XCTAssertEqual(c.repoFolder("org/name").path, "/cache/models--org--name")
        XCTAssertEqual(c.refFile("org/name", revision: "main").path, "/cache/models--org--name/refs/main")
        XCTAssertEqual(c.snapshotFolder("org/name", commit: "abc").path, "/cache/models--org--name/snapshots/abc")
    }

    func testMissingModelGivesAClearError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flexserve-hubcache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try HubCache.resolveModel("org/absent", cacheFolder: dir.path)) { e in
            guard case HubCacheError.notInCache(let id, let rev, let root) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(id, "org/absent")
            XCTAssertEqual(rev, "main")
            XCTAssertEqual(root, dir.standardizedFileURL.path)
            XCTAssertTrue("\(e)".contains("flexserve download org/absent"))
        }
        XCTAssertThrowsError(try HubCache.resolveModel("not/a/path/nor/id", cacheFolder: dir.path)) { e in
            XCTAssertEqual(e as? HubCacheError, .invalidRepoID("not/a/path/nor/id"))
        }
        // an existing path is returned as is
        XCTAssertEqual(try HubCache.resolveModel(dir.deletingLastPathComponent().path).path, dir.deletingLastPathComponent().path)

        // a snapshot without weights is incomplete
        let cache = HubCache(root: dir)
        let snap = cache.snapshotFolder("org/partial", commit: "c0ffee")
        try FileManager.default.createDirectory(at: snap, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: snap.appendingPathComponent("config.json"))
        try FileManager.default.createDirectory(at: cache.refFile("org/partial", revision: "main").deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("c0ffee\n".utf8).write(to: cache.refFile("org/partial", revision: "main"))
        XCTAssertEqual(cache.commit("org/partial"), "c0ffee")
        XCTAssertNil(cache.completeSnapshot("org/partial"))
        XCTAssertThrowsError(try cache.resolve("org/partial")) { e in
            guard case HubCacheError.incompleteSnapshot = e else { return XCTFail("\(e)") }
        }
        try Data("w".utf8).write(to: snap.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(try cache.resolve("org/partial").standardizedFileURL, snap.standardizedFileURL)
    }
}
