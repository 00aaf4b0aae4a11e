import Foundation

extension PromptDataset {
    public enum GzipError: Error, CustomStringConvertible {
        case notGzip
        case corrupt(String)
        case truncated

        public var description: String {
            switch self {
            case .notGzip: return "not a gzip file"
            case .corrupt(let r): return "corrupt gzip data: \(r)"
            case .truncated: return "gzip data ends early"
            }
        }
    }

    /// A small DEFLATE (RFC 1951) / gzip (RFC 1952) decoder, so that the core library can read
    /// `HumanEval.jsonl.gz` without zlib. Concatenated gzip members are decoded one after another.
    public enum Gzip {
        public static func decompress(_ data: Data) throws -> Data {
            let bytes = [UInt8](data)
            var out: [UInt8] = []
            var offset = 0
            repeat {
                offset = try member(bytes, at: offset, into: &out)
                while offset < bytes.count && bytes[offset] == 0 { offset += 1 }  // padding
            } while offset < bytes.count
            return Data(out)
        }

        static func member(_ b: [UInt8], at start: Int, into out: inout [UInt8]) throws -> Int {
            guard b.count >= start + 18, b[start] == 0x1f, b[start + 1] == 0x8b, b[start + 2] == 8 else { throw GzipError.notGzip }
            let flags = b[start + 3]
            var p = start + 10
            if flags & 4 != 0 {
                guard p + 2 <= b.count else { throw GzipError.truncated }
                p += 2 + (Int(b[p]) | Int(b[p + 1]) << 8)
            }
            if flags & 8 != 0 { while p < b.count && b[p] != 0 { p += 1 }; p += 1 }
            if flags & 16 != 0 { while p < b.count && b[p] != 0 { p += 1 }; p += 1 }
            if flags & 2 != 0 { p += 2 }
            guard p < b.count else { throw GzipError.truncated }
            let before = out.count
            var inflater = Inflater(bytes: b, bytePos: p)
            try inflater.run(into: &out)
            let end = inflater.alignedEnd
            guard end + 8 <= b.count else { throw GzipError.truncated }
            let isize = UInt32(b[end + 4]) | UInt32(b[end + 5]) << 8 | UInt32(b[end + 6]) << 16 | UInt32(b[end + 7]) << 24
            guard UInt32(truncatingIfNeeded: out.count - before) == isize else { throw GzipError.corrupt("size check failed") }
            let crc = UInt32(b[end]) | UInt32(b[end + 1]) << 8 | UInt32(b[end + 2]) << 16 | UInt32(b[end + 3]) << 24
            guard crc32(out[before...]) == crc else { throw GzipError.corrupt("CRC check failed") }
            return end + 8
        }

        static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
            var c = UInt32(n)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            return c
        }

