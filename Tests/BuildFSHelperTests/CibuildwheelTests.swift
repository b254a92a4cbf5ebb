import Foundation
import Testing
import TestSupport

/// mount-helpers/cibuildwheel/pyproject-snippet.toml, read with a real TOML
/// parser (Python's tomllib): what a user pastes into pyproject.toml.
struct CibuildwheelSnippet {
    static let path = Repo.helpers + "/cibuildwheel/pyproject-snippet.toml"

    var linux: [String: Any]

    init() throws {
        let script = """
            import json, sys, tomllib
            with open(sys.argv[1], "rb") as f:
                print(json.dumps(tomllib.load(f)["tool"]["cibuildwheel"]["linux"]))
            """
        let parsed = run(["/usr/bin/python3", "-c", script, Self.path], timeout: 60)
        guard parsed.succeeded,
              let linux = try JSONSerialization.jsonObject(with: Data(parsed.stdout.utf8)) as? [String: Any]
        else { throw HelperTestFailure("cannot parse \(Self.path): \(parsed)") }
        self.linux = linux
    }

    var environment: [String: String] { linux["environment"] as? [String: String] ?? [:] }
    var createArgs: [String] {
        (linux["container-engine"] as? [String: Any])?["create-args"] as? [String] ?? []
    }
    /// The one command of an array-valued option that mentions `script`.
    func command(_ option: String, mentioning script: String) -> String? {
        (linux[option] as? [String])?.first { $0.contains(script) }
    }
}

struct HelperTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The cibuildwheel flow, simulated: each "container" is a private mount
/// namespace (`unshare -m --propagation private`) with its own /run,
/// /var/lib/buildfs, stable path and project directory (fresh tmpfs each),
/// the store a directory shared by all of them (the host volume). In it,
/// exactly what cibuildwheel does on Linux: copy the project in, run the
/// snippet's before-all command (our buildfs-before-all.sh), build (make,
/// standing in for `pip wheel`, with the snippet's CC and CCACHE_DIR), run the
/// snippet's repair command (our buildfs-after-all.sh), then remove the
/// container the way `docker rm --force` does: SIGKILL to everything in it.
@Suite("cibuildwheel recipe") struct CibuildwheelTests {
    static let modules = 30
    static let compilations = modules + 1  // every module and main.c

