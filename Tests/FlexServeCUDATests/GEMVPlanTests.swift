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
        XCTAssertEqual(CUDALlama.Options().summary, "cublas")
        XCTAssertEqual(CUDALlama.Options(gemv: true, gemvMaxTokens: 64, graphs: true).summary, "gemv<=64+graphs")
    }
}
