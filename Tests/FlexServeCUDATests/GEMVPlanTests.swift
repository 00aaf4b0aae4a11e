import XCTest
@testable import FlexServeCUDA

/// How the GEMV splits a step into launches and names its kernels (no GPU needed).
final class GEMVPlanTests: XCTestCase {
    func testStepsSplitIntoChunksOfAtMostEightTokens() {
        XCTAssertEqual(GEMVKernel.chunks(tokens: 1).map { [$0.first, $0.count] }, [[0, 1]])
        XCTAssertEqual(GEMVKernel.chunks(tokens: 8).map { [$0.first, $0.count] }, [[0, 8]])
        XCTAssertEqual(GEMVKernel.chunks(tokens: 21).map { [$0.first, $0.count] }, [[0, 8], [8, 8], [16, 5]])
        XCTAssertTrue(GEMVKernel.chunks(tokens: 0).isEmpty)
    }

    func testEachChunkTakesTheSmallestKernelThatHoldsIt() {
        XCTAssertEqual((1...8).map(GEMVKernel.variant(for:)), [1, 2, 4, 4, 8, 8, 8, 8])
    }

    func testEveryVariantIsInstantiatedForEveryStorageType() {
        XCTAssertEqual(GEMVKernelSource.tokenVariants, [1, 2, 4, 8])
        XCTAssertTrue(GEMVKernelSource.code.contains("GEMV(T, S, 1) GEMV(T, S, 2) GEMV(T, S, 4) GEMV(T, S, 8)"))
        for suffix in CUDADataType.allCases.map(\.kernelSuffix) {
            XCTAssertTrue(GEMVKernelSource.code.contains(", \(suffix))"), suffix)
        }
    }

    func testExecutionSummary() {
        XCTAssertEqual(CUDALlama.Options().summary, "gemv<=8[w4]+graphs+attn3+nr2")
        XCTAssertEqual(CUDALlama.Options.cublas.summary, "cublas")
        XCTAssertEqual(CUDALlama.Options(gemv: true, gemvMaxTokens: 64, graphs: true, attention3: false, normRope2: false,
                                         gemvVariant: "default").summary, "gemv<=64+graphs")
    }

    /// The default is GEMV w4 + graphs + attention 3 + norm/rope 2; each variable switches its part off or changes it.
    func testEnvironmentChangesTheDefault() {
        typealias O = CUDALlama.Options
        XCTAssertEqual(O(environment: [:]), O())
        XCTAssertEqual(O(environment: ["FLEXSERVE_CUDA_GEMV": ""]), O())
        XCTAssertEqual(O(environment: ["FLEXSERVE_CUDA_GEMV": "1", "FLEXSERVE_CUDA_GRAPHS": "1", "FLEXSERVE_CUDA_ATTENTION": "3",
                                       "FLEXSERVE_CUDA_NORM_ROPE": "2", "FLEXSERVE_CUDA_GEMV_VARIANT": "w4"]), O())
        // The previous default, spelled out.
        XCTAssertEqual(O(environment: ["FLEXSERVE_CUDA_GEMV": "0", "FLEXSERVE_CUDA_GRAPHS": "0", "FLEXSERVE_CUDA_ATTENTION": "1",
                                       "FLEXSERVE_CUDA_NORM_ROPE": "1"]).summary, "cublas")
        XCTAssertEqual(O(environment: ["FLEXSERVE_CUDA_GEMV": "0"]).summary, "cublas+graphs+attn3+nr2")
        XCTAssertEqual(O(environment: ["FLEXSERVE_CUDA_GRAPHS": "0"]).summary, "gemv<=8[w4]+attn3+nr2")
        XCTAssertEqual(O(environment: ["FLEXSERVE_CUDA_GEMV_VARIANT": "w8"]).summary, "gemv<=8[w8]+graphs+attn3+nr2")
        XCTAssertEqual(O(environment: ["FLEXSERVE_CUDA_GEMV_VARIANT": "default"]).summary, "gemv<=8+graphs+attn3+nr2")
        XCTAssertEqual(O(environment: ["FLEXSERVE_CUDA_ATTENTION": "2"]).summary, "gemv<=8[w4]+graphs+attn2+nr2")
        XCTAssertEqual(O(environment: ["FLEXSERVE_CUDA_ATTENTION": "1", "FLEXSERVE_CUDA_NORM_ROPE": "1"]).summary, "gemv<=8[w4]+graphs")
        XCTAssertEqual(O(environment: ["FLEXSERVE_CUDA_GEMV_MAX_TOKENS": "64", "FLEXSERVE_CUDA_GRAPH_MAX_TOKENS": "16",
                                       "FLEXSERVE_CUDA_ATTENTION_CHUNK": "4", "FLEXSERVE_CUDA_ATTENTION3_MAX_TOKENS": "8"]).summary,
                       "gemv<=64[w4]+graphs+attn3[chunk 4]+nr2")
        let o = O(environment: ["FLEXSERVE_CUDA_GRAPH_MAX_TOKENS": "16", "FLEXSERVE_CUDA_ATTENTION3_MAX_TOKENS": "8",
                                "FLEXSERVE_CUDA_GEMV": "yes", "FLEXSERVE_CUDA_GRAPHS": "-3"])
        XCTAssertEqual(o.graphMaxTokens, 16)
        XCTAssertEqual(o.attention3MaxTokens, 8)
        XCTAssertTrue(o.gemv && o.graphs, "unrecognised values leave the default")
    }
}
