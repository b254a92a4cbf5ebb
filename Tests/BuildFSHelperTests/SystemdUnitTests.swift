import Foundation
import Glibc
import Testing
import TestSupport

/// A systemd unit file, and its command lines as systemd would run them:
/// words split with quotes, specifiers (%f, %i, %%) resolved in each, then `$$`,
/// `${VAR}` (one word) and `$VAR` standing alone (split at whitespace)
/// substituted from the EnvironmentFile. There is no systemd running as PID 1
/// here, so the test runs those command lines itself, in systemd's order.
struct SystemdUnit {
    var entries: [(key: String, value: String)] = []

    init(path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") || line.hasPrefix("[") { continue }
            guard let equals = line.firstIndex(of: "=") else { continue }
            entries.append((String(line[..<equals]), String(line[line.index(after: equals)...])))
        }
    }

    func values(_ key: String) -> [String] { entries.filter { $0.key == key }.map(\.value) }

    /// One command: its arguments, and whether a failure is ignored ("-" prefix).
    struct Command { var arguments: [String]; var ignoreFailure: Bool }

    static func command(_ line: String, instance: String, path: String, environment: [String: String]) -> Command {
        var text = line
        var ignore = false
        if text.hasPrefix("-") { ignore = true; text.removeFirst() }
        var arguments: [String] = []
        // Words first, then specifiers in each word (a %f with a space stays one argument).
        for quoted in words(text) {
            let word = quoted.replacingOccurrences(of: "%%", with: "\u{1}")
                .replacingOccurrences(of: "%f", with: path).replacingOccurrences(of: "%i", with: instance)
                .replacingOccurrences(of: "\u{1}", with: "%")
            if word.hasPrefix("$"), !word.hasPrefix("$$"), !word.hasPrefix("${"),
               word.dropFirst().allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
                arguments += (environment[String(word.dropFirst())] ?? "").split(separator: " ").map(String.init)
                continue
            }
            var out = "", rest = Substring(word)
            while let dollar = rest.firstIndex(of: "$") {
                out += rest[..<dollar]
                let after = rest[rest.index(after: dollar)...]
                if after.hasPrefix("$") {
                    out += "$"; rest = after.dropFirst()
                } else if after.hasPrefix("{"), let close = after.firstIndex(of: "}") {
                    out += environment[String(after[after.index(after: after.startIndex)..<close])] ?? ""
                    rest = after[after.index(after: close)...]
                } else {
                    out += "$"; rest = after
                }
            }
            arguments.append(out + rest)
        }
        return Command(arguments: arguments, ignoreFailure: ignore)
    }

    /// systemd's word splitting: whitespace separates, single and double quotes group.
    static func words(_ text: String) -> [String] {
        var words: [String] = [], current = "", quote: Character?, inWord = false
        for character in text {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character; inWord = true
            } else if character == " " || character == "\t" {
                if inWord { words.append(current); current = ""; inWord = false }
            } else {
                current.append(character); inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }

    /// KEY=value lines of an EnvironmentFile.
    static func environmentFile(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) })
        where !line.isEmpty && !line.hasPrefix("#") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            result[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return result
    }
}

@Suite("systemd units", .serialized) struct SystemdUnitTests {
    static let unitPath = Repo.helpers + "/systemd/buildfs-mount@.service"

    @Test func unitsPassSystemdAnalyzeVerify() throws {
        try #require(Installation.outcome.succeeded, "\(Installation.outcome)")
        let directory = TemporaryDirectory("buildfs-helper-unit")
        // An instance of the template, by the name systemd would load it as.
        try FileManager.default.copyItem(atPath: Self.unitPath, toPath: directory.sub("buildfs-mount@work.service"))
        for name in ["buildfs-gc.service", "buildfs-gc.timer"] {
            try FileManager.default.copyItem(atPath: Repo.helpers + "/systemd/" + name, toPath: directory.sub(name))
        }
        for unit in ["buildfs-mount@work.service", "buildfs-gc.service", "buildfs-gc.timer"] {
            let verify = run(["systemd-analyze", "verify", "--man=no", directory.sub(unit)], timeout: 60)
            #expect(verify.succeeded && verify.stderr.isEmpty, "\(unit): \(verify)")
        }
    }

