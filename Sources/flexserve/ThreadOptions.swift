import ArgumentParser
import FlexServeTensor
import Foundation

/// `--threads`: how many CPU threads the models run on (llama.cpp's `--threads`). FlexFlow's `-ll:cpu` counts the
/// Legion runtime's CPU processors, not compute threads, and is ignored with the runtime's other flags.
struct ThreadOptions: ParsableArguments {
    @Option(help: "CPU threads for the models (default: one per processor, or FLEXSERVE_THREADS).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads))") }
    }

    /// Sizes the shared thread pool; before anything uses it (it is made on first use).
    func apply() {
        if let threads { setenv(ThreadPool.threadsVariable, String(threads), 1) }
    }
}
