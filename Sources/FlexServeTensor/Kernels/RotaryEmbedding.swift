import Foundation

/// Rotary position embedding in HuggingFace's "rotate half" layout: dimension i pairs with
/// i + d/2. Frequencies are computed in fp32 the way transformers does, so angles match it.
public struct RotaryEmbedding: Sendable {
    public let rotaryDim: Int
    public let inverseFrequencies: [Float]

    public init(rotaryDim: Int, theta: Double, inverseFrequencies: [Float]? = nil) {
        self.rotaryDim = rotaryDim
        self.inverseFrequencies = inverseFrequencies ?? (0..<(rotaryDim / 2)).map { i in
            1 / Float(pow(theta, Double(2 * i) / Double(rotaryDim)))
        }
    }

    /// cos and sin tables for each position: `[positions.count][rotaryDim/2]`.
    public func tables(positions: [Int32]) -> (cos: [Float], sin: [Float]) {
        let half = rotaryDim / 2
        var c = [Float](repeating: 0, count: positions.count * half)
        var s = c
        for (t, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Float(p) * inverseFrequencies[i]
                c[t * half + i] = Foundation.cos(angle)
                s[t * half + i] = Foundation.sin(angle)
            }
        }
        return (c, s)
    }

    /// Rotates `heads` vectors of `headDim` for one token in place.
    @inline(__always)
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int,
                      cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = rotaryDim / 2
        for h in 0..<heads {
            let v = x + h * headDim
            for i in 0..<half {
                let a = v[i], b = v[i + half]
                v[i] = a * cos[i] - b * sin[i]
                v[i + half] = b * cos[i] + a * sin[i]
            }
        }
    }
}
