import Foundation
import Glibc
import Testing
import TestSupport

/// Where this target's files are.
enum Repo {
    static var root: String { ReleaseBinary.repositoryRoot }
    static var fixtures: String { root + "/Tests/BuildFSContainerTests/Fixtures" }
    static var snippet: String { root + "/mount-helpers/cibuildwheel/pyproject-snippet.toml" }
}

struct ContainerTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Whether podman can run here at all: installed, root, a FUSE device. Where
/// it can, the tests run (and fail if podman is broken): CI here has all three.
enum PodmanHost {
    static let usable: Bool = {
        getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/fuse")
            && ["/usr/bin/podman", "/usr/local/bin/podman"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }()
}

/// What every container test needs, made once per test process: the image
/// (scripts/container-image: debootstrap, cached), podman's configuration,
/// the static release binary (scripts/build-release) and cibuildwheel from
/// PyPI in a venv of its own.
final class ContainerLab: @unchecked Sendable {
    static let cibuildwheelVersion = "4.3.5"
    static let cache = "/var/cache/buildfs-test"

    let image: String
    let containersConf: String
    let buildfs: String
    let cibuildwheel: String

    static let shared: Result<ContainerLab, ContainerTestFailure> = {
        do { return .success(try ContainerLab()) } catch let error as ContainerTestFailure {
            return .failure(error)
        } catch {
            return .failure(ContainerTestFailure("\(error)"))
        }
    }()

    static func get() throws -> ContainerLab { try shared.get() }

    private init() throws {
        var started = Date()
        let made = runCommand([Repo.root + "/scripts/container-image"], timeout: 1800, directory: Repo.root)
        let lines = made.stdout.split(separator: "\n").map(String.init)
        guard made.succeeded, let image = lines.last, image.hasPrefix("localhost/"),
              let conf = lines.first(where: { $0.hasPrefix("containers-conf: ") })?.dropFirst("containers-conf: ".count)
        else { throw ContainerTestFailure("scripts/container-image failed: \(made.summary)") }
        self.image = image
        containersConf = String(conf)
        print("container tests: image \(image) ready in \(Self.seconds(since: started)) s")

        started = Date()
        buildfs = try ReleaseBinary.path()
        print("container tests: release binary \(buildfs) ready in \(Self.seconds(since: started)) s")

        started = Date()
        let venv = "\(Self.cache)/cibuildwheel-\(Self.cibuildwheelVersion)"
        cibuildwheel = venv + "/bin/cibuildwheel"
        if !FileManager.default.isExecutableFile(atPath: cibuildwheel) {
            // Made in place (a venv keeps its path in its scripts); a half-made
            // one is removed below, so an executable cibuildwheel means a whole one.
            let script = """
                set -e
                rm -rf "$1"
                /usr/bin/python3 -m venv "$1"
                "$1/bin/pip" install -q --disable-pip-version-check "cibuildwheel==$2"
                """
            let installed = runCommand(["/bin/bash", "-c", script, "install", venv, Self.cibuildwheelVersion], timeout: 600)
            guard installed.succeeded, FileManager.default.isExecutableFile(atPath: cibuildwheel) else {
                try? FileManager.default.removeItem(atPath: venv)
                throw ContainerTestFailure("cannot install cibuildwheel \(Self.cibuildwheelVersion): \(installed.summary)")
            }
        }
        print("container tests: cibuildwheel \(Self.cibuildwheelVersion) ready in \(Self.seconds(since: started)) s")
    }

    static func seconds(since start: Date) -> String { String(format: "%.1f", Date().timeIntervalSince(start)) }

    /// This process's environment without what would change the build or
    /// cibuildwheel's choices, plus podman's configuration.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ProcessInfo.processInfo.environment
            .filter { name, _ in
                !name.hasPrefix("CIBW_") && !name.hasPrefix("CCACHE_") && !name.hasPrefix("BUILDFS_")
                    && !name.hasPrefix("SKBUILD_") && !["CC", "CXX", "CFLAGS", "CI"].contains(name)
            }
            .merging(["CONTAINERS_CONF": containersConf]) { $1 }
            .merging(extra) { $1 }
    }

    /// podman with our configuration.
    func podman(_ arguments: [String], timeout: Int = 300) -> CommandResult {
        runCommand(["podman"] + arguments, timeout: timeout, environment: environment())
    }

    /// Runs cibuildwheel for one CPython 3.11 manylinux x86_64 wheel of the
    /// project in `project`, into `output`, against our image.
    func buildWheel(project: String, output: String, extraEnvironment: [String: String] = [:]) -> CommandResult {
        let started = Date()
        let result = runCommand(
            [cibuildwheel, "--platform", "linux", "--output-dir", output, project], timeout: 1200,
            environment: environment([
                "CIBW_BUILD": "cp311-manylinux_x86_64",
                "CIBW_ARCHS": "x86_64",
                "CIBW_MANYLINUX_X86_64_IMAGE": image,
                "CIBW_BUILD_VERBOSITY": "1",
            ].merging(extraEnvironment) { $1 }),
            directory: project)
        print("container tests: cibuildwheel run in \(project) took \(Self.seconds(since: started)) s")
        return result
    }

    /// What a finished cibuildwheel run may not leave behind on the host: a
    /// container, a buildfs daemon of ours, a buildfs mount.
    func leftovers(store: String) -> [String] {
        var found: [String] = []
        let containers = podman(["ps", "--all", "--format", "{{.Names}}"])
        for name in containers.stdout.split(separator: "\n") where name.hasPrefix("cibuildwheel-") {
            found.append("container \(name)")
        }
        if !containers.succeeded { found.append("podman ps failed: \(containers.summary)") }
        found += processes(mentioning: ["/buildfs-store"]).map { "process \($0)" }
        found += processes(mentioning: [store]).map { "process \($0)" }
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 2, fields[2] == "fuse.buildfs", fields[1] == "/work" || fields[1].hasPrefix(store) {
                found.append("mount \(line)")
            }
        }
        return found
    }
}

/// Processes (pid and command line) whose command line mentions any of `texts`.
func processes(mentioning texts: [String]) -> [String] {
    let me = getpid()
    return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
        guard let pid = Int32(entry), pid != me,
              let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty
        else { return nil }
        let commandLine = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        guard commandLine.contains("buildfs"), texts.contains(where: { commandLine.contains($0) }) else { return nil }
        return "\(pid): \(commandLine)"
    }
}

func readText(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

func write(_ text: String, to path: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// A fresh copy of a fixture, as a new CI checkout would be: same contents,
/// new mtimes (`cp -r`, like `git clone`). Both fixtures build the same C
/// sources (Fixtures/c-sources), which land in the checkout's src/.
func checkout(fixture: String, to path: String) throws {
    waitPastMtimeResolution()
    let copied = runCommand(["/bin/sh", "-c", "cp -r \"$1/$2\" \"$3\" && cp -r \"$1/c-sources\" \"$3/src\"",
                             "checkout", Repo.fixtures, fixture, path], timeout: 60)
    guard copied.succeeded else { throw ContainerTestFailure("cp \(fixture): \(copied.summary)") }
}

/// cibuildwheel copies the project into the container with tar, which keeps
/// whole seconds of mtime: a checkout or an edit made within a second of
/// the previous build's compiles could look older than their objects, and
/// the build skip them (on a fast machine it did). A checkout a CI job makes
/// is always seconds later; this makes the tests' ones so too.
func waitPastMtimeResolution() {
    Thread.sleep(forTimeInterval: 1.5)
}

/// The wheels in a cibuildwheel output directory.
func wheels(in directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".whl") }.sorted()
}
