import XCTest
@testable import FlexServe

/// Tree-shape names of `flexserve gpu-check speculative --trees`.
final class GPUCheckTreeTests: XCTestCase {
    func testTreeNames() {
        XCTAssertEqual(GPUCheck.treeShape(named: "chain4")?.expansion, [1, 1, 1, 1])
        XCTAssertEqual(GPUCheck.treeShape(named: "flexflow8")?.expansion, [1, 1, 3, 1, 1, 1, 1, 1])
        XCTAssertNil(GPUCheck.treeShape(named: "chain0"))
        XCTAssertNil(GPUCheck.treeShape(named: "beam4"))
    }
}
