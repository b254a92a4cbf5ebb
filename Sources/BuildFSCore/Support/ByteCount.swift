import Foundation
/// Human units for byte counts, as `ccache -s` and `du -h` print them.
public enum ByteCount {
    public static func human(_ bytes: UInt64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB", "PB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let digits = value < 10 ? "%.2f" : (value < 100 ? "%.1f" : "%.0f")
        return String(format: digits, value) + " " + units[unit]
    }
}