    @Test func snippetHasTheContainerFlagsAndTheSettingsTheScriptsRead() throws {
        let snippet = try CibuildwheelSnippet()
        let args = snippet.createArgs
        func pair(_ flag: String, _ value: String) -> Bool {
            zip(args, args.dropFirst()).contains { $0 == flag && $1 == value }
        }
        #expect(pair("--device", "/dev/fuse"), "create-args: \(args)")
        #expect(pair("--cap-add", "SYS_ADMIN"), "create-args: \(args)")
        #expect(pair("--security-opt", "apparmor:unconfined"), "create-args: \(args)")
        let store = snippet.environment["BUILDFS_STORE"] ?? "(unset)"
        #expect(zip(args, args.dropFirst()).contains { $0 == "-v" && $1.hasSuffix(":" + store) },
                "no -v HOST:\(store) volume for the store in create-args: \(args)")
        let mount = snippet.environment["BUILDFS_MOUNT"] ?? "(unset)"
        #expect(snippet.environment["CCACHE_DIR"]?.hasPrefix(mount + "/") == true, "CCACHE_DIR must be on the mount")
        #expect(snippet.environment["CC"] == "ccache gcc")
        #expect(snippet.command("before-all", mentioning: "buildfs-before-all.sh") != nil)
        #expect(snippet.command("repair-wheel-command", mentioning: "buildfs-after-all.sh") != nil)
        let frontend = snippet.linux["build-frontend"] as? [String: Any]
        #expect((frontend?["args"] as? [String])?.contains("--no-isolation") == true,
                "the snippet must turn build isolation off (random /tmp/pip-build-env paths)")
    }

    @Test(arguments: ["mount", "copy"])
    func secondContainerRunHitsTheCacheAndAChangeRestoresByPrefix(mode: String) throws {
        let flow = try CibuildwheelFlow(mode: mode)
        defer { flow.finish() }

        // Run 1: an empty store, a cold build; saved under the key of these inputs.
        let first = try flow.containerRun("run1")
        #expect(first.stats.misses == Self.compilations && first.stats.hits == 0, "run 1: \(first.stats)")
        #expect(first.log.contains("no snapshot matches"), "run 1 should start empty: \(first.log)")
        let key = try #require(first.savedKey, "before-all did not say which key it saves as: \(first.log)")
        #expect(key.hasPrefix("cibw-linux_"), "key \(key) is not prefix-platform-hash")
        #expect(snapshotKeys(store: flow.store) == [key], "store after run 1")

        // Run 2: a new container, same inputs: the exact key, every compilation a hit.
        let second = try flow.containerRun("run2")
        #expect(second.savedKey == key)
        let restored = mode == "mount" ? "over snapshot '\(key)'" : "exported '\(key)'"
        #expect(second.log.contains(restored), "run 2 did not restore \(key): \(second.log)")
        #expect(second.stats.compilations == Self.compilations, "run 2: \(second.stats)")
        #expect(second.stats.hitRate >= 0.99, "run 2 must hit the cache: \(second.stats)\n\(second.log)")
        #expect(second.programOutput == first.programOutput && !first.programOutput.isEmpty)

        // Run 3: one source file changed: a new key, restored through the
        // prefix restore key from run 2's snapshot; only that file compiles.
        let module = flow.checkout + "/src/module_0.c"
        let source = try #require(readText(module))
        try write(source.replacingOccurrences(of: "x * 3u", with: "x * 5u"), to: module)
        let third = try flow.containerRun("run3")
        let newKey = try #require(third.savedKey)
        #expect(newKey != key && newKey.hasPrefix("cibw-linux_"), "changed inputs kept the key \(key)")
        #expect(third.log.contains(mode == "mount" ? "over snapshot '\(key)'" : "exported '\(key)'"),
                "run 3 did not restore by prefix from \(key): \(third.log)")
        #expect(third.stats.misses == 1 && third.stats.hits == Self.compilations - 1, "run 3: \(third.stats)")
        #expect(snapshotKeys(store: flow.store) == [key, newKey].sorted(), "store after run 3")
    }
}

/// One simulated cibuildwheel setup: a checkout with the helper scripts in
/// ci/ (as the README tells users to copy them), a store on the "host", and
/// the snippet's settings with its container paths pointed at the test's
/// directories.
final class CibuildwheelFlow {
    let directory = TemporaryDirectory("buildfs-helper-cibw")
    let mode: String
    var checkout: String { directory.sub("checkout") }
    var store: String { directory.sub("store") }
    /// The container's own disk (a fresh tmpfs in each run), holding the
    /// stable path (/work in the snippet) and the project (/project in
    /// cibuildwheel's containers): the same strings in every run, plain
    /// directories as they are in a container's root file system.
    var container: String { directory.sub("container") }
    var work: String { container + "/work" }
    var project: String { container + "/project" }
    let snippet: CibuildwheelSnippet

    init(mode: String) throws {
        self.mode = mode
        snippet = try CibuildwheelSnippet()
        try CProject.write(to: checkout, modules: CibuildwheelTests.modules)
        try makeDirectory(checkout + "/ci")
        for script in ["buildfs-before-all.sh", "buildfs-after-all.sh"] {
            try FileManager.default.copyItem(atPath: Repo.helpers + "/cibuildwheel/" + script,
                                             toPath: checkout + "/ci/" + script)
        }
        for path in [store, container, "/var/lib/buildfs"] { try makeDirectory(path) }
    }

    struct RunResult {
        var stats: CcacheStats
        var programOutput: String
        var log: String
        var savedKey: String?
    }

