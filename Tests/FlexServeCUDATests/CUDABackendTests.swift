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

    /// cuBLAS, the GEMV, CUDA graphs (captured and replayed) and the second attention kernel alone, and the default
    /// (GEMV w4, graphs, attention 3, norm/rope 2), also with the GEMV's base launch, give the CPU's logits too.
    func testExecutionVariantsMatchCPU() throws {
        guard let device = try? CUDADevice.shared() else { throw XCTSkip("no CUDA driver or GPU") }
        func cublas(_ change: (inout CUDALlama.Options) -> Void) -> CUDALlama.Options {
            var o = CUDALlama.Options.cublas
            change(&o)
            return o
        }
        let variants = [CUDALlama.Options.cublas, cublas { $0.gemv = true }, cublas { $0.graphs = true },
                        cublas { $0.gemv = true; $0.graphs = true; $0.attention2 = true },
                        CUDALlama.Options(), CUDALlama.Options(gemvVariant: "default")]
        // The split attention with 4-slot chunks (the selftest's lists span several).
        var split = CUDALlama.Options()
        split.attentionChunk = 4
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
