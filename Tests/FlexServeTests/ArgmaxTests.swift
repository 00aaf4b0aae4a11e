import XCTest
@testable import FlexServe

/// Greedy decoding's `Sampler.argmax` (16-lane compares) against the definition: the first index
/// of the largest value, NaN never chosen.
final class ArgmaxTests: XCTestCase {
    func reference(_ v: [Float]) -> Int {
        var best = 0, bestValue = -Float.infinity
        for (i, x) in v.enumerated() where x > bestValue { best = i; bestValue = x }
        return best
    }

    func testFirstLargestValueOverLengthsTiesAndNaN() {
        var rng = SystemRandomNumberGenerator()
        for n in [1, 5, 15, 16, 17, 33, 1000, 49_152] {
            for trial in 0..<20 {
                var v = (0..<n).map { _ in Float.random(in: -10...10, using: &rng) }
                if trial % 4 == 1, n > 2 {
                    // A tie for the maximum: the earlier index wins.
                    let a = Int.random(in: 0..<n, using: &rng), b = Int.random(in: 0..<n, using: &rng)
                    v[a] = 20; v[b] = 20
                }
                if trial % 4 == 2 { for _ in 0..<(n / 3 + 1) { v[Int.random(in: 0..<n, using: &rng)] = .nan } }
                if trial % 4 == 3 { v[n - 1] = 50 }
                v.withUnsafeBufferPointer { XCTAssertEqual(Sampler.argmax($0), reference(v), "n \(n) trial \(trial)") }
            }
        }
        let masked = [Float](repeating: -.infinity, count: 40)
        masked.withUnsafeBufferPointer { XCTAssertEqual(Sampler.argmax($0), 0) }
        let lastOnly = [Float](repeating: -.infinity, count: 40) + [-1e30]
        lastOnly.withUnsafeBufferPointer { XCTAssertEqual(Sampler.argmax($0), 40) }
    }
}
