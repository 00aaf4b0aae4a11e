/// Times work on the device's stream with a pair of CUDA events (GPU time, not host time).
public final class CUDAEventTimer: @unchecked Sendable {
    let device: CUDADevice
    let start: OpaquePointer?
    let end: OpaquePointer?

    public init(device: CUDADevice) throws {
        self.device = device
        let d = device.driver
        var a: OpaquePointer?, b: OpaquePointer?
        try d.check(d.cuEventCreate(&a, 0), "cuEventCreate")
        try d.check(d.cuEventCreate(&b, 0), "cuEventCreate")
        start = a
        end = b
    }

    deinit {
        _ = device.driver.cuEventDestroy(start)
        _ = device.driver.cuEventDestroy(end)
    }

    public func recordStart() throws { try device.driver.check(device.driver.cuEventRecord(start, device.stream), "cuEventRecord") }
    public func recordEnd() throws { try device.driver.check(device.driver.cuEventRecord(end, device.stream), "cuEventRecord") }

    /// Milliseconds between the two records, once the second has happened.
    public func elapsedMilliseconds() throws -> Double {
        let d = device.driver
        try d.check(d.cuEventSynchronize(end), "cuEventSynchronize")
        var ms: Float = 0
        try d.check(d.cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime")
        return Double(ms)
    }
}
