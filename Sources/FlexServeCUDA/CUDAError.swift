/// Failures of the CUDA backend, each carrying the library's own message.
public enum CUDAError: Error, CustomStringConvertible, Sendable {
    /// A library could not be opened (no driver, no toolkit on the library path).
    case libraryMissing(library: String, tried: [String], reason: String)
    /// A library lacks a function this backend calls (too old a version).
    case symbolMissing(library: String, symbol: String)
    /// The driver loaded but sees no GPU.
    case noDevice(String)
    /// A driver API call failed: `cuGetErrorName`/`cuGetErrorString` of its result.
    case driver(call: String, code: Int32, name: String, message: String)
    /// NVRTC failed; `log` is the compiler's log when there is one.
    case nvrtc(call: String, code: Int32, message: String, log: String)
    /// A cuBLAS call failed with this status.
    case cublas(call: String, status: Int32, name: String)
    /// The model or its weights cannot run on this backend.
    case unsupported(String)

    public var description: String {
        switch self {
        case let .libraryMissing(library, tried, reason):
            return "CUDA backend: cannot load \(library) (tried \(tried.joined(separator: ", ")): \(reason)). "
                + "Is this a machine with an NVIDIA GPU, its driver, and the CUDA libraries on LD_LIBRARY_PATH (e.g. /usr/local/cuda/lib64)?"
        case let .symbolMissing(library, symbol):
            return "CUDA backend: \(library) has no \(symbol) (too old a version?)"
        case let .noDevice(why):
            return "CUDA backend: no usable GPU: \(why)"
        case let .driver(call, code, name, message):
            return "CUDA driver: \(call) failed with \(name) (\(code)): \(message)"
        case let .nvrtc(call, code, message, log):
            return "NVRTC: \(call) failed (\(code)): \(message)" + (log.isEmpty ? "" : "\n\(log)")
        case let .cublas(call, status, name):
            return "cuBLAS: \(call) failed with \(name) (\(status))"
        case let .unsupported(why):
            return "CUDA backend: \(why)"
        }
    }
}

/// cuBLAS status names (cublas_api.h), since cuBLAS has no string function for them in all versions.
func cublasStatusName(_ status: Int32) -> String {
    switch status {
    case 0: return "CUBLAS_STATUS_SUCCESS"
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED"
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED"
    case 7: return "CUBLAS_STATUS_INVALID_VALUE"
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH"
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR"
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED"
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR"
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED"
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR"
    default: return "cuBLAS status \(status)"
    }
}
