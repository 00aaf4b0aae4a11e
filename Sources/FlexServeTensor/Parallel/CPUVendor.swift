import Foundation

/// The processor's maker, for the few choices measured to differ between Intel and AMD cores.
public enum CPUVendor {
    /// `vendor_id` of /proc/cpuinfo is `GenuineIntel` (false where it cannot be read).
    public static let isIntel: Bool = {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("vendor_id") }) else { return false }
        return line.contains("GenuineIntel")
    }()
}
