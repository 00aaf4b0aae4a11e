import XCTest
import FlexServeModels
import FlexServeTensor
@testable import FlexServeCUDA

/// int8/int4 weights and --offload: the device layout is checked without a GPU; the GPU runs skip without a driver.
final class CUDAQuantizedTests: XCTestCase {
    /// A stacked pair of CPU group-quantized matrices splits into the values array and the (scale, minimum) pairs,
    /// byte for byte the CPU's blocks, with every array 16-byte aligned.
    func testWeightBlockSplitsCPUGroupsIntoValuesAndScales() throws {
        for format in [DType.int8Group, .int4Group] {
            let a = TensorView.owned((0..<(3 * 64)).map { Float($0 % 17) * 0.25 - 2 }, shape: [3, 64]).converted(to: format)!
            let b = TensorView.owned((0..<(2 * 64)).map { Float($0 % 5) - 1.5 }, shape: [2, 64]).converted(to: format)!
            var block = WeightBlock(type: .fp16)
            _ = try block.append([a, b])
            let m = block.matrices[0]
            XCTAssertEqual(m.format, format == .int8Group ? .int8Group : .int4Group)
            XCTAssertEqual(m.rows, 5)
            XCTAssertEqual(m.offset % 16, 0)
            XCTAssertEqual(m.scalesOffset % 16, 0)
            let memory = UnsafeMutableRawPointer.allocate(byteCount: block.bytes, alignment: 16)
            defer { memory.deallocate() }
            block.write(to: memory)
            let groupBytes = format == .int8Group ? 32 : 16
            var g = 0
            for part in [a, b] {
                for i in 0..<(part.shape[0] * 2) {
                    let cpu = part.data + i * format.blockBytes
                    let pair = (memory + m.scalesOffset + 8 * g).assumingMemoryBound(to: Float.self)
                    XCTAssertEqual(pair[0], cpu.loadUnaligned(as: Float.self))
                    XCTAssertEqual(pair[1], cpu.loadUnaligned(fromByteOffset: 4, as: Float.self))
                    XCTAssertEqual(memcmp(memory + m.offset + groupBytes * g, cpu + 8, groupBytes), 0)
                    g += 1
                }
            }
        }
    }

    func testQuantizedWeightsAndOffloadMatchCPU() throws {
        guard let device = try? CUDADevice.shared() else { throw XCTSkip("no CUDA driver or GPU") }
        // cuBLAS and the default execution (GEMV, graphs, attention 3, norm/rope 2; with --offload without graphs).
        for options in [CUDALlama.Options.cublas, CUDALlama.Options()] {
            for format in [DType.int8Group, .int4Group] {
                let r = try CUDASelfTest.run(device: device, dataType: .fp32, options: options, weightFormat: format)
                for e in r.maxAbsError { XCTAssertLessThan(e, 1e-3, "\(format) \(options.summary)") }
            }
            let offloaded = try CUDASelfTest.run(device: device, dataType: .fp32, options: options, offload: true)
            for e in offloaded.maxAbsError { XCTAssertLessThan(e, 1e-3, "offload \(options.summary)") }
            XCTAssertEqual(offloaded.graphCaptures, 0, "offload runs without graphs")
        }
    }
}
