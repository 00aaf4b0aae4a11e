import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Progress on standard error: a redrawn bar per file when stderr is a terminal, otherwise one
/// plain line per finished file (nothing is redrawn into logs).
public final class TerminalProgress: HubProgressReporter, @unchecked Sendable {
    public let isTerminal: Bool
    let lock = NSLock()
    var file = ""
    var total: Int64?
    var started = Date()
    var startBytes: Int64 = 0
    var lastDraw = Date.distantPast
    var lastCompleted: Int64 = 0

    public init(isTerminal: Bool = isatty(2) != 0) {
        self.isTerminal = isTerminal
    }

    func emit(_ s: String) {
        FileHandle.standardError.write(Data(s.utf8))
    }

    public func start(file: String, total: Int64?, resumedAt: Int64) {
        lock.lock(); defer { lock.unlock() }
        self.file = file
        self.total = total
        started = Date()
        startBytes = resumedAt
        lastCompleted = resumedAt
        lastDraw = .distantPast
        if isTerminal { draw(resumedAt, force: true) } else if resumedAt > 0 {
            emit("\(file): resuming at \(TerminalProgress.bytes(resumedAt))\n")
        }
    }

    public func advance(file: String, completed: Int64) {
        lock.lock(); defer { lock.unlock() }
        lastCompleted = completed
        if isTerminal { draw(completed, force: false) }
    }

    public func finish(file: String, bytes: Int64, cached: Bool) {
        lock.lock(); defer { lock.unlock() }
        if isTerminal && !cached && file == self.file {
            draw(bytes, force: true)
            emit("\n")
        } else {
            emit("\(file): \(TerminalProgress.bytes(bytes))\(cached ? " (in cache)" : "")\n")
        }
        self.file = ""
    }

    public func note(_ text: String) {
        lock.lock(); defer { lock.unlock() }
        emit((isTerminal && !file.isEmpty ? "\r\u{1B}[K" : "") + text + "\n")
        if isTerminal && !file.isEmpty { draw(lastCompleted, force: true) }
    }

    func draw(_ completed: Int64, force: Bool) {
        let now = Date()
        if !force && now.timeIntervalSince(lastDraw) < 0.1 { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(started), 1e-3)
        let rate = Double(completed - startBytes) / elapsed
        var line = file.count > 36 ? "…" + String(file.suffix(35)) : file.padding(toLength: 36, withPad: " ", startingAt: 0)
        if let total, total > 0 {
            let frac = min(1, Double(completed) / Double(total))
            let width = 28
            let filled = Int(frac * Double(width))
            line += " [" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
            line += String(format: " %3d%% ", Int(frac * 100)) + TerminalProgress.bytes(completed) + "/" + TerminalProgress.bytes(total)
        } else {
            line += " " + TerminalProgress.bytes(completed)
        }
        line += "  " + TerminalProgress.bytes(Int64(rate)) + "/s"
        emit("\r\u{1B}[K" + line)
    }

    public static func bytes(_ n: Int64) -> String {
        let d = Double(n)
        if d >= 1e9 { return String(format: "%.2f GB", d / 1e9) }
        if d >= 1e6 { return String(format: "%.1f MB", d / 1e6) }
        if d >= 1e3 { return String(format: "%.1f kB", d / 1e3) }
        return "\(n) B"
    }
}
