import Foundation

/// Writes a benchmark or check report as sorted, indented JSON (stable diffs when results are committed).
func writeJSON(_ value: some Encodable, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(value).write(to: URL(fileURLWithPath: path))
}

/// A progress line on standard error, keeping standard output for results.
func logProgress(_ line: String) {
    FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
}
