import BuildFSCore
import Foundation

/// What the daemon's process may do beyond its user's rights.
enum DaemonCapabilities {
    /// CAP_DAC_OVERRIDE: open any file whatever its mode. Root has it
    /// unless a container or `setpriv` dropped it.
    static var overridesFileModes: Bool { effective.map { $0 & (1 << 1) != 0 } ?? false }

    /// The effective capability set, from /proc/self/status.
    private static var effective: UInt64? {
        ProcFile.statusField("CapEff").flatMap { UInt64($0, radix: 16) }
    }
}
