import Foundation
import FlexServeTensor

/// A `.safetensors` file, memory-mapped: an 8-byte header length, a JSON header of
/// `name: {dtype, shape, data_offsets}`, then the tensor bytes.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let tensors: [String: TensorView]
    public let metadata: [String: String]
    let file: MappedFile

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    init(file: MappedFile) throws {
        self.file = file
        path = file.path
        var r = ByteReader(file)
        let headerLength = try r.read(UInt64.self, what: "header length")
        guard headerLength <= UInt64(file.size - 8) else {
            throw WeightFileError(file: path, tensor: nil, problem: "header length \(headerLength) is longer than the file (\(file.size) bytes): truncated or not a safetensors file")
        }
        let header = try r.bytes(Int(headerLength), what: "header")
        let dataStart = 8 + Int(headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(header), options: [])
        } catch {
            throw WeightFileError(file: path, tensor: nil, problem: "header is not valid JSON")
        }
        guard let entries = json as? [String: Any] else {
            throw WeightFileError(file: path, tensor: nil, problem: "header is not a JSON object")
        }
        var tensors: [String: TensorView] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in entries {
            if name == "__metadata__" {
                for (k, v) in value as? [String: Any] ?? [:] { metadata[k] = v as? String }
                continue
            }
            guard let entry = value as? [String: Any],
                  let dtypeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int],
                  let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw WeightFileError(file: path, tensor: name, problem: "header entry lacks dtype, shape or data_offsets")
            }
            guard let dtype = Self.dtype(dtypeName) else {
                throw WeightFileError(file: path, tensor: name, problem: "unsupported dtype \(dtypeName) (F32, F16 and BF16 are supported)")
            }
            guard shape.allSatisfy({ $0 >= 0 && $0 < 1 << 40 }) else {
                throw WeightFileError(file: path, tensor: name, problem: "impossible shape \(shape)")
            }
            let count = shape.reduce(1, *)
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end - begin == count * dtype.blockBytes else {
                throw WeightFileError(file: path, tensor: name, problem: "data_offsets [\(begin), \(end)) hold \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(count * dtype.blockBytes)")
            }
            guard end <= file.size - dataStart else {
                throw WeightFileError(file: path, tensor: name, problem: "data [\(begin), \(end)) runs past the end of the file (\(file.size - dataStart) data bytes): truncated")
            }
            guard (dataStart + begin) % dtype.blockBytes == 0 else {
                throw WeightFileError(file: path, tensor: name, problem: "data at offset \(dataStart + begin) is misaligned for \(dtypeName)")
            }
            tensors[name] = TensorView(dtype: dtype, shape: shape, data: file.base + dataStart + begin, owner: file)
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    static func dtype(_ name: String) -> DType? {
        switch name {
        case "F32": return .f32
        case "F16": return .f16
        case "BF16": return .bf16
        default: return nil
        }
    }
}
