import Foundation

/// Launches captured from the device's stream once and replayed with one `cuGraphLaunch`: a decode step
/// of a small model is hundreds of short kernels whose launch cost on the host exceeds their run time on
/// the GPU. A replay reads and writes exactly the device addresses the capture saw, so whatever varies
/// between replays must live in device buffers at fixed addresses (the caller's concern).
final class CUDAGraph {
    let device: CUDADevice
    private let exec: OpaquePointer?
    private let functions: CUDADriver.GraphFunctions

    /// Captures what `body` queues on the device's stream (nothing executes while capturing). When `body`
    /// or the capture fails, the stream is left out of capture mode and the error is rethrown.
    init(device: CUDADevice, _ body: () throws -> Void) throws {
        let d = device.driver
        guard let g = d.graphs else { throw CUDAError.unsupported("this CUDA driver has no stream-capture / graph API") }
        self.device = device
        functions = g
        // Relaxed mode: cuBLAS may make calls that the stricter modes refuse during a capture.
        try d.check(g.cuStreamBeginCapture(device.stream, 2 /* CU_STREAM_CAPTURE_MODE_RELAXED */), "cuStreamBeginCapture")
        var graph: OpaquePointer?
        do {
            try body()
        } catch {
            _ = g.cuStreamEndCapture(device.stream, &graph)
            if graph != nil { _ = g.cuGraphDestroy(graph) }
            throw error
        }
        try d.check(g.cuStreamEndCapture(device.stream, &graph), "cuStreamEndCapture")
        defer { _ = g.cuGraphDestroy(graph) }
        var e: OpaquePointer?
        try d.check(g.cuGraphInstantiateWithFlags(&e, graph, 0), "cuGraphInstantiateWithFlags")
        exec = e
    }

    /// Queues one replay on the device's stream.
    func launch() throws {
        try device.driver.check(functions.cuGraphLaunch(exec, device.stream), "cuGraphLaunch")
    }

    deinit {
        _ = device.driver.cuCtxSetCurrent(device.context)
        _ = functions.cuGraphExecDestroy(exec)
    }
}
