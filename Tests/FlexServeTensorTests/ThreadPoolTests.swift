import FlexServeTensor
import XCTest

final class ThreadPoolTests: XCTestCase {
    /// `FLEXSERVE_THREADS` sizes the shared pool; a value that is not a positive integer falls back to the processors.
    func testSharedThreadCountFromTheEnvironment() {
        XCTAssertEqual(ThreadPool.sharedThreadCount(nil, processors: 2), 2)
        XCTAssertEqual(ThreadPool.sharedThreadCount("1", processors: 2), 1)
        XCTAssertEqual(ThreadPool.sharedThreadCount(" 6 ", processors: 2), 6)
        for bad in ["", "0", "-3", "two", "1.5"] { XCTAssertEqual(ThreadPool.sharedThreadCount(bad, processors: 4), 4, bad) }
    }
}
