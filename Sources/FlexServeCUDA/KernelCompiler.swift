#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Compiles CUDA C source kept in the package with NVRTC for the device's architecture, on first
/// use, and caches the binary on disk (`$FLEXSERVE_CUDA_CACHE`, else `~/.cache/flexserve/cuda`)
/// under a hash of the source, the options, the NVRTC version and the architecture.
public final class KernelCompiler: @unchecked Sendable {
    typealias Result = Int32
    let device: CUDADevice
    let library: DynamicLibrary
    let version: (Int32, Int32)
    let nvrtcCreateProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
                                            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Result
    let nvrtcCompileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Result
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Result
    let nvrtcGetProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Result
    let nvrtcGetProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Result
    let nvrtcGetCUBINSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Result
    let nvrtcGetCUBIN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Result
    let nvrtcGetErrorString: @convention(c) (Result) -> UnsafePointer<CChar>?
    private var modules: [String: KernelModule] = [:]
    private let lock = NSLock()

    init(device: CUDADevice) throws {
        self.device = device
        let l = try DynamicLibrary(toolkit: "libnvrtc", describedAs: "NVRTC (libnvrtc)")
        library = l
        nvrtcCreateProgram = try l.function("nvrtcCreateProgram")
        nvrtcCompileProgram = try l.function("nvrtcCompileProgram")
        nvrtcDestroyProgram = try l.function("nvrtcDestroyProgram")
        nvrtcGetProgramLogSize = try l.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try l.function("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try l.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try l.function("nvrtcGetCUBIN")
        nvrtcGetErrorString = try l.function("nvrtcGetErrorString")
        let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Result = try l.function("nvrtcVersion")
        var major: Int32 = 0, minor: Int32 = 0
        _ = nvrtcVersion(&major, &minor)
        version = (major, minor)
    }

    /// The module built from `source`, compiled (or read from the disk cache) once per process.
    public func module(named name: String, source: String) throws -> KernelModule {
        lock.lock(); defer { lock.unlock() }
        if let m = modules[name] { return m }
        let options = ["--gpu-architecture=\(device.architecture)", "--std=c++17", "-default-device"]
        let key = fnv1a64(source + options.joined(separator: " ") + "nvrtc \(version.0).\(version.1)")
        let cachePath = (Self.cacheFolder as NSString).appendingPathComponent(
            "\(name)-\(device.architecture)-\(String(key, radix: 16)).cubin")
        let image: [UInt8]
        if let cached = FileManager.default.contents(atPath: cachePath), !cached.isEmpty {
            image = [UInt8](cached)
        } else {
            image = try compile(name: name, source: source, options: options)
            try? FileManager.default.createDirectory(atPath: Self.cacheFolder, withIntermediateDirectories: true)
            // Written aside and renamed, so a concurrent reader never sees half a file.
            let temporary = cachePath + ".\(getpid()).tmp"
            if FileManager.default.createFile(atPath: temporary, contents: Data(image)) {
                _ = rename(temporary, cachePath)
            }
        }
        let m = try KernelModule(device: device, image: image, name: name)
        modules[name] = m
        return m
    }

    static var cacheFolder: String {
        let env = ProcessInfo.processInfo.environment
        if let explicit = env["FLEXSERVE_CUDA_CACHE"], !explicit.isEmpty { return explicit }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache")
        return (base as NSString).appendingPathComponent("flexserve/cuda")
    }

    private func check(_ rc: Result, _ call: String, log: String = "") throws {
        if rc != 0 {
            let message = nvrtcGetErrorString(rc).map { String(cString: $0) } ?? "NVRTC error"
            throw CUDAError.nvrtc(call: call, code: rc, message: message, log: log)
        }
    }

    private func compile(name: String, source: String, options: [String]) throws -> [UInt8] {
        var program: OpaquePointer?
        try check(nvrtcCreateProgram(&program, source, name + ".cu", 0, nil, nil), "nvrtcCreateProgram(\(name))")
        defer { _ = nvrtcDestroyProgram(&program) }
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = cOptions.map { UnsafePointer($0) }
        let rc = pointers.withUnsafeBufferPointer { nvrtcCompileProgram(program, Int32(options.count), $0.baseAddress) }
        if rc != 0 {
            var size = 0
            _ = nvrtcGetProgramLogSize(program, &size)
            var log = [CChar](repeating: 0, count: size + 1)
            _ = nvrtcGetProgramLog(program, &log)
            try check(rc, "nvrtcCompileProgram(\(name), \(options.joined(separator: " ")))", log: String(cString: log))
        }
        var size = 0
        try check(nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize")
        var cubin = [CChar](repeating: 0, count: size)
        try check(nvrtcGetCUBIN(program, &cubin), "nvrtcGetCUBIN")
        return cubin.map { UInt8(bitPattern: $0) }
    }
}

/// 64-bit FNV-1a: a hash that is the same in every process (Swift's `Hasher` is seeded per run).
func fnv1a64(_ text: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// A loaded module: its kernels by name, and launches on the device's stream.
public final class KernelModule: @unchecked Sendable {
    let device: CUDADevice
    let module: OpaquePointer?
    private var functions: [String: OpaquePointer?] = [:]
    private let lock = NSLock()

    init(device: CUDADevice, image: [UInt8], name: String) throws {
        self.device = device
        var m: OpaquePointer?
        try image.withUnsafeBytes { try device.driver.check(device.driver.cuModuleLoadData(&m, $0.baseAddress!), "cuModuleLoadData(\(name))") }
        module = m
    }

    public func function(_ name: String) throws -> OpaquePointer? {
        lock.lock(); defer { lock.unlock() }
        if let f = functions[name] { return f }
        var f: OpaquePointer?
        try device.driver.check(device.driver.cuModuleGetFunction(&f, module, name), "cuModuleGetFunction(\(name))")
        functions[name] = f
        return f
    }

    /// Launches kernel `name` on the device's stream.
    public func launch(_ name: String, grid: (Int, Int, Int), block: Int, sharedBytes: Int = 0, _ arguments: [KernelArgument]) throws {
        let f = try function(name)
        let d = device.driver
        if sharedBytes > 48 * 1024 {
            try d.check(d.cuFuncSetAttribute(f, 8 /* MAX_DYNAMIC_SHARED_SIZE_BYTES */, Int32(sharedBytes)), "cuFuncSetAttribute(\(name))")
        }
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(1, arguments.count) * 8, alignment: 8)
        defer { storage.deallocate() }
        var pointers = [UnsafeMutableRawPointer?](repeating: nil, count: arguments.count)
        for (i, a) in arguments.enumerated() {
            let slot = storage + i * 8
            switch a {
            case .pointer(let p): slot.storeBytes(of: p, as: UInt64.self)
            case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
            case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
            case .float(let v): slot.storeBytes(of: v, as: Float.self)
            }
            pointers[i] = slot
        }
        let rc = pointers.withUnsafeMutableBufferPointer { p in
            d.cuLaunchKernel(f, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block), 1, 1,
                             UInt32(sharedBytes), device.stream, p.baseAddress, nil)
        }
        try d.check(rc, "cuLaunchKernel(\(name), grid \(grid), block \(block), shared \(sharedBytes))")
    }
}

/// One kernel parameter, as the C signature takes it.
public enum KernelArgument {
    case pointer(DevicePointer)
    case int32(Int32)
    case int64(Int64)
    case float(Float)

    public static func int(_ v: Int) -> KernelArgument { .int32(Int32(v)) }
}
