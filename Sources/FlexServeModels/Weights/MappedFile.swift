import Foundation

/// A read-only memory map of a whole file. Weights are used in place from it where their format
/// allows, so loading a model costs page faults rather than copies.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw WeightFileError(file: path, tensor: nil, problem: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw WeightFileError(file: path, tensor: nil, problem: "cannot stat: \(String(cString: strerror(errno)))")
        }
        size = Int(info.st_size)
        guard size > 0 else { throw WeightFileError(file: path, tensor: nil, problem: "file is empty") }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw WeightFileError(file: path, tensor: nil, problem: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
    }

    /// Takes the whole pages of `byteCount` bytes from `start` (inside the map) out of the process's resident memory:
    /// touched again, they are read back from the file (the map is read-only and private, so they never differ from it).
    public func release(_ start: UnsafeRawPointer, byteCount: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (Int(bitPattern: start) + page - 1) / page * page, end = (Int(bitPattern: start) + byteCount) / page * page
        guard end > first, let pages = UnsafeMutableRawPointer(bitPattern: first) else { return }
        _ = madvise(pages, end - first, MADV_DONTNEED)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}

/// A bounds-checked little-endian reader over a mapped file's header.
struct ByteReader {
    let file: MappedFile
    var offset: Int

    init(_ file: MappedFile, offset: Int = 0) {
        self.file = file
        self.offset = offset
    }

    mutating func bytes(_ count: Int, what: String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, offset <= file.size, count <= file.size - offset else {
            throw WeightFileError(file: file.path, tensor: nil,
                                  problem: "truncated: \(what) needs \(count) bytes at offset \(offset), file has \(file.size)")
        }
        let buffer = UnsafeRawBufferPointer(start: file.base + offset, count: count)
        offset += count
        return buffer
    }

    mutating func read<T: FixedWidthInteger>(_ type: T.Type, what: String) throws -> T {
        let raw = try bytes(MemoryLayout<T>.size, what: what)
        return T(littleEndian: raw.loadUnaligned(as: T.self))
    }

    mutating func readFloat(what: String) throws -> Float { Float(bitPattern: try read(UInt32.self, what: what)) }
    mutating func readDouble(what: String) throws -> Double { Double(bitPattern: try read(UInt64.self, what: what)) }
}
