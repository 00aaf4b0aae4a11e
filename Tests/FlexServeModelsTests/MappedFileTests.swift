import Foundation
import XCTest
@testable import FlexServeModels
import FlexServeTestSupport

final class MappedFileTests: XCTestCase {
    /// `release` takes a map's pages out of the process's resident memory (the mapping's `Rss` in /proc/self/smaps), and
    /// the bytes read afterwards are still the file's.
    func testReleasedPagesLeaveResidentMemoryAndReadBackTheSame() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mapped-\(UUID().uuidString)").path
        let size = 64 * 4096
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 4096) }
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try MappedFile(path: path)
        var sum = 0
        for i in stride(from: 0, to: size, by: 512) { sum &+= Int(file.base.load(fromByteOffset: i, as: UInt8.self)) }
        XCTAssertGreaterThan(sum, 0)
        XCTAssertGreaterThanOrEqual(try residentKB(of: file), 60 * 4)

        file.release(file.base + 100, byteCount: size - 200)  // all but the partial first and last pages
        XCTAssertLessThanOrEqual(try residentKB(of: file), 2 * 4)
        XCTAssertTrue((0..<size).allSatisfy { file.base.load(fromByteOffset: $0, as: UInt8.self) == bytes[$0] })
    }

    /// A matrix converted at load (`--8bit-quantization`) gives the file's pages it was made from back; the converted
    /// tensor is the file's values quantized, and the file's bytes read afterwards are unchanged.
    func testConvertingAMappedMatrixReleasesItsSourcePages() throws {
        let files = [try SafetensorsFile(path: Fixtures.path("tiny-llama/model.safetensors"))]
        let name = "model.layers.0.mlp.gate_proj.weight"  // 160 × 64 fp32: 40 KB, 9–10 pages
        let source = try SafetensorsStore(files: files).tensor(name)
        let file = try XCTUnwrap(source.owner as? MappedFile)
        let values = source.floats()
        let before = try residentKB(of: file)
        let converted = try ConvertingStore(SafetensorsStore(files: files), to: .int8Group, interleaving: false).tensor(name)
        XCTAssertEqual(converted.dtype, .int8Group)
        XCTAssertLessThanOrEqual(try residentKB(of: file), before - 8 * 4)
        XCTAssertEqual(source.floats(), values)
        for (a, b) in zip(converted.floats(), values) { XCTAssertEqual(a, b, accuracy: 0.02) }
    }

    /// The `Rss` of the mapping that starts at the file's base.
    func residentKB(of file: MappedFile) throws -> Int {
        // Read to the end: /proc files report a size of 0.
        let smaps = String(decoding: FileHandle(forReadingAtPath: "/proc/self/smaps")!.readDataToEndOfFile(), as: UTF8.self)
        let start = String(UInt(bitPattern: file.base), radix: 16)
        var inMapping = false
        for line in smaps.split(separator: "\n") {
            if let range = line.split(separator: " ").first, range.contains("-") {
                inMapping = range.split(separator: "-").first.map { $0.drop { $0 == "0" } == start.drop { $0 == "0" } } ?? false
            } else if inMapping, line.hasPrefix("Rss:") {
                return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])!
            }
        }
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "no mapping at \(start) in /proc/self/smaps"])
    }
}
