import Foundation

/// One GPU: its primary context, a stream all work is queued on, and the libraries the backend
/// uses (driver, NVRTC, cuBLAS). Work is ordered on `stream`; host copies out synchronise it.
public final class CUDADevice: @unchecked Sendable {
    public let driver: CUDADriver
    public let ordinal: Int
    public let name: String
    /// Compute capability, e.g. (9, 0) for Hopper.
    public let capability: (major: Int, minor: Int)
    public let totalMemory: Int
    let context: OpaquePointer?
    let stream: OpaquePointer?
    let lock = NSLock()
    private var blasHandle: CUBLAS?
    private var compilerInstance: KernelCompiler?

    /// Opens GPU `ordinal`; throws `CUDAError` when there is no driver or no such GPU.
    public init(ordinal: Int = 0) throws {
        let d = try CUDADriver()
        driver = d
        self.ordinal = ordinal
        let count = try d.deviceCount()
        guard ordinal < count else {
            throw CUDAError.noDevice(count == 0 ? "the driver sees no GPU" : "GPU \(ordinal) requested, the driver sees \(count)")
        }
        var device: Int32 = 0
        try d.check(d.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var buffer = [CChar](repeating: 0, count: 256)
        try d.check(d.cuDeviceGetName(&buffer, 256, device), "cuDeviceGetName")
        name = String(cString: buffer)
        var major: Int32 = 0, minor: Int32 = 0
        try d.check(d.cuDeviceGetAttribute(&major, 75, device), "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)")
        try d.check(d.cuDeviceGetAttribute(&minor, 76, device), "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)")
        capability = (Int(major), Int(minor))
        var total = 0
        try d.check(d.cuDeviceTotalMem(&total, device), "cuDeviceTotalMem")
        totalMemory = total
        // The primary context is the one cuBLAS (a runtime-API library) uses too.
        var ctx: OpaquePointer?
        try d.check(d.cuDevicePrimaryCtxRetain(&ctx, device), "cuDevicePrimaryCtxRetain")
        context = ctx
        try d.check(d.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        var s: OpaquePointer?
        try d.check(d.cuStreamCreate(&s, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate")
        stream = s
    }

    /// The shared default device, opened on first use (nil error is cached too: no retry storm).
    public static func shared() throws -> CUDADevice {
        try sharedDevice.get()
    }

    private static let sharedDevice: Result<CUDADevice, Error> = Result { try CUDADevice() }

    /// Makes this device's context current on the calling thread (contexts are per thread).
    public func makeCurrent() throws {
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    }

    public func cublas() throws -> CUBLAS {
        lock.lock(); defer { lock.unlock() }
        if let blasHandle { return blasHandle }
        let b = try CUBLAS(device: self)
        blasHandle = b
        return b
    }

    public func compiler() throws -> KernelCompiler {
        lock.lock(); defer { lock.unlock() }
        if let compilerInstance { return compilerInstance }
        let c = try KernelCompiler(device: self)
        compilerInstance = c
        return c
    }

    public func allocate(bytes: Int) throws -> DeviceBuffer {
        try DeviceBuffer(device: self, bytes: bytes)
    }

    public func synchronize() throws {
        try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    public func copy(toDevice destination: DevicePointer, from source: UnsafeRawPointer, bytes: Int) throws {
        guard bytes > 0 else { return }
        try driver.check(driver.cuMemcpyHtoDAsync(destination, source, bytes, stream), "cuMemcpyHtoDAsync(\(bytes) bytes)")
    }

    /// Copies to host memory and waits for it (and all work queued before it).
    public func copy(toHost destination: UnsafeMutableRawPointer, from source: DevicePointer, bytes: Int) throws {
        guard bytes > 0 else { return }
        try driver.check(driver.cuMemcpyDtoHAsync(destination, source, bytes, stream), "cuMemcpyDtoHAsync(\(bytes) bytes)")
        try synchronize()
    }

    public func copy(onDevice destination: DevicePointer, from source: DevicePointer, bytes: Int) throws {
        guard bytes > 0 else { return }
        try driver.check(driver.cuMemcpyDtoDAsync(destination, source, bytes, stream), "cuMemcpyDtoDAsync(\(bytes) bytes)")
    }

    public func zero(_ destination: DevicePointer, bytes: Int) throws {
        try driver.check(driver.cuMemsetD8Async(destination, 0, bytes, stream), "cuMemsetD8Async")
    }

    /// Free and total device memory in bytes.
    public func memoryInfo() throws -> (free: Int, total: Int) {
        var free = 0, total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo")
        return (free, total)
    }

    /// "sm_90"-style architecture name for NVRTC.
    public var architecture: String { "sm_\(capability.major)\(capability.minor)" }
}

/// Device memory freed with its owner.
public final class DeviceBuffer: @unchecked Sendable {
    public let pointer: DevicePointer
    public let bytes: Int
    let device: CUDADevice

    init(device: CUDADevice, bytes: Int) throws {
        self.device = device
        self.bytes = bytes
        var p: DevicePointer = 0
        let d = device.driver
        let rc = d.cuMemAlloc(&p, max(bytes, 256))
        if rc != 0 {
            let info = (try? device.memoryInfo()).map { " (\($0.free >> 20) MiB free of \($0.total >> 20) MiB)" } ?? ""
            throw CUDAError.driver(call: "cuMemAlloc(\(bytes) bytes)\(info)", code: rc, name: d.errorName(rc), message: d.errorMessage(rc))
        }
        pointer = p
    }

    deinit {
        _ = device.driver.cuCtxSetCurrent(device.context)
        _ = device.driver.cuMemFree(pointer)
    }

    /// The address `bytes` in.
    public func offset(_ bytes: Int) -> DevicePointer { pointer + DevicePointer(bytes) }
}
