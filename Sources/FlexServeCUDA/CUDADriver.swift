#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The NVIDIA driver, opened at run time with `dlopen` so that nothing CUDA is linked at build
/// time and machines without a GPU run everything else.
public final class CUDADriver: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public let deviceCount: Int
    public let deviceNames: [String]
    private let handle: UnsafeMutableRawPointer

    /// Loads libcuda and initialises it; throws a clear error when there is no driver or no GPU.
    public init() throws {
        guard let h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL) ?? dlopen("libcuda.so", RTLD_NOW | RTLD_GLOBAL) else {
            throw Failure(description: "no CUDA driver: libcuda.so.1 cannot be loaded (\(String(cString: dlerror()))); is this a machine with an NVIDIA GPU and its driver?")
        }
        handle = h
        typealias Init = @convention(c) (UInt32) -> Int32
        typealias Count = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
        typealias Get = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
        typealias Name = @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Int32
        func symbol<T>(_ name: String, _: T.Type) throws -> T {
            guard let p = dlsym(h, name) else { throw Failure(description: "CUDA driver lacks \(name)") }
            return unsafeBitCast(p, to: T.self)
        }
        let cuInit = try symbol("cuInit", Init.self)
        let cuDeviceGetCount = try symbol("cuDeviceGetCount", Count.self)
        let cuDeviceGet = try symbol("cuDeviceGet", Get.self)
        let cuDeviceGetName = try symbol("cuDeviceGetName", Name.self)
        let rc = cuInit(0)
        guard rc == 0 else { throw Failure(description: "cuInit failed with CUDA error \(rc): no usable GPU") }
        var count: Int32 = 0
        guard cuDeviceGetCount(&count) == 0, count > 0 else { throw Failure(description: "the CUDA driver sees no GPU") }
        deviceCount = Int(count)
        deviceNames = (0..<count).map { i in
            var device: Int32 = 0
            var name = [CChar](repeating: 0, count: 256)
            guard cuDeviceGet(&device, i) == 0, cuDeviceGetName(&name, 256, device) == 0 else { return "GPU \(i)" }
            return String(cString: name)
        }
    }
}
