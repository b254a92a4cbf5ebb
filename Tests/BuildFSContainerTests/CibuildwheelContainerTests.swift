import Foundation
import Testing
import TestSupport

/// The cibuildwheel recipe (mount-helpers/cibuildwheel/) for real: cibuildwheel
/// from PyPI, podman, a manylinux-like image made by scripts/container-image,
/// buildfs's static release binary inside the container, FUSE in the
/// container. And the case buildfs exists for: a scikit-build-core (CMake)
/// build, which compiles in a new temporary directory every run.
@Suite("real containers (podman, cibuildwheel)", .serialized,
       .enabled(if: PodmanHost.usable, "podman cannot run here (needs root, /dev/fuse and podman: scripts/install-deps)"))
struct CibuildwheelContainerTests {
    /// Compilations of each fixture: core.c and part_0...part_11.c.
    static let compilations = 13

    /// The before-all ccache line of the snippet in an image that has ccache
    /// and none of dnf, yum, apk (issue 13, item 4); and where it has no
    /// ccache, one clear line instead of "command not found".
    @Test func snippetInstallsCcacheOnlyWhereItIsMissing() throws {
        let lab = try ContainerLab.get()
        let parsed = runCommand(["/usr/bin/python3", "-c", """
            import sys, tomllib
            print(tomllib.load(open(sys.argv[1], "rb"))["tool"]["cibuildwheel"]["linux"]["before-all"][0])
            """, Repo.snippet], timeout: 60)
        let line = parsed.stdout.trimmingCharacters(in: .newlines)
        #expect(parsed.succeeded && line.contains("command -v ccache"), "before-all[0]: \(parsed.summary)")

        let present = lab.podman(["run", "--rm", lab.image, "sh", "-c", line])
        #expect(present.succeeded, "with ccache in the image: \(present.summary)")

        let missing = lab.podman(["run", "--rm", lab.image, "sh", "-c", "rm /usr/bin/ccache && " + line])
        #expect(missing.status == 1, "without ccache and package tools: \(missing.summary)")
        #expect(missing.stderr.contains("no ccache in this image and no dnf, yum or apk"), "\(missing.stderr)")
    }

