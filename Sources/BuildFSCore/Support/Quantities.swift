import Foundation

/// Sizes and durations as users write them on the command line.
public enum Quantities {
    /// "5G", "500M", "1.5GB", "100Ki", "4096": K/M/G/T are powers of 1000 as
    /// in ccache, Ki/Mi/Gi/Ti powers of 1024; a trailing "B" is allowed.
    public static func parseSize(_ text: String) throws -> UInt64 {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if rest.hasSuffix("B") || rest.hasSuffix("b") { rest = rest.dropLast() }
        var multiplier: Double = 1
        let units: [(String, Double)] = [("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776),
                                          ("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12),
                                          ("k", 1e3), ("m", 1e6), ("g", 1e9), ("t", 1e12)]
        for (suffix, value) in units where rest.hasSuffix(suffix) {
            multiplier = value
            rest = rest.dropLast(suffix.count)
            break
        }
        guard let number = Double(rest), number >= 0, number.isFinite else {
            throw BuildFSError.usage("invalid size '\(text)': use a number with K, M, G or T (e.g. 5G, 500M)")
        }
        return UInt64(number * multiplier)
    }

    /// "7d", "12h", "30m", "45s", "2w" (or a plain number of seconds).
    public static func parseDuration(_ text: String) throws -> Double {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        var rest = Substring(trimmed)
        var multiplier: Double = 1
        if let last = rest.last, let unit = units[last] {
            multiplier = unit
            rest = rest.dropLast()
        }
        guard let number = Double(rest), number >= 0, number.isFinite else {
            throw BuildFSError.usage("invalid duration '\(text)': use a number with s, m, h, d or w (e.g. 7d, 12h)")
        }
        return number * multiplier
    }
}
