import BuildFSCore

/// The form in which mount(8), through mount.fuse3, runs a FUSE file system
/// for `mount -t fuse.buildfs` and /etc/fstab:
///
///     buildfs SOURCE MOUNTPOINT -o rw,store=S,upper=U,from=K,allow_other,dev,suid
///
/// translated into `buildfs mount MOUNTPOINT --upper U --store S --from K -o ...`.
/// For a remote store, `cache_dir=DIR` becomes `--cache-dir DIR`.
/// SOURCE is a placeholder (conventionally "buildfs"). `from=` may repeat.
enum MountHelperSyntax {
    /// Options of mount(8) and fstab that mean nothing to the daemon.
    static let ignored: Set<String> = ["defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "owner", "group"]

    /// The translated arguments, or nil when `arguments` (without the program
    /// name) are not in the mount helper form.
    static func translate(_ arguments: [String], subcommands: Set<String>) throws -> [String]? {
        guard arguments.count >= 2, !arguments[0].hasPrefix("-"), !subcommands.contains(arguments[0]),
              arguments[0] != "help" else { return nil }
        let mountpoint = arguments[1]
        var options: [String] = []
        var rest = arguments.dropFirst(2)
        while let argument = rest.popFirst() {
            if argument == "-o", let value = rest.popFirst() {
                options += value.split(separator: ",").map(String.init)
            } else if argument.hasPrefix("-o") {
                options += argument.dropFirst(2).split(separator: ",").map(String.init)
            } else {
                throw BuildFSError.usage("unexpected argument '\(argument)' in mount helper form: "
                                         + "buildfs SOURCE MOUNTPOINT -o upper=DIR[,store=DIR][,from=KEY]...")
            }
        }
        var result = ["mount", mountpoint]
        var passed: [String] = []
        var upper: String?
        for option in options {
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            switch (parts[0], parts.count) {
            case ("upper", 2): upper = parts[1]
            case ("store", 2): result += ["--store", parts[1]]
            case ("cache_dir", 2): result += ["--cache-dir", parts[1]]
            case ("from", 2): result += ["--from", parts[1]]
            case let (name, _) where ignored.contains(name) || name.hasPrefix("x-") || name.hasPrefix("comment="):
                continue
            default: passed.append(option)
            }
        }
        guard let upper else {
            throw BuildFSError.usage("mount option upper=DIR is required (e.g. -o upper=/var/lib/buildfs/upper,store=/var/cache/buildfs)")
        }
        result += ["--upper", upper]
        if !passed.isEmpty { result += ["-o", passed.joined(separator: ",")] }
        return result
    }
}