    /// Passthrough where builds run: in a rootful container with the flags
    /// the recipes give, an upper directory on a volume (ext4 here) is
    /// passed through; one on the container's own root file system
    /// (overlayfs) cannot be, and the daemon serves it itself, saying so in
    /// stats. Both give the right bytes.
    @Test func passthroughOnAVolumeAndServedByTheDaemonOnTheOverlayRoot() throws {
        let lab = try ContainerLab.get()
        let directory = TemporaryDirectory("buildfs-container-passthrough")
        let script = """
            set -e
            check() {
                /buildfs mount "$1" --upper "$2" >/dev/null
                head -c 3000000 /dev/urandom > /tmp/expected
                cp /tmp/expected "$1/f"; exec 3<"$1/f"; printf tail >> "$1/f"
                cmp -n 3000000 /tmp/expected /proc/self/fd/3; exec 3<&-
                transport=$(/buildfs stats "$1" | grep 'FUSE transport')
                case $transport in
                    *"passthrough refused ("*) way="served by the daemon: ${transport##*passthrough refused (}" ;;
                    *" passthrough"*) way="passed through" ;;
                    *) way="no passthrough: $transport" ;;
                esac
                echo "$1: $(tail -c 4 "$1/f"), $way"
                /buildfs umount "$1"
            }
            mkdir -p /work /work2 /root/upper /volume/upper
            check /work /volume/upper
            check /work2 /root/upper
            """
        let result = lab.podman(["run", "--rm", "--device", "/dev/fuse", "--cap-add", "SYS_ADMIN",
                                 "--security-opt", "apparmor=unconfined",
                                 "-v", "\(lab.buildfs):/buildfs:ro", "-v", "\(directory.path):/volume",
                                 lab.image, "bash", "-c", script], timeout: 120)
        #expect(result.succeeded, "\(result.summary)")
        #expect(result.stdout.contains("/work: tail, passed through\n"), "\(result.stdout)")
        #expect(result.stdout.contains("/work2: tail, served by the daemon: ioctl FUSE_DEV_IOC_BACKING_OPEN: "
                                       + "Too many levels of symbolic links"), "\(result.stdout)")
    }

    /// Over a snapshot in a rootful container (where the mount serves
    /// /dev/fuse: io_uring is off there), the small files a walk opens go
    /// into the page cache (PageCacheFiller), every byte is the snapshot's,
    /// and a file written after it was filled reads back what was written.
    @Test func snapshotFilesArriveInThePageCacheInAContainer() throws {
        let lab = try ContainerLab.get()
        let script = """
            set -e
            mkdir -p /src/a/b /store /work /upper
            for i in $(seq 1 200); do head -c $((1000 + i * 97)) /dev/urandom > /src/a/f$i; done
            head -c 3000000 /dev/urandom > /src/a/b/big
            /buildfs import /src --key base --store /store >/dev/null
            /buildfs mount /work --upper /upper --from base --store /store >/dev/null
            (cd /src && find . -type f | sort | xargs md5sum) > /tmp/want
            (cd /work && tar -cf - . | cat > /dev/null && find . -type f | sort | xargs md5sum) > /tmp/got
            cmp /tmp/want /tmp/got && echo "bytes match"
            printf new > /work/a/f7
            echo "f7: $(cat /work/a/f7)"
            for i in 1 2 3 4 5 6 7 8 9 10; do
                filled=$(/buildfs stats /work --store /store | sed -n 's/.*files put into the page cache *//p')
                [ "$filled" -ge 150 ] && break
                sleep 0.5
            done
            echo "filled: $filled"
            /buildfs umount /work
            """
        let result = lab.podman(["run", "--rm", "--device", "/dev/fuse", "--cap-add", "SYS_ADMIN",
                                 "--security-opt", "apparmor=unconfined",
                                 "-v", "\(lab.buildfs):/buildfs:ro", lab.image, "bash", "-c", script], timeout: 120)
        #expect(result.succeeded, "\(result.summary)")
        #expect(result.stdout.contains("bytes match\nf7: new\n"), "\(result.stdout)")
        let filled = result.stdout.split(separator: "\n").first { $0.hasPrefix("filled: ") }
            .flatMap { Int($0.dropFirst("filled: ".count)) } ?? -1
        #expect(filled >= 150 && filled <= 200, "files put into the page cache: \(filled)\n\(result.stdout)")
    }

    /// The snippet as users paste it (podman form), two cibuildwheel runs of a
    /// setuptools extension from two fresh checkouts: the second restores the
    /// first's snapshot at /work and every compilation is a ccache hit.
    @Test func cibuildwheelRecipeSecondRunHitsTheCache() throws {
        let lab = try ContainerLab.get()
        let directory = TemporaryDirectory("buildfs-container-cibw")
        let store = directory.sub("store")
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        let stats = directory.sub("stats")
        try FileManager.default.createDirectory(atPath: stats, withIntermediateDirectories: true)

        func containerRun(_ name: String, environment: [String: String] = [:]) throws -> (stats: CcacheStats, log: String, wheels: [String]) {
            let project = directory.sub("checkout-" + name)
            try checkout(fixture: "setuptools-ext", to: project)
            try addRecipe(to: project, lab: lab, store: store, statsFile: stats + "/ccache-stats")
            let output = directory.sub("wheelhouse-" + name)
            let result = lab.buildWheel(project: project, output: output, extraEnvironment: environment)
            let log = result.stdout + result.stderr
            guard result.succeeded else { throw ContainerTestFailure("cibuildwheel \(name) failed: \(result.summary)") }
            #expect(lab.leftovers(store: store).isEmpty, "\(name): left behind: \(lab.leftovers(store: store))")
            let numbers = CcacheStats(readText(stats + "/ccache-stats") ?? "")
            try? FileManager.default.moveItem(atPath: stats + "/ccache-stats", toPath: stats + "/ccache-stats-" + name)
            return (numbers, log, wheels(in: output))
        }

        let first = try containerRun("run1")
        #expect(first.log.contains("no snapshot matches"), "run 1 should start from an empty /work:\n\(first.log.suffix(3000))")
        #expect(first.stats.misses == Self.compilations && first.stats.hits == 0, "run 1: \(first.stats)")
        #expect(first.wheels.count == 1 && first.wheels[0].contains("manylinux"), "run 1 wheels: \(first.wheels)")
        let keys1 = snapshotKeys(lab: lab, store: store)
        #expect(keys1.count == 1 && keys1[0].hasPrefix("cibw-manylinux_2_36_x86_64-"), "store after run 1: \(keys1)")

        // Run 2 picks the engine the way the snippet's comment says, in the
        // environment, which replaces the table: the flags must come along.
        let engine = "podman; create_args: --device /dev/fuse --cap-add SYS_ADMIN -v \(store):/buildfs-store"
            + " -v \(lab.buildfs):/usr/local/bin/buildfs:ro"
        let second = try containerRun("run2", environment: ["CIBW_CONTAINER_ENGINE": engine])
        #expect(second.log.contains("create_args: ('--device', '/dev/fuse'"), "run 2 did not use CIBW_CONTAINER_ENGINE")
        #expect(keys1.count == 1 && second.log.contains("over snapshot '\(keys1[0])'"),
                "run 2 did not mount run 1's snapshot:\n\(second.log.suffix(3000))")
        #expect(second.stats.hits == Self.compilations && second.stats.misses == 0,
                "run 2 must hit for every compilation: \(second.stats)")
        #expect(second.wheels == first.wheels, "run 2 wheels: \(second.wheels)")
        #expect(snapshotKeys(lab: lab, store: store) == keys1, "the same inputs keep the same key")
    }

    /// scikit-build-core builds in a new temporary directory each run: with a
    /// plain CCACHE_DIR volume the second run misses everything (ccache hashes
    /// the working directory when compiling with -g). With the build directory
    /// on buildfs's stable /work, restored from the last snapshot, the second
    /// run hits for every compilation, and after a one-file change the third
    /// CMake build recompiles only that file.
    @Test func scikitBuildCoreMissesWithAPlainVolumeAndHitsOnTheStablePath() throws {
        let lab = try ContainerLab.get()
        let directory = TemporaryDirectory("buildfs-container-skbuild")
        let stats = directory.sub("stats")
        try FileManager.default.createDirectory(atPath: stats, withIntermediateDirectories: true)

        func containerRun(_ name: String, project: String, change: ((String) throws -> Void)? = nil,
                          configure: (String) throws -> Void, store: String) throws -> (stats: CcacheStats, log: String) {
            if !FileManager.default.fileExists(atPath: project) {
                try checkout(fixture: "skbuild-ext", to: project)
                try configure(project)
            }
            if let change {
                waitPastMtimeResolution()
                try change(project)
            }
            let output = directory.sub("wheelhouse-" + name)
            let result = lab.buildWheel(project: project, output: output)
            let log = result.stdout + result.stderr
            guard result.succeeded else { throw ContainerTestFailure("cibuildwheel \(name) failed: \(result.summary)") }
            #expect(wheels(in: output).count == 1, "\(name): wheels \(wheels(in: output))")
            #expect(lab.leftovers(store: store).isEmpty, "\(name): left behind: \(lab.leftovers(store: store))")
            let numbers = CcacheStats(readText(stats + "/ccache-stats") ?? "")
            try? FileManager.default.moveItem(atPath: stats + "/ccache-stats", toPath: stats + "/ccache-stats-" + name)
            return (numbers, log)
        }

        // Control: ccache's directory on a plain host volume, no buildfs,
        // scikit-build-core's default (temporary) build directory.
        let ccache = directory.sub("ccache")
        try FileManager.default.createDirectory(atPath: ccache, withIntermediateDirectories: true)
        let plain = { (project: String) in
            try appendToPyproject(project, """
                [tool.cibuildwheel.linux]
                container-engine = { name = "podman", create-args = ["-v", "\(ccache):/ccache"] }
                build-frontend = { name = "build", args = ["--no-isolation"] }
                before-build = "ccache -z"
                repair-wheel-command = ["auditwheel repair -w {dest_dir} {wheel}", "ccache --print-stats > /host\(stats)/ccache-stats"]
                [tool.cibuildwheel.linux.environment]
                CCACHE_DIR = "/ccache"
                CMAKE_C_COMPILER_LAUNCHER = "ccache"

                """)
        }
        let control1 = try containerRun("control1", project: directory.sub("control-checkout1"), configure: plain, store: ccache)
        let control2 = try containerRun("control2", project: directory.sub("control-checkout2"), configure: plain, store: ccache)
        // (CMake's compiler check compiles one more file; it is not the
        // project's and may hit or miss.)
        #expect(control1.stats.misses >= Self.compilations && control1.stats.hits == 0, "control run 1: \(control1.stats)")
        let cached = (control2.stats.values["files_in_cache"] ?? 0)
        #expect(cached >= Self.compilations, "control: run 1's results should be in the cache: \(control2.stats)")
        #expect(compiledObjects(control2.log) == Self.compilations, "control run 2 compiled \(compiledObjects(control2.log))")
        #expect(control2.stats.misses >= Self.compilations && control2.stats.hits <= 1,
                "control run 2 should miss every source: a new build directory: \(control2.stats)")
        // The miss is the path: each run configured CMake in another temporary directory.
        let controlDirectories = [control1.log, control2.log].map(buildDirectory)
        #expect(controlDirectories[0] != nil && controlDirectories[0] != controlDirectories[1]
                    && controlDirectories.allSatisfy { $0?.hasPrefix("/tmp/") == true },
                "control build directories: \(controlDirectories)")

        // buildfs: the snippet's recipe, with scikit-build-core's build
        // directory on the stable path (restored from the last snapshot).
        let store = directory.sub("store")
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        let onBuildfs = { (project: String) in
            try addRecipe(to: project, lab: lab, store: store, statsFile: stats + "/ccache-stats", cmake: true)
        }
        let run1 = try containerRun("buildfs1", project: directory.sub("buildfs-checkout1"), configure: onBuildfs, store: store)
        let secondCheckout = directory.sub("buildfs-checkout2")
        let run2 = try containerRun("buildfs2", project: secondCheckout, configure: onBuildfs, store: store)
        #expect(run1.stats.misses >= Self.compilations && run1.stats.hits == 0, "buildfs run 1: \(run1.stats)")
        #expect(run2.stats.hits == Self.compilations && run2.stats.misses == 0,
                "buildfs run 2 (fresh checkout, new mtimes) should hit for every compilation: \(run2.stats)")
        let stable = "/work/build/cp311-cp311-linux_x86_64"
        #expect(buildDirectory(run1.log) == stable && buildDirectory(run2.log) == stable,
                "buildfs build directories: \(String(describing: buildDirectory(run1.log))), \(String(describing: buildDirectory(run2.log)))")
        #expect(compiledObjects(run2.log) == Self.compilations, "run 2 compiled \(compiledObjects(run2.log))")

        // Run 3: the same checkout, one source changed: CMake's build in the
        // restored tree is incremental, only that file compiles.
        let run3 = try containerRun("buildfs3", project: secondCheckout, change: { project in
            let part = project + "/src/part_3.c"
            let source = try #require(readText(part))
            try write(source.replacingOccurrences(of: "+ 3UL", with: "+ 5UL"), to: part)
        }, configure: onBuildfs, store: store)
        #expect(compiledObjects(run3.log) == 1, "run 3 should compile only part_3.c:\n\(run3.log.suffix(4000))")
        #expect(run3.stats.misses == 1 && run3.stats.hits == 0, "buildfs run 3: \(run3.stats)")
        #expect(snapshotKeys(lab: lab, store: store).count == 2, "two inputs, two keys: \(snapshotKeys(lab: lab, store: store))")
    }

    /// The host-mount way (README: cibuildwheel): buildfs runs on the host
    /// only, under mount-helpers/ci/ci-job.sh, and the container gets the
    /// stable path as a plain bind mount (no binary in the image, no FUSE
    /// device, no capabilities). The scikit-build-core fixture's second run
    /// from the same checkout (wheelhouse/ from run 1 in it, which the key
    /// must ignore) restores run 1's build tree and compiles nothing.
    @Test func hostMountKeepsTheCMakeTreeWithoutBuildfsInTheImage() throws {
        let lab = try ContainerLab.get()
        let directory = TemporaryDirectory("buildfs-container-hostmount")
        let store = directory.sub("store"), work = directory.sub("work"), stats = directory.sub("stats")
        for path in [store, stats] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        let project = directory.sub("checkout")
        try checkout(fixture: "skbuild-ext", to: project)
        try appendToPyproject(project, """
            [tool.cibuildwheel.linux]
            container-engine = { name = "podman", create-args = ["-v", "\(work):/work"] }
            build-frontend = { name = "build", args = ["--no-isolation"] }
            config-settings = { "build-dir" = "/work/build/{wheel_tag}" }
            before-build = "ccache -z"
            repair-wheel-command = ["auditwheel repair -w {dest_dir} {wheel}", "ccache --print-stats > /host\(stats)/ccache-stats"]
            [tool.cibuildwheel.linux.environment]
            CCACHE_DIR = "/work/.ccache"
            CMAKE_C_COMPILER_LAUNCHER = "ccache"

            """)

        func job(_ name: String) throws -> (stats: CcacheStats, log: String) {
            let started = Date()
            let result = runCommand(
                // ci-job.sh runs its command in the mount; cibuildwheel wants
                // to run in the project (as in the README).
                [Repo.root + "/mount-helpers/ci/ci-job.sh", "--", "sh", "-c",
                 "cd \"$CHECKOUT\" && exec \"$CIBUILDWHEEL\" --platform linux --output-dir wheelhouse ."],
                timeout: 1200,
                environment: lab.environment([
                    "BUILDFS_BIN": lab.buildfs, "BUILDFS_MOUNT": work, "BUILDFS_STORE": store,
                    "BUILDFS_KEY_PREFIX": "cibw-host", "BUILDFS_GC_ARGS": "none",
                    "CIBW_BUILD": "cp311-manylinux_x86_64", "CIBW_ARCHS": "x86_64",
                    "CIBW_MANYLINUX_X86_64_IMAGE": lab.image, "CIBW_BUILD_VERBOSITY": "1",
                    "RUNNER_TEMP": directory.path, "CHECKOUT": project, "CIBUILDWHEEL": lab.cibuildwheel,
                ]),
                directory: project)
            print("container tests: host-mount job \(name) took \(ContainerLab.seconds(since: started)) s")
            let log = result.stdout + result.stderr
            guard result.succeeded else { throw ContainerTestFailure("ci-job.sh \(name) failed: \(result.summary)") }
            #expect(lab.leftovers(store: store).isEmpty, "\(name): left behind: \(lab.leftovers(store: store))")
            #expect(mountPoints(under: directory.path).isEmpty, "\(name): still mounted: \(mountPoints(under: directory.path))")
            let numbers = CcacheStats(readText(stats + "/ccache-stats") ?? "")
            try? FileManager.default.moveItem(atPath: stats + "/ccache-stats", toPath: stats + "/ccache-stats-" + name)
            return (numbers, log)
        }

        let first = try job("host1")
        #expect(compiledObjects(first.log) == Self.compilations, "host run 1 compiled \(compiledObjects(first.log))")
        #expect(buildDirectory(first.log) == "/work/build/cp311-cp311-linux_x86_64", "\(String(describing: buildDirectory(first.log)))")
        let keys = snapshotKeys(lab: lab, store: store)
        #expect(keys.count == 1, "store after run 1: \(keys)")
        #expect(wheels(in: project + "/wheelhouse").count == 1, "run 1 wheels: \(wheels(in: project + "/wheelhouse"))")

        let second = try job("host2")
        #expect(snapshotKeys(lab: lab, store: store) == keys, "wheelhouse/ changed the key: \(snapshotKeys(lab: lab, store: store))")
        #expect(keys.count == 1 && second.log.contains(keys[0]), "run 2 did not restore \(keys):\n\(second.log.suffix(3000))")
        #expect(compiledObjects(second.log) == 0 && second.stats.misses == 0,
                "run 2 should find everything built: \(compiledObjects(second.log)) compiled, \(second.stats)\n\(second.log.suffix(4000))")
    }
}