    @Test func mountUnitStartsStopsRestartsAndRecoversFromADeadDaemon() throws {
        try #require(Installation.outcome.succeeded, "\(Installation.outcome)")
        let directory = TemporaryDirectory("buildfs-helper-unit")
        let mountPoint = directory.sub("build dir"), upper = directory.sub("upper"), store = directory.sub("store")
        let tree = directory.sub("tree")
        try makeDirectory(tree)
        try write("snapshot file\n", to: tree + "/from-snapshot.txt")
        let imported = run([Shell.buildfs, "import", tree, "--key", "unit-base", "--store", store])
        try #require(imported.succeeded, "\(imported)")

        let unit = try SystemdUnit(path: Self.unitPath)
        #expect(unit.values("Type") == ["forking"])
        let escape = run(["systemd-escape", "-p", mountPoint])
        try #require(escape.succeeded)
        let instance = escape.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let unescaped = run(["systemd-escape", "-u", "-p", instance]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(unescaped == mountPoint, "%f of \(instance) would be \(unescaped)")
        #expect(unit.values("EnvironmentFile") == ["/etc/buildfs/mount-%i.env"])

        // The example settings, with this test's paths.
        var settings = SystemdUnit.environmentFile(
            try String(contentsOfFile: Repo.helpers + "/systemd/mount.env.example", encoding: .utf8))
        #expect(Set(settings.keys) == ["BUILDFS_STORE", "BUILDFS_UPPER", "BUILDFS_FROM", "BUILDFS_OPTIONS"])
        settings["BUILDFS_STORE"] = store
        settings["BUILDFS_UPPER"] = upper
        settings["BUILDFS_FROM"] = "--from no-such- --from unit-"
        let environment = cleanEnvironment(settings)

        func execute(_ key: String) -> [Outcome] {
            var outcomes: [Outcome] = []
            for line in unit.values(key) {
                let command = SystemdUnit.command(line, instance: instance, path: unescaped, environment: settings)
                let outcome = run(command.arguments, environment: environment, timeout: 120)
                outcomes.append(outcome)
                if !outcome.succeeded && !command.ignoreFailure { break }
            }
            return outcomes
        }
        func start() -> [Outcome] { execute("ExecStartPre") + execute("ExecStart") }
        func stop() -> [Outcome] { execute("ExecStop") }
        func daemons() -> [String] { processes(mentioning: mountPoint).filter { $0.contains("--foreground") } }
        defer { if isMountPoint(mountPoint) { _ = run(["umount", "-l", mountPoint]) } }

        // First start: the directories are made, the upper is empty, so the restore keys apply.
        let first = start()
        try #require(first.last?.succeeded == true, "start: \(first)")
        #expect(isMountPoint(mountPoint))
        #expect(first.last?.stdout.contains("over snapshot 'unit-base'") == true, "\(first)")
        #expect(readText(mountPoint + "/from-snapshot.txt") == "snapshot file\n")
        #expect(!daemons().isEmpty, "Type=forking needs the daemon to outlive ExecStart")
        try write("kept\n", to: mountPoint + "/written.txt")
        let mounts = readText("/proc/mounts") ?? ""
        #expect(mounts.split(separator: "\n").contains { $0.contains(" fuse.buildfs ") && $0.contains("allow_other") },
                "BUILDFS_OPTIONS=-o allow_other did not reach the mount")

        let stopped = stop()
        #expect(stopped.allSatisfy { $0.succeeded }, "stop: \(stopped)")
        #expect(!isMountPoint(mountPoint))
        #expect(waitUntil(seconds: 10) { daemons().isEmpty }, "daemon left after ExecStop: \(daemons())")
        #expect(readText(upper + "/written.txt") == "kept\n")

        // A newer snapshot now matches the restore keys; a restart must
        // mount the upper directory as it is instead of failing on it.
        let newer = run([Shell.buildfs, "import", tree, "--key", "unit-newer", "--store", store])
        try #require(newer.succeeded, "\(newer)")
        let second = start()
        try #require(second.last?.succeeded == true, "restart: \(second)")
        #expect(readText(mountPoint + "/written.txt") == "kept\n", "restart lost the upper directory's files")

        // The daemon dies (Restart=on-failure starts the unit again): the
        // dead mount is cleared by ExecStartPre and the mount comes back.
        for daemon in daemons() { kill(pid_t(daemon.prefix { $0 != ":" })!, SIGKILL) }
        #expect(waitUntil(seconds: 10) { daemons().isEmpty })
        #expect(unit.values("Restart") == ["on-failure"])
        let third = start()
        try #require(third.last?.succeeded == true, "start after a dead daemon: \(third)")
        #expect(isMountPoint(mountPoint))
        #expect(readText(mountPoint + "/written.txt") == "kept\n")
        #expect(readText(mountPoint + "/from-snapshot.txt") == "snapshot file\n")

        let last = stop()
        #expect(last.allSatisfy { $0.succeeded }, "stop: \(last)")
        #expect(!isMountPoint(mountPoint))
        #expect(waitUntil(seconds: 10) { daemons().isEmpty })
    }
}
