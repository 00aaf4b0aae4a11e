import XCTest
import FlexServeTensor
@testable import FlexServeModels
import FlexServeTestSupport

/// Truncated, misaligned and lying files must be thrown errors that name the file and tensor.
final class WeightFileErrorTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("flexserve-corrupt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    func assertError<T>(_ body: @autoclosure () throws -> T, mentions parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            let message = "\(error)"
            for p in parts { XCTAssertTrue(message.contains(p), "'\(message)' does not mention '\(p)'", file: file, line: line) }
        }
    }

    // MARK: GGUF

    /// A GGUF writer for hand-made files: one metadata entry and the given tensors.
    struct GGUFBuilder {
        var bytes: [UInt8] = []
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }

        static func make(version: UInt32 = 3, tensors: [(name: String, dims: [UInt64], type: UInt32, offset: UInt64)],
                         dataBytes: Int, magic: UInt32 = 0x4655_4747) -> [UInt8] {
            var b = GGUFBuilder()
            b.u32(magic); b.u32(version); b.u64(UInt64(tensors.count)); b.u64(1)
            b.string("general.architecture"); b.u32(8); b.string("llama")
            for t in tensors {
                b.string(t.name); b.u32(UInt32(t.dims.count))
                for d in t.dims { b.u64(d) }
                b.u32(t.type); b.u64(t.offset)
            }
            while b.bytes.count % 32 != 0 { b.bytes.append(0) }
            b.bytes += [UInt8](repeating: 1, count: dataBytes)
            return b.bytes
        }
    }

    func testWellFormedGGUFReads() throws {
        let path = try write(GGUFBuilder.make(tensors: [("a.weight", [32, 2], 0, 0), ("b.weight", [32], 8, 256)], dataBytes: 256 + 34), "ok.gguf")
        let f = try GGUFFile(path: path)
        XCTAssertEqual(f.metadata["general.architecture"]?.string, "llama")
        XCTAssertEqual(try f.tensor("a.weight").shape, [2, 32])
        XCTAssertEqual(try f.tensor("b.weight").dtype, .q8_0)
    }

    func testTruncatedTensorData() throws {
        let path = try write(GGUFBuilder.make(tensors: [("blk.0.attn_q.weight", [64, 64], 0, 0)], dataBytes: 100), "short.gguf")
        assertError(try GGUFFile(path: path), mentions: ["short.gguf", "blk.0.attn_q.weight", "past the end"])
    }

    func testTruncatedHeader() throws {
        let full = GGUFBuilder.make(tensors: [("token_embd.weight", [32, 4], 0, 0)], dataBytes: 512)
        let path = try write(Array(full.prefix(50)), "cut.gguf")
        assertError(try GGUFFile(path: path), mentions: ["cut.gguf", "truncated"])
    }

    func testUnknownTensorType() throws {
        let path = try write(GGUFBuilder.make(tensors: [("output.weight", [32, 4], 99, 0)], dataBytes: 1024), "type.gguf")
        assertError(try GGUFFile(path: path), mentions: ["type.gguf", "output.weight", "unsupported ggml type 99"])
    }

    func testMisalignedOffset() throws {
        let path = try write(GGUFBuilder.make(tensors: [("output_norm.weight", [32], 0, 4)], dataBytes: 1024), "align.gguf")
        assertError(try GGUFFile(path: path), mentions: ["align.gguf", "output_norm.weight", "not aligned"])
    }

    func testShapeNotWholeBlocks() throws {
        let path = try write(GGUFBuilder.make(tensors: [("blk.1.ffn_up.weight", [30, 2], 2, 0)], dataBytes: 1024), "blocks.gguf")
        assertError(try GGUFFile(path: path), mentions: ["blocks.gguf", "blk.1.ffn_up.weight", "whole number"])
    }

    func testBadMagicAndVersion() throws {
        let magic = try write(GGUFBuilder.make(tensors: [], dataBytes: 0, magic: 0x1234_5678), "magic.gguf")
        assertError(try GGUFFile(path: magic), mentions: ["magic.gguf", "not a GGUF file"])
        let version = try write(GGUFBuilder.make(version: 1, tensors: [], dataBytes: 0), "v1.gguf")
        assertError(try GGUFFile(path: version), mentions: ["v1.gguf", "version 1"])
    }

    func testLyingCounts() throws {
        var b = GGUFBuilder()
        b.u32(0x4655_4747); b.u32(3); b.u64(1 << 50); b.u64(0)
        let path = try write(b.bytes, "counts.gguf")
        assertError(try GGUFFile(path: path), mentions: ["counts.gguf", "more than the file can hold"])
    }

    func testTruncatedRealModelNamesTheTensor() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-llama/tiny-llama-q8_0.gguf")))
        let path = try write(Array(data.prefix(data.count / 2)), "half.gguf")
        assertError(try GGUFFile(path: path), mentions: ["half.gguf", "blk.", "past the end"])
    }

    func testMissingTensorNamesIt() throws {
        let path = try write(GGUFBuilder.make(tensors: [("token_embd.weight", [32, 4], 0, 0)], dataBytes: 512), "partial.gguf")
        assertError(try ModelLoader.load(path: path), mentions: ["partial.gguf"])
    }

    // MARK: safetensors

    func safetensors(header: String, dataBytes: Int, declaredLength: UInt64? = nil) -> [UInt8] {
        var b: [UInt8] = []
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }  // as safetensors writers pad it
        withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { b += $0 }
        return b + h + [UInt8](repeating: 0, count: dataBytes)
    }

    func testWellFormedSafetensorsReads() throws {
        let path = try write(safetensors(header: #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, dataBytes: 16), "ok.safetensors")
        XCTAssertEqual(try SafetensorsFile(path: path).tensors["w"]?.shape, [2, 2])
    }

    func testSafetensorsHeaderLongerThanFile() throws {
        let path = try write(safetensors(header: "{}", dataBytes: 0, declaredLength: 1 << 40), "long.safetensors")
        assertError(try SafetensorsFile(path: path), mentions: ["long.safetensors", "header length"])
    }

    func testSafetensorsSizeMismatch() throws {
        let path = try write(safetensors(header: #"{"model.norm.weight":{"dtype":"F32","shape":[8],"data_offsets":[0,16]}}"#, dataBytes: 16), "size.safetensors")
        assertError(try SafetensorsFile(path: path), mentions: ["size.safetensors", "model.norm.weight", "needs 32"])
    }

    func testSafetensorsDataPastEnd() throws {
        let path = try write(safetensors(header: #"{"lm_head.weight":{"dtype":"F16","shape":[64],"data_offsets":[0,128]}}"#, dataBytes: 10), "cut.safetensors")
        assertError(try SafetensorsFile(path: path), mentions: ["cut.safetensors", "lm_head.weight", "past the end"])
    }

    func testSafetensorsUnknownDtype() throws {
        let path = try write(safetensors(header: #"{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#, dataBytes: 16), "dtype.safetensors")
        assertError(try SafetensorsFile(path: path), mentions: ["dtype.safetensors", "ids", "unsupported dtype I64"])
    }

    func testSafetensorsMisaligned() throws {
        let path = try write(safetensors(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}"#, dataBytes: 8), "misaligned.safetensors")
        assertError(try SafetensorsFile(path: path), mentions: ["misaligned.safetensors", "'w'", "misaligned"])
    }

    func testSafetensorsBadJSON() throws {
        let path = try write(safetensors(header: "{not json", dataBytes: 0), "json.safetensors")
        assertError(try SafetensorsFile(path: path), mentions: ["json.safetensors", "not valid JSON"])
    }

    func testMissingFile() {
        assertError(try GGUFFile(path: "/nonexistent/model.gguf"), mentions: ["/nonexistent/model.gguf", "cannot open"])
    }
}