/// Writes the user's recipe into a checkout: the helper scripts in ci/ (as the
/// README says), and mount-helpers/cibuildwheel/pyproject-snippet.toml
/// appended to pyproject.toml in its documented podman form, with these
/// test-only changes: the store is the test's directory; the release binary
/// bound at /usr/local/bin/buildfs is scripts/build-release's, not the host's;
/// before-build zeroes ccache's counters instead of `pip install` (the image
/// has the build requirements; the tests keep the containers off PyPI);
/// ccache's counters are written to the host (cibuildwheel's /host) before
/// the snapshot is saved. `cmake`: a scikit-build-core project, whose build
/// directory goes on the stable path and whose compiler launcher is ccache.
func addRecipe(to project: String, lab: ContainerLab, store: String, statsFile: String, cmake: Bool = false) throws {
    try FileManager.default.createDirectory(atPath: project + "/ci", withIntermediateDirectories: true)
    for script in ["buildfs-before-all.sh", "buildfs-after-all.sh"] {
        try FileManager.default.copyItem(atPath: Repo.root + "/mount-helpers/cibuildwheel/" + script,
                                         toPath: project + "/ci/" + script)
    }
    var text = try #require(readText(Repo.snippet))
    func replace(_ old: String, _ new: String) throws {
        guard let range = text.range(of: old) else { throw ContainerTestFailure("snippet has no '\(old)'") }
        text.replaceSubrange(range, with: new)
    }
    try replace("container-engine = { name = \"docker\", create-args = [",
                "container-engine = { name = \"podman\", create-args = [")
    try replace("\"/usr/local/bin/buildfs:/usr/local/bin/buildfs:ro\"", "\"\(lab.buildfs):/usr/local/bin/buildfs:ro\"")
    try replace("\"apparmor:unconfined\"", "\"apparmor=unconfined\"")
    try replace("\"/var/cache/buildfs:/buildfs-store\"", "\"\(store):/buildfs-store\"")
    try replace("before-build = \"pip install setuptools wheel\"", "before-build = \"ccache -z\"")
    try replace("  \"bash {package}/ci/buildfs-after-all.sh\",\n]",
                "  \"ccache --print-stats > /host\(statsFile)\",\n  \"bash {package}/ci/buildfs-after-all.sh\",\n]")
    if cmake {
        try replace("[tool.cibuildwheel.linux]\n",
                    "[tool.cibuildwheel.linux]\nconfig-settings = { \"build-dir\" = \"/work/build/{wheel_tag}\" }\n")
        try replace("CC = \"ccache gcc\"", "CC = \"gcc\"\nCMAKE_C_COMPILER_LAUNCHER = \"ccache\"")
        try replace("CXX = \"ccache g++\"", "CXX = \"g++\"")
    }
    try appendToPyproject(project, text)
}

func appendToPyproject(_ project: String, _ text: String) throws {
    let path = project + "/pyproject.toml"
    let existing = try #require(readText(path))
    try write(existing + "\n" + text, to: path)
}

/// Where CMake wrote its build files, from the build log.
func buildDirectory(_ log: String) -> String? {
    let marker = "Build files have been written to: "
    guard let range = log.range(of: marker, options: .backwards) else { return nil }
    return log[range.upperBound...].prefix { $0 != "\n" }.trimmingCharacters(in: .whitespaces)
}

/// How many C files ninja compiled, from the verbose build log.
func compiledObjects(_ log: String) -> Int {
    log.components(separatedBy: "\n").filter { $0.contains("Building C object") }.count
}

/// The keys in a store, read by the release binary.
func snapshotKeys(lab: ContainerLab, store: String) -> [String] {
    let result = runCommand([lab.buildfs, "snapshots", "--json", "--store", store], timeout: 60)
    guard result.succeeded,
          let list = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
    else { return [] }
    return list.compactMap { $0["key"] as? String }.sorted()
}
