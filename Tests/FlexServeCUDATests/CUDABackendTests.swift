import XCTest
import FlexServeCUDA

/// GPU tests: they skip (in microseconds) where no CUDA driver loads, as on CI.
final class CUDABackendTests: XCTestCase {
    func testMissingDriverGivesAClearError() throws {
        do {
            _ = try CUDADevice()
        } catch let error as CUDAError {
            let text = error.description
            XCTAssertTrue(text.contains("CUDA"), text)
            return
        }
        // A GPU is present: nothing to check here, the tests below run.
    }

    func testSmallLlamaMatchesCPUThroughTreeVerifyAndMove() throws {
        guard let device = try? CUDADevice.shared() else { throw XCTSkip("no CUDA driver or GPU") }
        let fp32 = try CUDASelfTest.run(device: device, dataType: .fp32)
        for e in fp32.maxAbsError { XCTAssertLessThan(e, 1e-3) }
        let fp16 = try CUDASelfTest.run(device: device, dataType: .fp16)
        for e in fp16.maxAbsError { XCTAssertLessThan(e, 5e-2) }
    }

    /// The GEMV, CUDA graphs (captured and replayed) and the second attention kernel give the CPU's logits too.
    func testExecutionVariantsMatchCPU() throws {
        guard let device = try? CUDADevice.shared() else { throw XCTSkip("no CUDA driver or GPU") }
        let variants = [CUDALlama.Options(gemv: true), CUDALlama.Options(graphs: true),
                        CUDALlama.Options(gemv: true, graphs: true, attention2: true)]
        // The split attention (4-slot chunks: the selftest's lists span several) and the wide norm/rope kernels.
        var split = CUDALlama.Options(gemv: true, graphs: true)
        split.attention3 = true
        split.attentionChunk = 4
        split.normRope2 = true
        for options in variants + [split] {
            let r = try CUDASelfTest.run(device: device, dataType: .fp32, options: options)
            for e in r.maxAbsError { XCTAssertLessThan(e, 1e-3, options.summary) }
            // With the GEMV a token's logits do not depend on the other tokens of its step.
            if options.gemv { XCTAssertTrue(r.batchInvariant, options.summary) }
            if options.graphs {
                XCTAssertNil(r.graphFailure, options.summary)
                XCTAssertGreaterThan(r.graphReplays, 0, options.summary)
            }
        }
    }

    func testDataTypeNames() {
        XCTAssertEqual(CUDADataType(name: "half"), .fp16)
        XCTAssertEqual(CUDADataType(name: "bfloat16"), .bf16)
        XCTAssertEqual(CUDADataType(name: "F32"), .fp32)
        XCTAssertNil(CUDADataType(name: "int3"))
    }
}
