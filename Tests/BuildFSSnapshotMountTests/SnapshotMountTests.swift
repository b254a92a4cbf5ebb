import Foundation
import Glibc
import Testing
import TestSupport

/// Snapshots under a mount, acted on from this process (the daemon is
/// another): what a reader sees, what commit saves, what survives restarts,
/// gc and damage.
@Suite struct SnapshotMountTests {
    let dir = TemporaryDirectory("buildfs-snapmount")
    var store: String { dir.sub("store") }
    var mountpoint: String { dir.sub("mnt") }

    init() {
        mkdir(dir.sub("mnt"), 0o755)
    }

    func buildfs(_ arguments: String...) throws -> CommandResult {
        try Shell.run([Shell.buildfs] + arguments + ["--store", store])
    }

    @discardableResult
    func mount(upper: String, from: [String] = []) throws -> CommandResult {
        mkdir(upper, 0o755)
        let result = try Shell.run([Shell.buildfs, "mount", mountpoint, "--upper", upper, "--store", store]
                                   + from.flatMap { ["--from", $0] })
        #expect(result.status == 0, "mount: \(result.stderr)")
        return result
    }

    func unmount() throws {
        let result = try Shell.run([Shell.buildfs, "umount", mountpoint])
        #expect(result.status == 0, "umount: \(result.stderr)")
    }

    /// Runs `body` with the mount up, unmounting even when it throws.
    func mounted(upper: String, from: [String] = [], _ body: () throws -> Void) throws {
        try mount(upper: upper, from: from)
        defer { try? unmount() }
        try body()
    }

