import Foundation

/// cuBLAS, opened at run time, for the model's matrix products (`cublasGemmEx`, fp32 accumulation).
public final class CUBLAS: @unchecked Sendable {
    typealias Status = Int32
    let device: CUDADevice
    let library: DynamicLibrary
    let handle: OpaquePointer?
    /// A workspace of our own, so cuBLAS never allocates during a stream capture (CUDA graphs need this);
    /// nil when this cuBLAS lacks `cublasSetWorkspace`, and then its GEMMs are not captured.
    let workspace: DeviceBuffer?
    let cublasGemmEx: @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32,
                                      UnsafeRawPointer, UInt64, Int32, Int32, UInt64, Int32, Int32,
                                      UnsafeRawPointer, UInt64, Int32, Int32, Int32, Int32) -> Status

    /// Element types (`cudaDataType_t`) the GEMMs use.
    public enum ElementType: Int32, Sendable {
        case f32 = 0
        case f16 = 2
        case bf16 = 14
    }

    init(device: CUDADevice) throws {
        self.device = device
        let l = try DynamicLibrary(toolkit: "libcublas", describedAs: "cuBLAS (libcublas)")
        library = l
        let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status = try l.function("cublasCreate_v2")
        let setStream: @convention(c) (OpaquePointer?, OpaquePointer?) -> Status = try l.function("cublasSetStream_v2")
        cublasGemmEx = try l.function("cublasGemmEx")
        try device.makeCurrent()
        var h: OpaquePointer?
        try Self.check(create(&h), "cublasCreate")
        handle = h
        try Self.check(setStream(h, device.stream), "cublasSetStream")
        // 32 MiB: what NVIDIA recommends for Hopper.
        if let setWorkspace: @convention(c) (OpaquePointer?, UInt64, Int) -> Status = try? l.function("cublasSetWorkspace_v2"),
           let buffer = try? device.allocate(bytes: 32 << 20), setWorkspace(h, buffer.pointer, buffer.bytes) == 0 {
            workspace = buffer
        } else {
            workspace = nil
        }
    }

    static func check(_ status: Status, _ call: @autoclosure () -> String) throws {
        if status != 0 { throw CUDAError.cublas(call: call(), status: status, name: cublasStatusName(status)) }
    }

    /// Row-major `out[tokens][n] = x[tokens][k] · wᵀ + beta · out`, with `w` stored `[n][k]` as
    /// PyTorch stores a Linear weight. `out` is fp32; `x` and `w` share `inputType`.
    /// In cuBLAS's column-major terms this is `outᵀ (n×tokens) = w(k×n)ᵀ · xᵀ(k×tokens)`.
    public func linear(x: DevicePointer, w: DevicePointer, inputType: ElementType, out: DevicePointer,
                       tokens: Int, n: Int, k: Int, accumulate: Bool = false) throws {
        var alpha: Float = 1, beta: Float = accumulate ? 1 : 0
        let status = cublasGemmEx(handle, 1 /* OP_T */, 0 /* OP_N */, Int32(n), Int32(tokens), Int32(k),
                                  &alpha, w, inputType.rawValue, Int32(k),
                                  x, inputType.rawValue, Int32(k),
                                  &beta, out, ElementType.f32.rawValue, Int32(n),
                                  68 /* CUBLAS_COMPUTE_32F */, -1 /* CUBLAS_GEMM_DEFAULT */)
        try Self.check(status, "cublasGemmEx(n \(n), tokens \(tokens), k \(k))")
    }
}