        public static func crc32<C: Collection>(_ data: C) -> UInt32 where C.Element == UInt8 {
            var c: UInt32 = 0xFFFF_FFFF
            for x in data { c = crcTable[Int((c ^ UInt32(x)) & 0xFF)] ^ (c >> 8) }
            return c ^ 0xFFFF_FFFF
        }
    }

    struct Inflater {
        let bytes: [UInt8]
        var bytePos: Int
        var bitBuf: UInt32 = 0
        var bitCount: Int = 0

        init(bytes: [UInt8], bytePos: Int) {
            self.bytes = bytes
            self.bytePos = bytePos
        }

        /// Byte offset after the deflate stream (the remaining bits of the last byte are dropped).
        var alignedEnd: Int { bytePos - bitCount / 8 }

        mutating func bits(_ n: Int) throws -> Int {
            while bitCount < n {
                guard bytePos < bytes.count else { throw GzipError.truncated }
                bitBuf |= UInt32(bytes[bytePos]) << UInt32(bitCount)
                bytePos += 1
                bitCount += 8
            }
            let v = Int(bitBuf & ((1 << UInt32(n)) - 1))
            bitBuf >>= UInt32(n)
            bitCount -= n
            return v
        }

        /// Canonical Huffman table: counts per length and symbols sorted by code.
        struct Huffman {
            var counts = [Int](repeating: 0, count: 16)
            var symbols: [Int] = []
            init(lengths: [Int]) throws {
                for l in lengths { counts[l] += 1 }
                counts[0] = 0
                var offs = [Int](repeating: 0, count: 16)
                for i in 1..<16 { offs[i] = offs[i - 1] + counts[i - 1] }
                symbols = [Int](repeating: 0, count: lengths.count)
                for (s, l) in lengths.enumerated() where l != 0 {
                    symbols[offs[l]] = s
                    offs[l] += 1
                }
            }
        }

        mutating func decode(_ h: Huffman) throws -> Int {
            var code = 0, first = 0, index = 0
            for len in 1..<16 {
                code |= try bits(1)
                let count = h.counts[len]
                if code - count < first { return h.symbols[index + (code - first)] }
                index += count
                first += count
                first <<= 1
                code <<= 1
            }
            throw GzipError.corrupt("bad Huffman code")
        }

        static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
        static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
        static let distBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
        static let distExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

        mutating func run(into out: inout [UInt8]) throws {
            var last = false
            repeat {
                last = try bits(1) == 1
                switch try bits(2) {
                case 0:
                    bitBuf = 0
                    bitCount = 0
                    guard bytePos + 4 <= bytes.count else { throw GzipError.truncated }
                    let len = Int(bytes[bytePos]) | Int(bytes[bytePos + 1]) << 8
                    let nlen = Int(bytes[bytePos + 2]) | Int(bytes[bytePos + 3]) << 8
                    guard len == (~nlen & 0xFFFF) else { throw GzipError.corrupt("stored block length") }
                    bytePos += 4
                    guard bytePos + len <= bytes.count else { throw GzipError.truncated }
                    out.append(contentsOf: bytes[bytePos..<bytePos + len])
                    bytePos += len
                case 1:
                    var l = [Int](repeating: 8, count: 288)
                    for i in 144..<256 { l[i] = 9 }
                    for i in 256..<280 { l[i] = 7 }
                    try codes(lit: Huffman(lengths: l), dist: Huffman(lengths: [Int](repeating: 5, count: 30)), into: &out)
                case 2:
                    let hlit = try bits(5) + 257, hdist = try bits(5) + 1, hclen = try bits(4) + 4
                    let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
                    var cl = [Int](repeating: 0, count: 19)
                    for i in 0..<hclen { cl[order[i]] = try bits(3) }
                    let clh = try Huffman(lengths: cl)
                    var lengths: [Int] = []
                    while lengths.count < hlit + hdist {
                        let sym = try decode(clh)
                        switch sym {
                        case 0..<16: lengths.append(sym)
                        case 16:
                            guard let prev = lengths.last else { throw GzipError.corrupt("repeat with no length") }
                            lengths.append(contentsOf: repeatElement(prev, count: 3 + (try bits(2))))
                        case 17: lengths.append(contentsOf: repeatElement(0, count: 3 + (try bits(3))))
                        default: lengths.append(contentsOf: repeatElement(0, count: 11 + (try bits(7))))
                        }
                    }
                    guard lengths.count == hlit + hdist else { throw GzipError.corrupt("too many lengths") }
                    try codes(lit: Huffman(lengths: Array(lengths[0..<hlit])), dist: Huffman(lengths: Array(lengths[hlit...])), into: &out)
                default:
                    throw GzipError.corrupt("bad block type")
                }
            } while !last
        }

        mutating func codes(lit: Huffman, dist: Huffman, into out: inout [UInt8]) throws {
            while true {
                let sym = try decode(lit)
                if sym < 256 {
                    out.append(UInt8(sym))
                } else if sym == 256 {
                    return
                } else {
                    let li = sym - 257
                    guard li < 29 else { throw GzipError.corrupt("bad length symbol") }
                    let len = Inflater.lengthBase[li] + (try bits(Inflater.lengthExtra[li]))
                    let di = try decode(dist)
                    guard di < 30 else { throw GzipError.corrupt("bad distance symbol") }
                    let d = Inflater.distBase[di] + (try bits(Inflater.distExtra[di]))
                    guard d <= out.count else { throw GzipError.corrupt("distance too far back") }
                    let from = out.count - d
                    for k in 0..<len { out.append(out[from + k]) }
                }
            }
        }
    }
}
