import FlexServeTensor

/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool)
    case string(String)
    case array([GGUFValue])

    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        case .bool(let v): return v ? 1 : 0
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var array: [GGUFValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var strings: [String]? { array?.compactMap(\.string) }
    public var ints: [Int]? { array?.compactMap(\.int) }
    public var doubles: [Double]? { array?.compactMap(\.double) }
}

/// Where a tensor lives in a GGUF file.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// PyTorch order (outermost first): GGUF's `ne` reversed.
    public let shape: [Int]
    public let dtype: DType
    /// Offset from the start of the file.
    public let offset: Int
    public let byteCount: Int
}

/// A GGUF file (versions 2 and 3), memory-mapped. Every size and offset is checked against the
/// file before use, so a truncated or lying file is an error naming the file and tensor.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: Int
    public let metadata: [String: GGUFValue]
    /// In file order.
    public let tensorInfos: [GGUFTensorInfo]
    public let tensorIndex: [String: Int]
    let file: MappedFile

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    init(file: MappedFile) throws {
        self.file = file
        path = file.path
        var r = ByteReader(file)
        let magic = try r.read(UInt32.self, what: "magic")
        guard magic == 0x4655_4747 else {
            throw WeightFileError(file: path, tensor: nil, problem: "not a GGUF file (magic \(String(magic, radix: 16)))")
        }
        let version = Int(try r.read(UInt32.self, what: "version"))
        guard version == 2 || version == 3 else {
            throw WeightFileError(file: path, tensor: nil, problem: "unsupported GGUF version \(version) (2 and 3 are supported)")
        }
        self.version = version
        let tensorCount = try r.read(UInt64.self, what: "tensor count")
        let kvCount = try r.read(UInt64.self, what: "metadata count")
        // Each entry takes at least 8 bytes: a count bigger than the file is a lie, not a reason to allocate.
        guard tensorCount < UInt64(file.size / 8), kvCount < UInt64(file.size / 8) else {
            throw WeightFileError(file: path, tensor: nil, problem: "header claims \(tensorCount) tensors and \(kvCount) metadata entries, more than the file can hold")
        }
        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<kvCount {
            let key = try Self.readString(&r, path: path, what: "metadata key")
            let type = try r.read(UInt32.self, what: "type of \(key)")
            metadata[key] = try Self.readValue(&r, type: type, path: path, key: key, depth: 0)
        }
        self.metadata = metadata
        let alignment = metadata["general.alignment"]?.int ?? 32
        guard alignment > 0, alignment & (alignment - 1) == 0 else {
            throw WeightFileError(file: path, tensor: nil, problem: "general.alignment \(alignment) is not a power of two")
        }

        var raw: [(name: String, shape: [Int], dtype: DType, offset: UInt64)] = []
        for _ in 0..<tensorCount {
            let name = try Self.readString(&r, path: path, what: "tensor name")
            let dims = try r.read(UInt32.self, what: "dimension count of \(name)")
            guard dims >= 1, dims <= 4 else {
                throw WeightFileError(file: path, tensor: name, problem: "\(dims) dimensions (1 to 4 allowed)")
            }
            var ne: [Int] = []
            for _ in 0..<dims {
                let d = try r.read(UInt64.self, what: "dimensions of \(name)")
                guard d > 0, d < 1 << 40 else {
                    throw WeightFileError(file: path, tensor: name, problem: "impossible dimension \(d)")
                }
                ne.append(Int(d))
            }
            let typeCode = try r.read(UInt32.self, what: "type of \(name)")
            guard let dtype = Self.dtype(ggmlType: typeCode) else {
                throw WeightFileError(file: path, tensor: name, problem: "unsupported ggml type \(typeCode) (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)")
            }
            let offset = try r.read(UInt64.self, what: "offset of \(name)")
            raw.append((name, ne.reversed(), dtype, offset))
        }
        let dataStart = (r.offset + alignment - 1) / alignment * alignment
        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for t in raw {
            let count = t.shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            guard t.shape.last! % t.dtype.blockValues == 0, let bytes = t.dtype.byteCount(values: count) else {
                throw WeightFileError(file: path, tensor: t.name, problem: "shape \(t.shape) is not a whole number of \(t.dtype) blocks")
            }
            guard t.offset % UInt64(alignment) == 0 else {
                throw WeightFileError(file: path, tensor: t.name, problem: "data offset \(t.offset) is not aligned to \(alignment)")
            }
            guard t.offset < UInt64(file.size), dataStart + Int(t.offset) <= file.size - bytes else {
                throw WeightFileError(file: path, tensor: t.name,
                                      problem: "data (\(bytes) bytes at offset \(dataStart) + \(t.offset)) runs past the end of the file (\(file.size) bytes): truncated or corrupt")
            }
            guard index[t.name] == nil else {
                throw WeightFileError(file: path, tensor: t.name, problem: "tensor appears twice")
            }
            index[t.name] = infos.count
            infos.append(GGUFTensorInfo(name: t.name, shape: t.shape, dtype: t.dtype, offset: dataStart + Int(t.offset), byteCount: bytes))
        }
        tensorInfos = infos
        tensorIndex = index
    }

    public func tensor(_ name: String) throws -> TensorView {
        guard let i = tensorIndex[name] else {
            throw WeightFileError(file: path, tensor: name, problem: "missing")
        }
        let info = tensorInfos[i]
        return TensorView(dtype: info.dtype, shape: info.shape, data: file.base + info.offset, owner: file)
    }

    public func hasTensor(_ name: String) -> Bool { tensorIndex[name] != nil }

    static func dtype(ggmlType: UInt32) -> DType? {
        switch ggmlType {
        case 0: return .f32
        case 1: return .f16
        case 2: return .q4_0
        case 3: return .q4_1
        case 8: return .q8_0
        case 30: return .bf16
        default: return nil
        }
    }

    static func readString(_ r: inout ByteReader, path: String, what: String) throws -> String {
        let length = try r.read(UInt64.self, what: "length of \(what)")
        guard length <= UInt64(r.file.size) else {
            throw WeightFileError(file: path, tensor: nil, problem: "\(what) claims \(length) bytes, more than the file holds")
        }
        let bytes = try r.bytes(Int(length), what: what)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readValue(_ r: inout ByteReader, type: UInt32, path: String, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try r.read(UInt8.self, what: key))
        case 1: return .int8(try r.read(Int8.self, what: key))
        case 2: return .uint16(try r.read(UInt16.self, what: key))
        case 3: return .int16(try r.read(Int16.self, what: key))
        case 4: return .uint32(try r.read(UInt32.self, what: key))
        case 5: return .int32(try r.read(Int32.self, what: key))
        case 6: return .float32(try r.readFloat(what: key))
        case 7: return .bool(try r.read(UInt8.self, what: key) != 0)
        case 8: return .string(try readString(&r, path: path, what: key))
        case 9:
            guard depth < 4 else {
                throw WeightFileError(file: path, tensor: nil, problem: "metadata '\(key)': arrays nested too deep")
            }
            let itemType = try r.read(UInt32.self, what: "array type of \(key)")
            let count = try r.read(UInt64.self, what: "array length of \(key)")
            guard count <= UInt64(r.file.size - r.offset) else {
                throw WeightFileError(file: path, tensor: nil, problem: "metadata '\(key)': array of \(count) items is longer than the file")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<count {
                items.append(try readValue(&r, type: itemType, path: path, key: key, depth: depth + 1))
            }
            return .array(items)
        case 10: return .uint64(try r.read(UInt64.self, what: key))
        case 11: return .int64(try r.read(Int64.self, what: key))
        case 12: return .float64(try r.readDouble(what: key))
        default:
            throw WeightFileError(file: path, tensor: nil, problem: "metadata '\(key)' has unknown value type \(type)")
        }
    }
}
