import XCTest
@testable import FlexServeCUDA

/// CUDA-free parts of `gpu-check profile`: interval aggregation by category, and the GEMV launch variants' plans.
final class DecodeProfileTests: XCTestCase {
    func testAggregateSumsIntervalsByFirstMarkInOrderOfAppearance() {
        let marks = ["upload", "spin", "embed", "norm", "qkv", "norm", "qkv", "logits-copy", "end"]
        let times: [Double] = [0, 0.01, 20.01, 20.02, 20.05, 20.45, 20.48, 20.9, 21.0]
        let c = DecodeProfile.aggregate(marks: marks, times: times, excluded: ["spin"])
        XCTAssertEqual(c.map(\.name), ["upload", "embed", "norm", "qkv", "logits-copy"])
        XCTAssertEqual(c.map(\.intervals), [1, 1, 2, 2, 1])
        let ms = Dictionary(uniqueKeysWithValues: c.map { ($0.name, $0.milliseconds) })
        XCTAssertEqual(ms["norm"]!, 0.03 + 0.03, accuracy: 1e-9)
        XCTAssertEqual(ms["qkv"]!, 0.40 + 0.42, accuracy: 1e-9)
        XCTAssertEqual(ms["logits-copy"]!, 0.1, accuracy: 1e-9)
        XCTAssertTrue(DecodeProfile.aggregate(marks: ["end"], times: [1]).isEmpty)
    }

    func testGEMVVariantPlans() {
        XCTAssertEqual(GEMVKernel.variantNames, ["default", "u8", "w2", "w4", "w8"])
        XCTAssertEqual(GEMVKernel.plan(variant: "default")?.prefix, "gemv")
        XCTAssertEqual(GEMVKernel.plan(variant: "default")?.rowsPerBlock, 8)
        XCTAssertEqual(GEMVKernel.plan(variant: "w4")?.prefix, "gemv_u4w4")
        XCTAssertEqual(GEMVKernel.plan(variant: "w4")?.rowsPerBlock, 2)
        XCTAssertEqual(GEMVKernel.plan(variant: "w8")?.rowsPerBlock, 1)
        XCTAssertNil(GEMVKernel.plan(variant: "w3"))
        // Every variant's kernels are instantiated in the source, for each type.
        for v in GEMVKernelSource.tuningVariants {
            XCTAssertTrue(GEMVKernelSource.code.contains("GEMVX_ALL(\(v.loads), \(v.warpsPerRow))"), v.name)
            XCTAssertEqual(8 % v.warpsPerRow, 0, v.name)
        }
        XCTAssertEqual(CUDALlama.Options(graphs: false, attention3: false, normRope2: false).summary, "gemv<=8[w4]")
        XCTAssertEqual(CUDALlama.Options(graphs: false, attention3: false, normRope2: false, gemvVariant: "default").summary, "gemv<=8")
    }
}
