import Glibc

/// What starts each line of the daemon's log.
let daemonLogPrefix = "buildfs daemon: "

/// One line in the daemon's log (its stderr, which `buildfs mount` points
/// at the log file).
func daemonLog(_ message: String) {
    var line = Array("\(daemonLogPrefix)\(message)\n".utf8)
    _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
