import BuildFSCore

/// The `-o` options a user may pass, checked before libfuse sees them (it
/// would print its own message and fail without saying which are valid).
public enum MountOptions {
    /// Passed through to the kernel or libfuse as they are.
    static let accepted: Set<String> = [
        "allow_other", "allow_root", "auto_unmount", "ro", "rw",
        "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime", "noatime", "relatime", "default_permissions",
    ]

    /// Splits `-o a,b -o c` into options and refuses unknown ones.
    public static func parse(_ groups: [String]) throws -> [String] {
        let options = groups.flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        for option in options where !accepted.contains(option) {
            throw BuildFSError.usage(
                "unknown mount option '\(option)' (known: \(accepted.sorted().joined(separator: ", ")))")
        }
        return options
    }

    /// The options libfuse mounts with. default_permissions is always on:
    /// the daemon runs as root, so without it the kernel would not check
    /// modes.
    static func fuseOptions(_ options: [String]) -> [String] {
        var all = ["default_permissions", "fsname=buildfs", "subtype=buildfs"]
        for option in options where !all.contains(option) { all.append(option) }
        return all
    }
}
