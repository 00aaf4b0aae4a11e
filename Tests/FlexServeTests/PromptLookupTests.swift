import XCTest
@testable import FlexServe

final class PromptLookupTests: XCTestCase {
    func testCopiesWhatFollowedTheLongestEarlierMatch() {
        let lookup = PromptLookup(length: 3)
        // Suffix [7, 8, 9] occurred at 1...3 followed by 10, 11, 12; [8, 9] alone also at 6...7 (followed by 5).
        let tokens = [1, 7, 8, 9, 10, 11, 12, 8, 9, 5, 7, 8, 9]
        XCTAssertEqual(lookup.continuations(of: tokens), [[10, 11, 12]])
    }

    func testKeepsTwoDistinctContinuationsLatestFirst() {
        let lookup = PromptLookup(length: 2)
        let tokens = [4, 5, 1, 2, 4, 5, 3, 3, 4, 5, 1, 9, 4, 5]
        // [4, 5] is followed by 1 (at 10), 3 (at 6) and 1 (at 2): the two distinct latest are 1 and 3.
        XCTAssertEqual(lookup.continuations(of: tokens), [[1, 9], [3, 3]])
    }

    func testCopyMayRunIntoTheSuffixAndStopsAtTheEnd() {
        let lookup = PromptLookup(length: 4)
        XCTAssertEqual(lookup.continuations(of: [6, 6, 6]), [[6]])
        XCTAssertEqual(lookup.continuations(of: [1, 2, 3, 1, 2]), [[3, 1, 2]])
    }

    func testNoMatchOrOffDraftsNothing() {
        XCTAssertEqual(PromptLookup(length: 4).continuations(of: [1, 2, 3, 4, 5]), [])
        XCTAssertEqual(PromptLookup(length: 4).continuations(of: [1, 1]), [])
        XCTAssertEqual(PromptLookup(length: 0).continuations(of: [1, 2, 1, 2]), [])
    }

    func testTreeShapeCountsLookupNodes() throws {
        let shape = TreeShape(depth: 2, expansion: [2, 1], maxWidth: 2, promptLookup: 5)
        XCTAssertEqual(shape.maxTreeNodes(ssms: 2), 2 * (2 + 2) + 5 * PromptLookup.candidates)
        XCTAssertThrowsError(try TreeShape(depth: 2, promptLookup: 65).validate())
        // Every frontier node gets all its children before the frontier is cut to the width: 3, then 2 x 3.
        XCTAssertEqual(TreeShape(depth: 2, expansion: [3, 3], maxWidth: 2).maxNodes, 9)
    }
}
