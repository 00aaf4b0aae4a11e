import FlexServeModels
import FlexServeTensor

/// Uploads weight tensors to the GPU in one storage type, converting on the host when the file's
/// type differs (quantized GGUF blocks are dequantized to fp32 first, as the CPU does).
struct DeviceWeights {
    let device: CUDADevice
    let type: CUDADataType
    /// Bytes uploaded so far.
    private(set) var uploadedBytes = 0

    init(device: CUDADevice, type: CUDADataType) {
        self.device = device
        self.type = type
    }

    /// `parts` stacked row-wise (e.g. q, k, v into one matrix for one GEMM) in `type`.
    mutating func matrix(_ parts: [TensorView]) throws -> DeviceBuffer {
        let total = parts.reduce(0) { $0 + $1.count }
        let buffer = try device.allocate(bytes: total * type.bytes)
        var offset = 0
        for part in parts {
            try upload(part, to: buffer.offset(offset))
            offset += part.count * type.bytes
        }
        uploadedBytes += total * type.bytes
        return buffer
    }

    /// A block written on the host, then copied to a device buffer of its own.
    static func upload(_ block: WeightBlock, device: CUDADevice) throws -> DeviceBuffer {
        let buffer = try device.allocate(bytes: block.bytes)
        let staging = UnsafeMutableRawPointer.allocate(byteCount: max(block.bytes, 1), alignment: 64)
        defer { staging.deallocate() }
        block.write(to: staging)
        try device.copy(toDevice: buffer.pointer, from: staging, bytes: block.bytes)
        // The copy reads pageable memory: wait for it before the staging memory goes.
        try device.synchronize()
        return buffer
    }

    /// A vector kept in fp32 (norm weights, biases).
    mutating func floats(_ values: [Float]) throws -> DeviceBuffer {
        let buffer = try device.allocate(bytes: values.count * 4)
        try values.withUnsafeBytes { try device.copy(toDevice: buffer.pointer, from: $0.baseAddress!, bytes: $0.count) }
        uploadedBytes += values.count * 4
        return buffer
    }

    private func upload(_ view: TensorView, to destination: DevicePointer) throws {
        let sameType = (view.dtype == .f32 && type == .fp32) || (view.dtype == .f16 && type == .fp16)
            || (view.dtype == .bf16 && type == .bf16)
        if sameType {
            try device.copy(toDevice: destination, from: view.data, bytes: view.byteCount)
            return
        }
        let values = view.floats()
        switch type {
        case .fp32:
            try values.withUnsafeBytes { try device.copy(toDevice: destination, from: $0.baseAddress!, bytes: $0.count) }
        case .fp16:
            let halves = values.map(floatToF16)
            try halves.withUnsafeBytes { try device.copy(toDevice: destination, from: $0.baseAddress!, bytes: $0.count) }
        case .bf16:
            let halves = values.map(floatToBF16)
            try halves.withUnsafeBytes { try device.copy(toDevice: destination, from: $0.baseAddress!, bytes: $0.count) }
        }
    }
}