    func randomTree(_ seed: UInt64, at path: String, budget: Int = 12 << 20) {
        var tree = RandomTree(seed: seed)
        tree.totalBudget = budget
        tree.generate(at: path)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func mountedSnapshotIsExact(seed: UInt64) throws {
        randomTree(seed, at: dir.sub("source"))
        #expect(try buildfs("import", dir.sub("source"), "--key", "base").status == 0)
        try mounted(upper: dir.sub("upper"), from: ["ba"]) {
            let differences = TreeListing(of: mountpoint).differences(from: TreeListing(of: dir.sub("source")))
            #expect(differences.isEmpty, "seed \(seed): \(differences.prefix(5))")
        }
        // Reading copied nothing up: the upper dir holds stubs only.
        let du = try Shell.bash("du -s --block-size=1 '\(dir.sub("upper"))' | cut -f1").stdout
        #expect((Int(du.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .max) < 2_000_000, "upper uses \(du) bytes")
    }

    @Test func mountIsLazyAndCommitWithoutChangesKeepsTheRoot() throws {
        randomTree(7, at: dir.sub("source"))
        let imported = try buildfs("import", dir.sub("source"), "--key", "base")
        #expect(imported.status == 0)
        try mounted(upper: dir.sub("upper"), from: ["base"]) {
            // Only the root and its subdirectories are expanded at mount
            // time; deeper directories wait for their first use.
            let deep = try Shell.bash("find '\(dir.sub("upper"))' -mindepth 3 -not -path '*/.buildfs-internal*' | wc -l").stdout
            let all = try Shell.bash("find '\(dir.sub("source"))' -mindepth 3 | wc -l").stdout
            #expect(Int(deep.trimmingCharacters(in: .whitespacesAndNewlines)) == 0)
            #expect((Int(all.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 0)
            #expect(try Shell.run([Shell.buildfs, "commit", mountpoint, "--key", "same", "--store", store]).status == 0)
        }
        let listing = try buildfs("snapshots", "--json").stdout
        let refs = try JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [[String: Any]] ?? []
        let roots = Dictionary(uniqueKeysWithValues: refs.map { ($0["key"] as! String, $0["root"] as! String) })
        #expect(roots["same"] != nil && roots["same"] == roots["base"])
    }

    /// Every kind of change, applied both to the mount and to a plain copy:
    /// the commit must export as the plain copy, and mount back the same.
    @Test func commitAfterEveryKindOfChangeRoundTrips() throws {
        let source = dir.sub("source")
        randomTree(11, at: source)
        try CProject.write(to: source + "/project")
        #expect(try Shell.run(["make", "-s", "-C", source + "/project", "-j2"]).status == 0)
        #expect(try buildfs("import", source, "--key", "base").status == 0)
        let plain = dir.sub("plain")
        #expect(try buildfs("export", plain, "--from", "base").status == 0)

        let changes = """
            set -e
            echo appended >> project/src/module_1.c
            printf 'new file\\n' > project/new.txt
            mkdir -p project/newdir/deep && echo deep > project/newdir/deep/file
            truncate -s 10 project/src/module_2.c
            : > project/src/module_3.c
            rm project/src/module_4.c
            rm -rf project/build
            mv project/src/module_5.c project/renamed.c
            mv project/src project/source-dir
            chmod 600 project/Makefile
            touch -m -d '2001-02-03 04:05:06.123456789' project/renamed.c
            ln project/new.txt project/new-hardlink.txt
            ln project/Makefile project/Makefile.link
            ln -s ../renamed.c project/source-dir/link-to-renamed
            mkdir project/build && echo rebuilt > project/build/out.o
            """
        #expect(try Shell.bash(changes, directory: plain).status == 0)
        try mounted(upper: dir.sub("upper"), from: ["base"]) {
            let applied = try Shell.bash(changes, directory: mountpoint)
            #expect(applied.status == 0, "\(applied.stderr)")
            // The same changes on a plain directory give the same tree, but
            // for the mtimes of what the changes touched (made at other times).
            let differencesBefore = TreeListing(of: mountpoint).withoutMtimes()
                .differences(from: TreeListing(of: plain).withoutMtimes())
            #expect(differencesBefore.isEmpty, "\(differencesBefore.prefix(5))")
            #expect(try Shell.run([Shell.buildfs, "commit", mountpoint, "--key", "changed", "--store", store]).status == 0)
            let exported = dir.sub("exported")
            #expect(try buildfs("export", exported, "--from", "changed").status == 0)
            let differences = TreeListing(of: exported).differences(from: TreeListing(of: mountpoint))
            #expect(differences.isEmpty, "\(differences.prefix(5))")
        }
        try mounted(upper: dir.sub("upper2"), from: ["changed"]) {
            let differences = TreeListing(of: mountpoint).differences(from: TreeListing(of: dir.sub("exported")))
            #expect(differences.isEmpty, "\(differences.prefix(5))")
        }
    }

    @Test func restartOnTheSameUpperShowsTheSameTree() throws {
        randomTree(13, at: dir.sub("source"))
        #expect(try buildfs("import", dir.sub("source"), "--key", "base").status == 0)
        var before = TreeListing(of: "/nonexistent")
        let change = "cd '\(mountpoint)' && ls -R > /dev/null && echo x >> \"$(find . -type f | head -1)\" "
            + "&& rm -rf \"$(find . -mindepth 1 -type d | head -1)\""
        try mount(upper: dir.sub("upper"), from: ["base"])
        let changed = try Shell.bash(change)
        #expect(changed.status == 0, "\(changed.stderr)")
        before = TreeListing(of: mountpoint)
        try unmount()
        // Without --from: the upper dir says which snapshot is under it.
        try mounted(upper: dir.sub("upper")) {
            #expect(TreeListing(of: mountpoint).differences(from: before).isEmpty)
        }
        // Another snapshot over the same upper dir is refused.
        randomTree(14, at: dir.sub("other"))
        #expect(try buildfs("import", dir.sub("other"), "--key", "other").status == 0)
        let refused = try Shell.run([Shell.buildfs, "mount", mountpoint, "--upper", dir.sub("upper"),
                                     "--from", "other", "--store", store])
        #expect(refused.status != 0 && refused.stderr.contains("already holds snapshot 'base'"), "\(refused.stderr)")
        #expect(mountPoints(under: mountpoint).isEmpty)
    }

    @Test func gcKeepsTheSnapshotOfALiveMount() throws {
        randomTree(17, at: dir.sub("source"))
        #expect(try buildfs("import", dir.sub("source"), "--key", "base").status == 0)
        try mounted(upper: dir.sub("upper"), from: ["base"]) {
            let gc = try buildfs("gc", "--max-age", "0s")
            #expect(gc.status == 0 && gc.stdout.contains("evicted 'base'"), "\(gc.stdout) \(gc.stderr)")
            #expect(try buildfs("fsck").status == 0)
            // Every file still reads, through the lease.
            let differences = TreeListing(of: mountpoint).differences(from: TreeListing(of: dir.sub("source")))
            #expect(differences.isEmpty, "\(differences.prefix(5))")
        }
        // Unmounted, the lease is gone and gc sweeps the objects.
        let gc = try buildfs("gc", "--json")
        let result = try JSONSerialization.jsonObject(with: Data(gc.stdout.utf8)) as? [String: Any]
        #expect((result?["bytesAfter"] as? Int ?? -1) < 10_000, "\(gc.stdout)")
    }

    @Test func corruptChunkIsAnIOErrorNeverWrongBytes() throws {
        mkdir(dir.sub("source"), 0o755)
        var random = SeededRandom(seed: 19)
        writeFile(dir.sub("source/big.bin"), random.bytes(3_000_000))
        #expect(try buildfs("import", dir.sub("source"), "--key", "base").status == 0)
        // Damage the middle of the only pack.
        let packs = try FileManager.default.contentsOfDirectory(atPath: store + "/packs").filter { $0.hasSuffix(".pack") }
        let path = store + "/packs/" + packs[0]
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[bytes.count / 2] ^= 0xFF
        chmod(path, 0o644)
        writeFile(path, bytes)
        try mounted(upper: dir.sub("upper"), from: ["base"]) {
            let read = try Shell.run(["cat", mountpoint + "/big.bin"])
            #expect(read.status != 0 && read.stderr.contains("Input/output error"), "\(read.stderr)")
        }
        // Logs are named NAMESPACE-ESCAPEDPATH.log.
        let logName = try #require(try FileManager.default.contentsOfDirectory(atPath: "/run/buildfs")
            .first { $0.hasSuffix("-\(escapedMountpoint).log") })
        let log = try String(contentsOfFile: "/run/buildfs/" + logName, encoding: .utf8)
        #expect(log.contains("corrupt"), "daemon log: \(log)")
    }

