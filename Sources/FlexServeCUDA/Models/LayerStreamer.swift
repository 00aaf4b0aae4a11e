import Foundation

/// `--offload`: every decoder layer's weight block stays in pinned host memory and is copied to one of two
/// device buffers on a copy stream of its own, ahead of use. Layer l's copy waits until the layer that used
/// its buffer two places earlier has finished (an event on the compute stream); the compute stream waits for
/// the copy (an event on the copy stream). So while layer l computes, layer l + 1 is being copied, and the copy
/// engine never idles when a layer computes faster than it copies. Copies run in one sequence across steps:
/// the next step's first two layers are copied while this step's last layers and its head run.
final class LayerStreamer {
    let device: CUDADevice
    /// One pinned block per layer.
    let host: [PinnedHostBuffer]
    let sizes: [Int]
    private let slots: [DeviceBuffer]
    private let copyStream: OpaquePointer?
    /// Per slot: recorded on the copy stream after a copy into it, and on the compute stream after its last use.
    private var copied: [OpaquePointer?] = []
    private var released: [OpaquePointer?] = []
    /// Sequence numbers (step · layers + layer) of the next layer copy to issue and the next layer to use.
    private var nextCopy = 0, nextUse = 0

    /// Bytes copied to the GPU per step.
    var streamedBytes: Int { sizes.reduce(0, +) }

    init(device: CUDADevice, blocks: [WeightBlock]) throws {
        self.device = device
        let d = device.driver
        sizes = blocks.map(\.bytes)
        host = try blocks.map { block in
            let buffer = try PinnedHostBuffer(device: device, bytes: block.bytes)
            block.write(to: buffer.pointer)
            return buffer
        }
        let largest = sizes.max() ?? 0
        slots = try (0..<2).map { _ in try device.allocate(bytes: largest) }
        var s: OpaquePointer?
        try d.check(d.cuStreamCreate(&s, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate(copy stream)")
        copyStream = s
        for _ in 0..<2 {
            var a: OpaquePointer?, b: OpaquePointer?
            try d.check(d.cuEventCreate(&a, 2 /* CU_EVENT_DISABLE_TIMING */), "cuEventCreate")
            try d.check(d.cuEventCreate(&b, 2), "cuEventCreate")
            copied.append(a)
            released.append(b)
        }
    }

    deinit {
        let d = device.driver
        _ = d.cuCtxSetCurrent(device.context)
        _ = d.cuStreamSynchronize(copyStream)
        for e in copied + released { _ = d.cuEventDestroy(e) }
        _ = d.cuStreamDestroy(copyStream)
    }

    private var layers: Int { sizes.count }

    private func issueCopy() throws {
        let d = device.driver
        let slot = nextCopy % 2, layer = nextCopy % layers
        try d.check(d.cuStreamWaitEvent(copyStream, released[slot], 0), "cuStreamWaitEvent(copy stream)")
        try d.check(d.cuMemcpyHtoDAsync(slots[slot].pointer, host[layer].pointer, sizes[layer], copyStream),
                    "cuMemcpyHtoDAsync(layer \(layer), \(sizes[layer]) bytes)")
        try d.check(d.cuEventRecord(copied[slot], copyStream), "cuEventRecord(copied)")
        nextCopy += 1
    }

    /// The device address of layer `layer`'s block, once the compute stream has been told to wait for its copy.
    /// Layers must be used in order, each step from layer 0.
    func acquire(layer: Int) throws -> DevicePointer {
        if nextUse % layers != layer {
            // A step broke off part-way (an error): drain both streams and restart the sequence at this layer.
            let d = device.driver
            try d.check(d.cuStreamSynchronize(copyStream), "cuStreamSynchronize(copy stream)")
            try device.synchronize()
            nextUse = layer
            nextCopy = layer
        }
        while nextCopy < nextUse + 2 { try issueCopy() }
        let slot = nextUse % 2
        let d = device.driver
        try d.check(d.cuStreamWaitEvent(device.stream, copied[slot], 0), "cuStreamWaitEvent(compute stream)")
        return slots[slot].pointer
    }

    /// The layer acquired last has all its work queued: its buffer may take the layer two places on.
    func release() throws {
        let d = device.driver
        try d.check(d.cuEventRecord(released[nextUse % 2], device.stream), "cuEventRecord(released)")
        nextUse += 1
        while nextCopy < nextUse + 2 { try issueCopy() }
    }

    /// Host-to-device bandwidth from pinned memory on this device (bytes per second): the median of `repeats`
    /// copies of `bytes`, timed with events on the device's stream.
    static func hostToDeviceBandwidth(device: CUDADevice, bytes: Int = 1 << 30, repeats: Int = 5) throws -> Double {
        let source = try PinnedHostBuffer(device: device, bytes: bytes)
        memset(source.pointer, 1, bytes)
        let destination = try device.allocate(bytes: bytes)
        let timer = try CUDAEventTimer(device: device)
        var times: [Double] = []
        for _ in 0..<(repeats + 1) {
            try timer.recordStart()
            try device.copy(toDevice: destination.pointer, from: source.pointer, bytes: bytes)
            try timer.recordEnd()
            times.append(try timer.elapsedMilliseconds())
        }
        let sorted = times.dropFirst().sorted()
        return Double(bytes) / (sorted[sorted.count / 2] / 1e3)
    }
}

/// Page-locked host memory (`cuMemHostAlloc`): the GPU's copy engines read it directly, at full PCIe speed and
/// asynchronously, which pageable memory does not allow.
final class PinnedHostBuffer {
    let device: CUDADevice
    let pointer: UnsafeMutableRawPointer
    let bytes: Int

    init(device: CUDADevice, bytes: Int) throws {
        self.device = device
        self.bytes = bytes
        var p: UnsafeMutableRawPointer?
        let d = device.driver
        let rc = d.cuMemHostAlloc(&p, max(bytes, 256), 0)
        guard rc == 0, let p else {
            throw CUDAError.driver(call: "cuMemHostAlloc(\(bytes) bytes of pinned host memory for --offload)", code: rc,
                                   name: d.errorName(rc), message: d.errorMessage(rc))
        }
        pointer = p
    }

    deinit {
        _ = device.driver.cuCtxSetCurrent(device.context)
        _ = device.driver.cuMemFreeHost(pointer)
    }
}

extension CUDADevice {
    /// Host-to-device copy bandwidth from pinned memory, bytes per second (what `--offload` streams at).
    public func pinnedHostToDeviceBandwidth() throws -> Double {
        try makeCurrent()
        return try LayerStreamer.hostToDeviceBandwidth(device: self)
    }
}
