#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A shared library opened at run time: nothing CUDA is linked at build time, so builds and CI
/// need no toolkit and machines without a GPU run everything else.
final class DynamicLibrary: @unchecked Sendable {
    let name: String
    let handle: UnsafeMutableRawPointer

    /// Opens the first of `candidates` that loads.
    init(_ name: String, candidates: [String]) throws {
        var reason = ""
        for candidate in candidates {
            if let h = dlopen(candidate, RTLD_NOW | RTLD_GLOBAL) {
                self.name = candidate
                handle = h
                return
            }
            if let e = dlerror() { reason = String(cString: e) }
        }
        throw CUDAError.libraryMissing(library: name, tried: candidates, reason: reason)
    }

    /// The C function `symbol` as the Swift function type `T`.
    func function<T>(_ symbol: String, as _: T.Type = T.self) throws -> T {
        guard let p = dlsym(handle, symbol) else { throw CUDAError.symbolMissing(library: name, symbol: symbol) }
        return unsafeBitCast(p, to: T.self)
    }

    /// A CUDA toolkit library (`libcublas`, `libnvrtc`): by soname for each major version, newest
    /// first, then in `/usr/local/cuda/lib64` where the loader path may not reach.
    convenience init(toolkit base: String, describedAs name: String, majorVersions: [Int] = [13, 12]) throws {
        let sonames = majorVersions.map { "\(base).so.\($0)" } + ["\(base).so"]
        try self.init(name, candidates: sonames + sonames.map { "/usr/local/cuda/lib64/" + $0 })
    }
}