    /// A daemon under a low descriptor limit (1024: the cache keeps at most
    /// 256 inode descriptors) still handles many more files: cold inodes
    /// are closed and reopened by handle. Without that: EMFILE.
    @Test func manyMoreFilesThanDescriptors() throws {
        mkdir(dir.sub("upper"), 0o755)
        let result = try underLowFileLimit("""
            for d in $(seq 0 49); do mkdir d$d; for f in $(seq 0 99); do echo "$d-$f" > d$d/f$f; done; done
            for d in $(seq 0 49); do for f in 0 50 99; do [ "$(cat d$d/f$f)" = "$d-$f" ]; mv d$d/f$f d$d/g$f; done; done
            find . -type f | wc -l
            ls -lR > /dev/null
            """)
        #expect(result.status == 0, "\(result.stderr.suffix(500))")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "5000")
    }

    /// Mounts the upper directory with the daemon under a 1024 descriptor
    /// limit, runs `script` in the mount (bash, set -e), and unmounts.
    func underLowFileLimit(_ script: String) throws -> CommandResult {
        let mount = try Shell.bash("ulimit -n 1024 && '\(Shell.buildfs)' mount '\(mountpoint)' --upper '\(dir.sub("upper"))'")
        try #require(mount.status == 0, "\(mount.stderr)")
        defer { try? unmount() }
        return try Shell.bash("set -e\ncd '\(mountpoint)'\n" + script)
    }