    /// The snippet's environment, its container paths mapped to ours.
    var environment: [String: String] {
        var environment: [String: String] = [:]
        let mountPath = snippet.environment["BUILDFS_MOUNT"] ?? "/work"
        let storePath = snippet.environment["BUILDFS_STORE"] ?? "/buildfs-store"
        for (name, value) in snippet.environment {
            var mapped = value
            if value == mountPath || value.hasPrefix(mountPath + "/") { mapped = work + value.dropFirst(mountPath.count) }
            if value == storePath || value.hasPrefix(storePath + "/") { mapped = store + value.dropFirst(storePath.count) }
            environment[name] = mapped
        }
        environment["BUILDFS_BIN"] = Shell.buildfs
        if mode == "copy" { environment["BUILDFS_MODE"] = "copy" }
        return environment
    }

    /// What the container engine and cibuildwheel do around the user's commands.
    static let containerScript = #"""
        set -eu
        # The container's own file systems: fresh in every run.
        mount -t tmpfs container /run
        mount -t tmpfs container /var/lib/buildfs
        mount -t tmpfs container "$HARNESS_CONTAINER"
        # cibuildwheel: "Copying project into container..."
        cp -a "$HARNESS_CHECKOUT" "$HARNESS_PROJECT"
        # cibuildwheel: "Running before_all..."
        sh -c "$HARNESS_BEFORE_ALL"
        # cibuildwheel: "Building wheel..." (make stands in for pip wheel)
        ccache -z >/dev/null
        if ! make -C "$HARNESS_PROJECT" -j2 >"$HARNESS_OUT/make.log" 2>&1; then cat "$HARNESS_OUT/make.log" >&2; exit 1; fi
        ccache --print-stats >"$HARNESS_OUT/ccache-stats"
        "$HARNESS_PROJECT/build/program" >"$HARNESS_OUT/program-output"
        # cibuildwheel: "Repairing wheel..."
        sh -c "$HARNESS_REPAIR"
        # docker rm --force: SIGKILL to everything in the container.
        me=$(readlink /proc/$$/ns/mnt)
        for p in /proc/[0-9]*; do
          pid=${p#/proc/}
          if [ "$pid" != "$$" ] && [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$me" ]; then kill -9 "$pid" 2>/dev/null || true; fi
        done
        """#

    func containerRun(_ name: String) throws -> RunResult {
        let beforeAll = try #require(snippet.command("before-all", mentioning: "buildfs-before-all.sh"))
        let repair = try #require(snippet.command("repair-wheel-command", mentioning: "buildfs-after-all.sh"))
        let out = directory.sub(name)
        try makeDirectory(out)
        let harness = [
            "HARNESS_CONTAINER": container, "HARNESS_PROJECT": project, "HARNESS_CHECKOUT": checkout, "HARNESS_OUT": out,
            "HARNESS_BEFORE_ALL": beforeAll.replacingOccurrences(of: "{package}", with: project),
            "HARNESS_REPAIR": repair.replacingOccurrences(of: "{package}", with: project),
        ]
        let outcome = run(["unshare", "-m", "--propagation", "private", "/bin/bash", "-c", Self.containerScript],
                          environment: cleanEnvironment(environment.merging(harness) { $1 }), timeout: 600)
        let log = outcome.stdout + outcome.stderr
        guard outcome.succeeded else { throw HelperTestFailure("\(name) (\(mode)) failed: \(outcome)") }
        // The container is gone, and with it the mount and the daemon.
        #expect(waitUntil(seconds: 10) { processes(mentioning: work).isEmpty },
                "\(name): processes left after the container was removed: \(processes(mentioning: work))")
        #expect(mountPoints(under: directory.path).isEmpty, "\(name): mounts leaked into the host namespace")
        #expect(log.contains("buildfs-after-all: saved"), "\(name): after-all did not save: \(log)")
        let savedKey = log.range(of: #"will save it as '([^']+)'"#, options: .regularExpression).map {
            String(log[$0].dropFirst("will save it as '".count).dropLast())
        }
        return RunResult(stats: CcacheStats(readText(out + "/ccache-stats") ?? ""),
                         programOutput: readText(out + "/program-output") ?? "", log: log, savedKey: savedKey)
    }

    func finish() {
        for mountPoint in mountPoints(under: directory.path) { _ = run(["umount", "-l", mountPoint], timeout: 30) }
    }
}
