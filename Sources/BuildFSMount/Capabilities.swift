import BuildFSCore
import Foundation

/// Capabilities (linux/capability.h numbers) of the daemon and of the
/// processes it serves, from their /proc status.
enum Capabilities {
    /// CAP_DAC_OVERRIDE: open any file whatever its mode.
    static let dacOverride = 1
    /// CAP_FSETID: write to a setuid/setgid file without clearing the bits.
    static let fileSetID = 4

    /// CAP_DAC_OVERRIDE for the daemon: root has it unless a container or
    /// `setpriv` dropped it.
    static var daemonOverridesFileModes: Bool { held(dacOverride, by: "self") }

    /// Whether process `pid` ("self" for the daemon) has `capability` in
    /// its effective set; false when it is gone.
    static func held(_ capability: Int, by pid: String) -> Bool {
        guard let text = ProcFile.statusField("CapEff", pid: pid), let effective = UInt64(text, radix: 16) else {
            return false
        }
        return effective & (1 << UInt64(capability)) != 0
    }
}