    /// A file a program holds open after its last name is gone stays
    /// readable and writable although the daemon closes cold descriptors:
    /// the kernel opens files without telling the daemon, so the unlinked
    /// file's own descriptor is all that keeps its bytes. 2000 files walked
    /// under a 1024 limit force evictions between the unlink and the reads.
    @Test func openUnlinkedFileOutlivesDescriptorEviction() throws {
        mkdir(dir.sub("upper"), 0o755)
        #expect(FileManager.default.createFile(atPath: dir.sub("upper") + "/kept", contents: Data("kept bytes\n".utf8)))
        let result = try underLowFileLimit("""
            exec 3<kept 4>>kept
            rm kept
            for f in $(seq 1 2000); do echo $f > n$f; done
            ls -l > /dev/null
            echo appended >&4
            cat <&3
            """)
        #expect(result.status == 0, "\(result.stderr.suffix(500))")
        #expect(result.stdout == "kept bytes\nappended\n")
    }

    /// A file of the snapshot held open for reading (served from the store)
    /// while it is opened for writing, which copies it up, and opened again
    /// after: every reader sees the right bytes, the one opened before the
    /// copy-up too. (Such a mount never passes files through: the kernel
    /// would refuse, EIO, an inode open both passed through and through
    /// the daemon, as a stub must be.)
    @Test func snapshotFileReadWhileItIsWrittenAndAfter() throws {
        mkdir(dir.sub("source"), 0o755)
        #expect(FileManager.default.createFile(atPath: dir.sub("source") + "/f", contents: Data("from the store\n".utf8)))
        #expect(try buildfs("import", dir.sub("source"), "--key", "base").status == 0)
        try mounted(upper: dir.sub("upper"), from: ["base"]) {
            let result = try Shell.bash("""
                cd '\(mountpoint)' || exit 9
                exec 3<f
                echo written >> f || exit 1
                cat <&3
                exec 3<&-
                echo again >> f || exit 2
                exec 4<f; cat <&4
                """)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "from the store\nwritten\nfrom the store\nwritten\nagain\n")
        }
        let upper = try String(contentsOfFile: dir.sub("upper") + "/f", encoding: .utf8)
        #expect(upper == "from the store\nwritten\nagain\n")
    }

    /// Small stubs go into the page cache as they are opened, and the next
    /// files of their listing ahead of a reader that opens them in order
    /// (PageCacheFiller); larger ones are decoded ahead of their READs.
    /// Every byte a reader in another process gets is the snapshot's, and
    /// a file written right after it was filled, or while the files after
    /// it are being filled ahead, reads back what was written: whole or in
    /// part, from a new process, with its cached pages kept or dropped.
    @Test func filledFilesReadExactlyAndWritesWinOverFills() throws {
        let count = 120
        mkdir(dir.sub("source"), 0o755)
        var random = SeededRandom(seed: 41)
        var contents: [String: [UInt8]] = [:]
        for i in 0..<count {
            let name = String(format: "f%03d", i)
            contents[name] = random.bytes(1_000 + Int(random.next() % 60_000))
            writeFile(dir.sub("source/\(name)"), contents[name]!)
        }
        let large = random.bytes(3_000_000)
        writeFile(dir.sub("source/large.bin"), large)
        #expect(try buildfs("import", dir.sub("source"), "--key", "base").status == 0)
        try mounted(upper: dir.sub("upper"), from: ["base"]) {
            // A walk in listing order, as tar makes it: the bytes of each file.
            let walk = try Shell.bash("cd '\(mountpoint)' && for f in $(ls -U); do sha256sum \"$f\"; done")
            #expect(walk.status == 0, "\(walk.stderr)")
            let expected = try Shell.bash("cd '\(dir.sub("source"))' && sha256sum * | sort -k2").stdout
            #expect(walk.stdout.split(separator: "\n").sorted { $0.dropFirst(66) < $1.dropFirst(66) }.joined(separator: "\n") + "\n"
                    == expected)
            // The daemon publishes its counters four times a second.
            var filled = -1
            _ = waitUntil(seconds: 5) {
                let stats = try? Shell.run([Shell.buildfs, "stats", mountpoint, "--json", "--store", store])
                let json = stats.flatMap { try? JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) } as? [String: Any]
                filled = ((json?["mount"] as? [String: Any])?["filesPutInPageCache"] as? NSNumber)?.intValue ?? -1
                return filled >= count / 2
            }
            #expect(filled >= count / 2 && filled <= count, "filesPutInPageCache: \(filled)")
        }
        // A fresh mount: every two files read in listing order set off fills
        // of the files after them, and the next two are written at once
        // (one rewritten, one changed in place), racing those fills, then
        // read back by new processes, before and after their pages are
        // dropped.
        var changedInPlace: [String] = []
        try mounted(upper: dir.sub("upper2"), from: ["base"]) {
            let script = try Shell.bash("""
                cd '\(mountpoint)' || exit 9
                i=0
                for f in $(ls -U | grep '^f'); do
                    i=$(( i + 1 ))
                    case $(( i % 4 )) in
                    0) printf 'rewritten %s\\n' "$f" > "$f" || exit 1
                       want="rewritten $f" ;;
                    1) printf 'XY' | dd of="$f" bs=1 seek=10 conv=notrunc status=none || exit 2
                       echo "in place $f"
                       want=$(head -c 10 "$f" | od -An -tx1 | tr -d ' \\n')5859 ;;
                    *) cat "$f" > /dev/null || exit 3
                       continue ;;
                    esac
                    for pass in kept dropped; do
                        if [ "$pass" = dropped ]; then dd if="$f" iflag=nocache count=0 status=none; fi
                        if [ $(( i % 4 )) -eq 0 ]; then got=$(cat "$f"); else got=$(head -c 12 "$f" | od -An -tx1 | tr -d ' \\n'); fi
                        [ "$got" = "$want" ] || { echo "$f ($pass): got $got, want $want"; exit 4; }
                    done
                done
                """)
            #expect(script.status == 0, "\(script.stdout)\(script.stderr)")
            changedInPlace = script.stdout.split(separator: "\n").compactMap { line in
                line.hasPrefix("in place ") ? String(line.dropFirst("in place ".count)) : nil
            }
            #expect(changedInPlace.count >= count / 4 - 1)
            #expect(FileManager.default.contents(atPath: mountpoint + "/large.bin").map { [UInt8]($0) } == large)
        }
        // The upper holds what was written, and the snapshot's bytes around it.
        for name in changedInPlace {
            var want = contents[name] ?? []
            want.replaceSubrange(10..<12, with: Array("XY".utf8))
            #expect(FileManager.default.contents(atPath: dir.sub("upper2/\(name)")).map { [UInt8]($0) } == want, "\(name)")
        }
    }

    /// A container volume or a tmpfs at the stable path is normal: buildfs
    /// mounts over it, and unmounting shows it again.
    @Test func mountsOverAnotherFileSystem() throws {
        #expect(try Shell.bash("mount -t tmpfs tmpfs '\(mountpoint)' && touch '\(mountpoint)/on-tmpfs'").status == 0)
        defer { umount2(mountpoint, Int32(MNT_DETACH)) }
        try mounted(upper: dir.sub("upper")) {
            #expect(!FileManager.default.fileExists(atPath: mountpoint + "/on-tmpfs"))
            // A second buildfs mount on top is refused with a clear line.
            let second = try Shell.run([Shell.buildfs, "mount", mountpoint, "--upper", dir.sub("upper")])
            #expect(second.status != 0 && second.stderr.contains("already a buildfs mount"), "\(second.stderr)")
        }
        #expect(FileManager.default.fileExists(atPath: mountpoint + "/on-tmpfs"))
    }

    /// Over a snapshot the kernel reads ahead in 1 MiB READs (the mount
    /// raises its read-ahead): a file of many chunks read whole and at odd
    /// offsets, and an upper file read back in READs too large to splice
    /// after its pages were dropped, give exactly the bytes written.
    @Test func largeReadsOverASnapshotAreExact() throws {
        mkdir(dir.sub("source"), 0o755)
        var random = SeededRandom(seed: 23)
        let big = random.bytes(9_000_000) // ~140 chunks in several blocks
        writeFile(dir.sub("source/big.bin"), big)
        #expect(try buildfs("import", dir.sub("source"), "--key", "base").status == 0)
        try mounted(upper: dir.sub("upper"), from: ["base"]) {
            let device = try Shell.run(["mountpoint", "-d", mountpoint]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let readAhead = try String(contentsOfFile: "/sys/class/bdi/\(device)/read_ahead_kb", encoding: .utf8)
            #expect(readAhead.trimmingCharacters(in: .whitespacesAndNewlines) == "1024", "read_ahead_kb of \(device)")

            #expect(FileManager.default.contents(atPath: mountpoint + "/big.bin").map { [UInt8]($0) } == big)
            let fd = open(mountpoint + "/big.bin", O_RDONLY)
            try #require(fd >= 0)
            defer { close(fd) }
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
            for (offset, count) in [(777_777, 1_500_000), (8_999_000, 5_000), (65_535, 3)] {
                var buffer = [UInt8](repeating: 0, count: count)
                let n = pread(fd, &buffer, count, off_t(offset))
                #expect(n == min(count, big.count - offset) && buffer[..<n] == big[offset..<offset + n], "at \(offset)")
            }

            let written = random.bytes(5_000_000)
            writeFile(mountpoint + "/new.bin", written)
            let again = open(mountpoint + "/new.bin", O_RDONLY)
            try #require(again >= 0)
            defer { close(again) }
            posix_fadvise(again, 0, 0, POSIX_FADV_DONTNEED)
            var back = [UInt8](repeating: 0, count: written.count)
            var done = 0
            while done < back.count {
                let n = back.withUnsafeMutableBytes { pread(again, $0.baseAddress! + done, $0.count - done, off_t(done)) }
                guard n > 0 else { break }
                done += n
            }
            #expect(done == written.count && back == written)
        }
    }

    /// A directory of more stubs than the daemon keeps notes of (16384,
    /// SnapshotLayer.stubNotes): the notes are dropped midway through laying
    /// it out and the rest are looked up from their xattrs; every file
    /// still reads as it was saved.
    @Test func moreStubsThanLayoutNotesReadExactly() throws {
        let count = 17_000
        let many = dir.sub("source/many")
        let names = "seq 1 \(count) | sed 's/^/f/'"
        #expect(try Shell.bash("mkdir -p '\(many)' && cd '\(many)' && seq 1 \(count) | awk '{ f = \"f\" $1; print \"file \" $1 > f; close(f) }'").status == 0)
        #expect(try buildfs("import", dir.sub("source"), "--key", "base").status == 0)
        try mounted(upper: dir.sub("upper"), from: ["base"]) {
            let read = try Shell.bash("cd '\(mountpoint)/many' && \(names) | xargs cat | md5sum")
            let expected = try Shell.bash("cd '\(many)' && \(names) | xargs cat | md5sum")
            #expect(read.status == 0 && read.stdout == expected.stdout, "\(read.stderr)")
        }
    }

    var escapedMountpoint: String {
        var out = ""
        for byte in mountpoint.utf8 {
            let c = Character(UnicodeScalar(byte))
            if c.isLetter || c.isNumber || c == "-" || c == "_" || (c == "." && !out.isEmpty) { out.append(c) } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}
