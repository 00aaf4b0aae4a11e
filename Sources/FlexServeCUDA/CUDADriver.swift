#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Device memory address (`CUdeviceptr`).
public typealias DevicePointer = UInt64

/// The NVIDIA driver API, opened at run time with `dlopen`. Every call goes through `check`, which
/// turns a failure into a `CUDAError.driver` with the driver's own name and message for the code.
public final class CUDADriver: @unchecked Sendable {
    typealias Result = Int32
    typealias Handle = OpaquePointer?

    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> Result
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Result
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Result
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, Int32) -> Result
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<Handle>, Int32) -> Result
    let cuCtxSetCurrent: @convention(c) (Handle) -> Result
    let cuCtxSynchronize: @convention(c) () -> Result
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<DevicePointer>, Int) -> Result
    let cuMemFree: @convention(c) (DevicePointer) -> Result
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Result
    let cuMemcpyHtoDAsync: @convention(c) (DevicePointer, UnsafeRawPointer, Int, Handle) -> Result
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer, DevicePointer, Int, Handle) -> Result
    let cuMemcpyDtoDAsync: @convention(c) (DevicePointer, DevicePointer, Int, Handle) -> Result
    let cuMemsetD8Async: @convention(c) (DevicePointer, UInt8, Int, Handle) -> Result
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<Handle>, UInt32) -> Result
    let cuStreamSynchronize: @convention(c) (Handle) -> Result
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<Handle>, UInt32) -> Result
    let cuEventRecord: @convention(c) (Handle, Handle) -> Result
    let cuEventSynchronize: @convention(c) (Handle) -> Result
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, Handle, Handle) -> Result
    let cuEventDestroy: @convention(c) (Handle) -> Result
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<Handle>, UnsafeRawPointer) -> Result
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<Handle>, Handle, UnsafePointer<CChar>) -> Result
    let cuFuncSetAttribute: @convention(c) (Handle, Int32, Int32) -> Result
    let cuLaunchKernel: @convention(c) (Handle, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, Handle,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Result
    let cuMemHostAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> Result
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Result
    let cuStreamWaitEvent: @convention(c) (Handle, Handle, UInt32) -> Result
    let cuStreamDestroy: @convention(c) (Handle) -> Result
    let cuGetErrorName: @convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result
    let cuGetErrorString: @convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result
    /// Stream capture and graph replay (CUDA 11.4+); nil when this driver lacks them, and graphs are then off.
    let graphs: GraphFunctions?

    struct GraphFunctions {
        let cuStreamBeginCapture: @convention(c) (Handle, Int32) -> Result
        let cuStreamEndCapture: @convention(c) (Handle, UnsafeMutablePointer<Handle>) -> Result
        let cuGraphInstantiateWithFlags: @convention(c) (UnsafeMutablePointer<Handle>, Handle, UInt64) -> Result
        let cuGraphLaunch: @convention(c) (Handle, Handle) -> Result
        let cuGraphDestroy: @convention(c) (Handle) -> Result
        let cuGraphExecDestroy: @convention(c) (Handle) -> Result
    }

    /// Loads libcuda and initialises it; throws a clear error when there is no driver or no GPU.
    public init() throws {
        let l = try DynamicLibrary("the CUDA driver (libcuda)", candidates: ["libcuda.so.1", "libcuda.so"])
        library = l
        cuInit = try l.function("cuInit")
        cuDeviceGetCount = try l.function("cuDeviceGetCount")
        cuDeviceGet = try l.function("cuDeviceGet")
        cuDeviceGetName = try l.function("cuDeviceGetName")
        cuDeviceGetAttribute = try l.function("cuDeviceGetAttribute")
        cuDeviceTotalMem = try l.function("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try l.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try l.function("cuCtxSetCurrent")
        cuCtxSynchronize = try l.function("cuCtxSynchronize")
        cuMemAlloc = try l.function("cuMemAlloc_v2")
        cuMemFree = try l.function("cuMemFree_v2")
        cuMemGetInfo = try l.function("cuMemGetInfo_v2")
        cuMemcpyHtoDAsync = try l.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try l.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try l.function("cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try l.function("cuMemsetD8Async")
        cuStreamCreate = try l.function("cuStreamCreate")
        cuStreamSynchronize = try l.function("cuStreamSynchronize")
        cuEventCreate = try l.function("cuEventCreate")
        cuEventRecord = try l.function("cuEventRecord")
        cuEventSynchronize = try l.function("cuEventSynchronize")
        cuEventElapsedTime = try l.function("cuEventElapsedTime_v2", or: "cuEventElapsedTime", in: l)
        cuEventDestroy = try l.function("cuEventDestroy_v2")
        cuModuleLoadData = try l.function("cuModuleLoadData")
        cuModuleGetFunction = try l.function("cuModuleGetFunction")
        cuFuncSetAttribute = try l.function("cuFuncSetAttribute")
        cuLaunchKernel = try l.function("cuLaunchKernel")
        cuMemHostAlloc = try l.function("cuMemHostAlloc")
        cuMemFreeHost = try l.function("cuMemFreeHost")
        cuStreamWaitEvent = try l.function("cuStreamWaitEvent")
        cuStreamDestroy = try l.function("cuStreamDestroy_v2")
        cuGetErrorName = try l.function("cuGetErrorName")
        cuGetErrorString = try l.function("cuGetErrorString")
        graphs = try? GraphFunctions(
            cuStreamBeginCapture: l.function("cuStreamBeginCapture_v2", or: "cuStreamBeginCapture", in: l),
            cuStreamEndCapture: l.function("cuStreamEndCapture"),
            cuGraphInstantiateWithFlags: l.function("cuGraphInstantiateWithFlags"),
            cuGraphLaunch: l.function("cuGraphLaunch"),
            cuGraphDestroy: l.function("cuGraphDestroy"),
            cuGraphExecDestroy: l.function("cuGraphExecDestroy"))
        let rc = cuInit(0)
        if rc != 0 {
            throw CUDAError.noDevice("cuInit: \(errorName(rc)): \(errorMessage(rc))")
        }
    }

    /// Throws `CUDAError.driver` with CUDA's name and message when `result` is not CUDA_SUCCESS.
    @inline(__always)
    func check(_ result: Result, _ call: @autoclosure () -> String) throws {
        if result != 0 {
            throw CUDAError.driver(call: call(), code: result, name: errorName(result), message: errorMessage(result))
        }
    }

    func errorName(_ code: Result) -> String {
        var p: UnsafePointer<CChar>?
        return cuGetErrorName(code, &p) == 0 && p != nil ? String(cString: p!) : "CUresult \(code)"
    }

    func errorMessage(_ code: Result) -> String {
        var p: UnsafePointer<CChar>?
        return cuGetErrorString(code, &p) == 0 && p != nil ? String(cString: p!) : "unknown error"
    }

    public func deviceCount() throws -> Int {
        var count: Int32 = 0
        try check(cuDeviceGetCount(&count), "cuDeviceGetCount")
        return Int(count)
    }
}

extension DynamicLibrary {
    /// `primary` if the library has it, else `fallback` (symbols renamed across CUDA versions).
    func function<T>(_ primary: String, or fallback: String, in _: DynamicLibrary) throws -> T {
        if let p = dlsym(handle, primary) { return unsafeBitCast(p, to: T.self) }
        return try function(fallback)
    }
}
