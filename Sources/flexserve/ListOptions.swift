import ArgumentParser
import FlexServeTensor

/// Comma-separated counts (`--tokens 1,12,128`), each in `range`; `what` names them in the error.
func parseCounts(_ list: String, in range: ClosedRange<Int>, _ what: String) throws -> [Int] {
    try list.split(separator: ",").map { text in
        guard let n = Int(text), range.contains(n) else {
            throw ValidationError("\(what) are \(range.lowerBound) to \(range.upperBound), not '\(text)'")
        }
        return n
    }
}

/// Comma-separated KV cache types (`--kv-cache-dtype f32,f16`).
func parseCacheTypes(_ list: String) throws -> [KVCacheType] {
    try list.split(separator: ",").map { name in
        guard let t = KVCacheType(rawValue: String(name)) else { throw ValidationError("unknown KV cache type '\(name)' (expected f32 or f16)") }
        return t
    }
}
