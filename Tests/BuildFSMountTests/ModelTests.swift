import CLinuxCalls
import Foundation
import Glibc
import Testing
import TestSupport

/// Thousands of random operations applied in lockstep to the mount and to a
/// plain directory (the model): every outcome (success or errno, bytes read)
/// must match, and so must the whole tree after every step. A failure names
/// its seed; `BUILDFS_MODEL_SEED=N` replays just that one
/// (`BUILDFS_MODEL_STEPS` changes the length).
@Suite("Model: random operations against a plain directory") struct ModelTests {
    static var seeds: [UInt64] {
        if let text = ProcessInfo.processInfo.environment["BUILDFS_MODEL_SEED"], let seed = UInt64(text) { return [seed] }
        return [1, 2, 3]
    }
    static var steps: Int { Int(ProcessInfo.processInfo.environment["BUILDFS_MODEL_STEPS"] ?? "") ?? 1500 }

    /// Writes the operations of a failed run where a person can read them.
    static func save(_ history: [String], seed: UInt64) -> String {
        let path = "/tmp/buildfs-model-seed-\(seed).log"
        try? (history.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(arguments: seeds)
    func randomOperationsMatchAPlainDirectory(seed: UInt64) throws {
        let fixture = try MountFixture(timeLimit: 400)
        var model = RandomOperations(seed: seed)
        let start = time(nil)
        guard runLockstep(fixture, seed: seed, model: &model, since: start, upperMirrorsMount: true) else { return }
        // Everything is in the upper directory once umount returns.
        let umount = fixture.mount.unmount()
        #expect(umount.status == 0, "\(umount.summary)")
        let differences = lineDifferences(expected: TreeWalk.listing(fixture.plain, since: start, contents: true),
                                          got: TreeWalk.listing(fixture.upper, since: start, contents: true))
        #expect(differences.isEmpty, Comment(rawValue: "seed \(seed): upper directory after umount differs from the model:\n"
                                             + differences.prefix(6).joined(separator: "\n")))
    }

    /// The same with a snapshot under the upper directory: the starting tree
    /// is made by random operations on the plain directory, imported, and
    /// mounted with --from; the operations then hit snapshot entries (stubs,
    /// pending directories) as often as new ones. At the end, a new mount of
    /// the upper directory must show the model still.
    @Test(arguments: seeds)
    func randomOperationsOverASnapshotMatchAPlainDirectory(seed: UInt64) throws {
        guard MountKind.current == .buildfs else { return } // snapshots are buildfs's own
        var model = RandomOperations(seed: seed &+ 1000)
        let fixture = try MountFixture(timeLimit: 400) { plain, store in
            let held = HeldDescriptors()
            for _ in 0..<400 { _ = model.next(existing: TreeWalk.entries(plain)).apply(root: plain, held: held) }
            held.closeAll()
            let imported = Run.command([Shell.buildfs, "import", plain, "--key", "model-base", "--store", store], timeout: 120)
            guard imported.status == 0 else { throw MountFailure(description: "import: \(imported.summary)") }
            return ["--from", "model-base", "--store", store]
        }
        let start = time(nil)
        guard runLockstep(fixture, seed: seed, model: &model, since: start, upperMirrorsMount: false) else { return }
        let umount = fixture.mount.unmount()
        #expect(umount.status == 0, "\(umount.summary)")
        let again = try MountUnderTest(upper: fixture.upper, mountpoint: fixture.mnt, timeLimit: 240,
                                       extraArguments: ["--store", fixture.directory.sub("store")])
        let differences = lineDifferences(expected: TreeWalk.listing(fixture.plain, since: start, contents: true),
                                          got: TreeWalk.listing(again.mountpoint, since: start, contents: true))
        #expect(differences.isEmpty, Comment(rawValue: "seed \(seed): a new mount of the upper directory differs from the model:\n"
                                             + differences.prefix(6).joined(separator: "\n")))
    }

    /// Applies `steps` random operations to the plain directory and the
    /// mount in lockstep and compares after each; records the first
    /// divergence and returns false. `upperMirrorsMount`: the upper
    /// directory must also equal the mount (not so with a snapshot under it,
    /// whose entries are stubs until written).
    func runLockstep(_ fixture: MountFixture, seed: UInt64, model: inout RandomOperations, since start: time_t,
                     upperMirrorsMount: Bool) -> Bool {
        var history: [String] = []
        var succeeded = 0
        // Descriptors kept open across steps, one table per tree.
        let plainHeld = HeldDescriptors(), mountHeld = HeldDescriptors()
        defer { plainHeld.closeAll(); mountHeld.closeAll() }
        /// Records the first divergence with what replays it; the run stops there.
        func fail(_ step: Int, _ what: String) -> Bool {
            Issue.record(Comment(rawValue: "seed \(seed) step \(step): \(what)\n  replay: BUILDFS_MODEL_SEED=\(seed)\n"
                                 + "  last operations:\n    " + history.suffix(12).joined(separator: "\n    ")
                                 + "\n  all operations: " + ModelTests.save(history, seed: seed)))
            return false
        }
        for step in 0..<ModelTests.steps {
            let operation = model.next(existing: TreeWalk.entries(fixture.plain))
            history.append("\(step): \(operation)")
            let sameSizeTruncate = operation.mtimeBeforeSameSizeTruncate(root: fixture.plain)
            let expected = operation.apply(root: fixture.plain, held: plainHeld)
            let got = operation.apply(root: fixture.mnt, held: mountHeld)
            history[history.count - 1] += " → \(expected)"
            if let before = sameSizeTruncate, case let .truncate(path, _) = operation,
               let problem = adoptKeptMtime(before, path, fixture: fixture) {
                return fail(step, "\(operation): \(problem)")
            }
            guard expected == got else {
                return fail(step, "\(operation)\n  plain directory: \(expected)\n  \(fixture.mount.kind.rawValue): \(got)")
            }
            if !(expected.hasPrefix("E") || expected.hasPrefix("open: ") || expected.hasPrefix("read: ")) { succeeded += 1 }
            // Contents every 10 steps (reading everything each step would
            // dominate the run), the rest of the metadata every step.
            let withContents = step % 10 == 9 || step == ModelTests.steps - 1
            let expectedTree = TreeWalk.listing(fixture.plain, since: start, contents: withContents)
            let mountTree = TreeWalk.listing(fixture.mnt, since: start, contents: withContents)
            let differences = lineDifferences(expected: expectedTree, got: mountTree)
            guard differences.isEmpty else {
                // The upper directory's view of the differing entries tells a
                // daemon that wrote the wrong thing from a stale kernel cache.
                let upperTree = TreeWalk.listing(fixture.upper, since: start, contents: withContents)
                let differing = Set(zip(expectedTree, mountTree).filter { $0 != $1 }.map { $0.0.prefix { $0 != ":" } })
                let upperLines = upperTree.filter { differing.contains($0.prefix { $0 != ":" }) }
                return fail(step, "trees differ after \(operation)\n" + differences.prefix(6).joined(separator: "\n")
                            + "\n  in the upper directory: " + upperLines.prefix(6).joined(separator: "\n    "))
            }
            // The mount shows exactly its upper directory, to the nanosecond
            // (a remount or a commit reads the upper directory). Checked when
            // no descriptor is held open: written data may still sit in the
            // kernel's cache until close.
            if upperMirrorsMount && mountHeld.slots.allSatisfy({ $0 == nil }) {
                let upperDifferences = lineDifferences(
                    expected: TreeWalk.listing(fixture.mnt, since: start, contents: withContents, exactTimes: true),
                    got: TreeWalk.listing(fixture.upper, since: start, contents: withContents, exactTimes: true))
                guard upperDifferences.isEmpty else {
                    return fail(step, "after \(operation) the mount (expected) and its upper directory (got) disagree; "
                                + "a remount would show the upper's:\n" + upperDifferences.prefix(6).joined(separator: "\n"))
                }
            }
        }
        // Random paths must hit often enough for the run to test anything.
        #expect(succeeded > ModelTests.steps / 4, "only \(succeeded) of \(ModelTests.steps) operations succeeded")
        return true
    }
}

/// truncate(2) to the size a file already has may or may not move its
/// mtime (POSIX asks for it only when the size changes; ext4 moves it, and
/// a FUSE kernel with writeback cache keeps its own mtime). When the mount
/// kept the old mtime, the model does the same, but the upper directory
/// must agree with the mount, or the mtime changes at the next mount.
/// Returns what is wrong, if anything.
func adoptKeptMtime(_ before: timespec, _ path: String, fixture: MountFixture) -> String? {
    var mounted = stat(), upper = stat()
    guard statFollowing(fixture.mnt + "/" + path, &mounted) == 0,
          mounted.st_mtim.tv_sec == before.tv_sec && mounted.st_mtim.tv_nsec == before.tv_nsec else { return nil }
    var times = [timespec(tv_sec: 0, tv_nsec: Int(BUILDFS_UTIME_OMIT)), before]
    utimensat(AT_FDCWD, fixture.plain + "/" + path, &times, 0)
    guard statFollowing(fixture.upper + "/" + path, &upper) == 0 else { return "the upper file is gone: \(errnoName(errno))" }
    if upper.st_mtim.tv_sec != before.tv_sec || upper.st_mtim.tv_nsec != before.tv_nsec {
        return "truncate to the same size: the mount still shows mtime \(before.tv_sec).\(before.tv_nsec) "
            + "but the upper file has \(upper.st_mtim.tv_sec).\(upper.st_mtim.tv_nsec), so the mtime changes at the next mount"
    }
    return nil
}

/// One random operation on relative paths; `apply` returns its outcome as
/// text (ok, errno name, or what was read).
enum Operation: CustomStringConvertible {
    /// open with these flags, write `length` bytes (none when 0), close:
    /// how a compiler writes an output.
    case create(String, flags: Int32, mode: mode_t, length: Int)
    case write(String, offset: Int, length: Int, fill: UInt64, append: Bool)
    case truncate(String, size: Int)
    case rename(String, String)
    case unlink(String)
    case link(String, String)
    case symlink(target: String, String)
    case mkdir(String, mode: mode_t)
    case rmdir(String)
    case chmod(String, mode: mode_t)
    case utimens(String, atime: timespec?, mtime: timespec?)
    case openUnlinkRead(String, offset: Int)
    case read(String)
    /// On descriptors held across steps (slot 0-2): what a build does with
    /// a file it keeps open while others rename, unlink or link it.
    case holdOpen(slot: Int, String, flags: Int32)
    case heldWrite(slot: Int, offset: Int, length: Int, fill: UInt64)
    case heldTruncate(slot: Int, size: Int)
    case heldRead(slot: Int)
    case heldClose(slot: Int)

    var description: String {
        switch self {
        case let .create(p, flags, mode, length):
            let names = [(O_EXCL, "EXCL"), (O_TRUNC, "TRUNC"), (O_CREAT, "CREAT")].filter { flags & $0.0 != 0 }.map(\.1)
            return "open(\(p), WRONLY|\(names.joined(separator: "|")), \(String(mode, radix: 8))) + write \(length) bytes + close"
        case let .write(p, offset, length, fill, append):
            return "pwrite(\(p), \(length) bytes of \(fill) at \(offset)\(append ? ", O_APPEND" : ""))"
        case let .truncate(p, size): return "truncate(\(p), \(size))"
        case let .rename(a, b): return "rename(\(a), \(b))"
        case let .unlink(p): return "unlink(\(p))"
        case let .link(a, b): return "link(\(a), \(b))"
        case let .symlink(target, p): return "symlink(\(target), \(p))"
        case let .mkdir(p, mode): return "mkdir(\(p), \(String(mode, radix: 8)))"
        case let .rmdir(p): return "rmdir(\(p))"
        case let .chmod(p, mode): return "chmod(\(p), \(String(mode, radix: 8)))"
        case let .utimens(p, atime, mtime):
            func text(_ t: timespec?) -> String { t.map { "\($0.tv_sec).\($0.tv_nsec)" } ?? "OMIT" }
            return "utimensat(\(p), atime \(text(atime)), mtime \(text(mtime)))"
        case let .openUnlinkRead(p, offset): return "open+unlink+read+write(\(p), write at \(offset))"
        case let .read(p): return "read(\(p))"
        case let .holdOpen(slot, p, flags):
            return "held[\(slot)] = open(\(p), \(flags & O_ACCMODE == O_RDONLY ? "RDONLY" : "RDWR")\(flags & O_APPEND != 0 ? "|APPEND" : ""))"
        case let .heldWrite(slot, offset, length, fill): return "pwrite(held[\(slot)], \(length) bytes of \(fill) at \(offset))"
        case let .heldTruncate(slot, size): return "ftruncate(held[\(slot)], \(size))"
        case let .heldRead(slot): return "read+fstat(held[\(slot)])"
        case let .heldClose(slot): return "close(held[\(slot)])"
        }
    }

    /// For a truncate(2) to the size the (followed) file has now, its mtime.
    func mtimeBeforeSameSizeTruncate(root: String) -> timespec? {
        guard case let .truncate(path, size) = self else { return nil }
        var st = stat()
        guard statFollowing(root + "/" + path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size == size else { return nil }
        return st.st_mtim
    }

    func apply(root: String, held: HeldDescriptors) -> String {
        func at(_ relative: String) -> String { root + "/" + relative }
        func result(_ rc: Int32) -> String { rc == 0 ? "ok" : errnoName(errno) }
        switch self {
        case let .create(p, flags, mode, length):
            let fd = open(at(p), flags | O_WRONLY, mode)
            guard fd >= 0 else { return errnoName(errno) }
            let n = length == 0 ? 0 : [UInt8](repeating: 0x63, count: length).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            return (n < 0 ? "write \(errnoName(errno)), " : "") + "close " + result(close(fd))
        case let .write(p, offset, length, fill, append):
            let fd = open(at(p), O_WRONLY | (append ? O_APPEND : 0))
            guard fd >= 0 else { return "open: " + errnoName(errno) }
            var random = SeededRandom(seed: fill)
            let bytes = random.bytes(length)
            let n = bytes.withUnsafeBytes { append ? Glibc.write(fd, $0.baseAddress, $0.count) : pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            let written = n < 0 ? errnoName(errno) : "\(n)"
            return "wrote \(written), close \(result(close(fd)))"
        case let .truncate(p, size): return result(Glibc.truncate(at(p), off_t(size)))
        case let .rename(a, b): return result(Glibc.rename(at(a), at(b)))
        case let .unlink(p): return result(Glibc.unlink(at(p)))
        case let .link(a, b): return result(Glibc.link(at(a), at(b)))
        case let .symlink(target, p): return result(Glibc.symlink(target, at(p)))
        case let .mkdir(p, mode): return result(Glibc.mkdir(at(p), mode))
        case let .rmdir(p): return result(Glibc.rmdir(at(p)))
        case let .chmod(p, mode): return result(Glibc.chmod(at(p), mode))
        case let .utimens(p, atime, mtime):
            let omit = timespec(tv_sec: 0, tv_nsec: Int(BUILDFS_UTIME_OMIT))
            var times = [atime ?? omit, mtime ?? omit]
            return result(utimensat(AT_FDCWD, at(p), &times, AT_SYMLINK_NOFOLLOW))
        case let .openUnlinkRead(p, offset):
            let fd = open(at(p), O_RDWR)
            guard fd >= 0 else { return "open: " + errnoName(errno) }
            defer { close(fd) }
            let unlinked = result(Glibc.unlink(at(p)))
            let before = describeBytes(readAll(fd))
            let n = pwrite(fd, "after unlink", 12, off_t(offset))
            var st = stat()
            fstat(fd, &st)
            return "unlink \(unlinked), read \(before), write \(n < 0 ? errnoName(errno) : "\(n)"), "
                + "size \(st.st_size) nlink \(st.st_nlink), read \(describeBytes(readAll(fd)))"
        case let .read(p):
            let fd = open(at(p), O_RDONLY)
            guard fd >= 0 else { return "open: " + errnoName(errno) }
            defer { close(fd) }
            var byte: UInt8 = 0
            if pread(fd, &byte, 1, 0) < 0 { return "read: " + errnoName(errno) }
            return describeBytes(readAll(fd))
        case let .holdOpen(slot, p, flags):
            let closed = held.close(slot).map { "closed previous: \($0), " } ?? ""
            let fd = open(at(p), flags)
            if fd >= 0 { held.slots[slot] = fd }
            return closed + (fd < 0 ? errnoName(errno) : "ok")
        case let .heldWrite(slot, offset, length, fill):
            guard let fd = held.slots[slot] else { return "no descriptor" }
            var random = SeededRandom(seed: fill)
            let bytes = random.bytes(length)
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            return n < 0 ? errnoName(errno) : "wrote \(n)"
        case let .heldTruncate(slot, size):
            guard let fd = held.slots[slot] else { return "no descriptor" }
            return result(ftruncate(fd, off_t(size)))
        case let .heldRead(slot):
            guard let fd = held.slots[slot] else { return "no descriptor" }
            var st = stat()
            guard fstat(fd, &st) == 0 else { return "fstat: " + errnoName(errno) }
            var byte: UInt8 = 0
            let readable = pread(fd, &byte, 1, 0) < 0 ? "read: " + errnoName(errno) : describeBytes(readAll(fd))
            return Probe.describe(st, [.kind, .mode, .owner, .nlink, .size]) + ", " + readable
        case let .heldClose(slot):
            return held.close(slot) ?? "no descriptor"
        }
    }
}

/// Descriptors that stay open across steps of the model.
final class HeldDescriptors {
    var slots: [Int32?] = [nil, nil, nil]

    /// Closes a slot: the outcome, or nil when it was empty.
    func close(_ slot: Int) -> String? {
        guard let fd = slots[slot] else { return nil }
        slots[slot] = nil
        return Glibc.close(fd) == 0 ? "ok" : errnoName(errno)
    }

    func closeAll() { for slot in slots.indices { _ = close(slot) } }
}

/// Picks operations so that they often hit existing entries (and so
/// collide: EEXIST, ENOTEMPTY, EISDIR, ...): a small pool of names, paths
/// drawn from what the model tree holds now.
struct RandomOperations {
    private var random: SeededRandom
    private static let names = ["a", "b", "c", "d", "e"]
    private static let fileModes: [mode_t] = [0o644, 0o600, 0o755, 0o444, 0o4755, 0o000]
    private static let dirModes: [mode_t] = [0o755, 0o700, 0o775, 0o555]

    init(seed: UInt64) { random = SeededRandom(seed: seed) }

    private mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }
    private mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &random) < percent }

    /// An existing path most of the time, else a new name in an existing
    /// directory (or the root), two levels deep at most.
    private mutating func path(_ existing: [TreeWalk.Entry]) -> String {
        if !existing.isEmpty && chance(65) { return pick(existing).path }
        let dirs = existing.filter { $0.isDirectory && $0.path.split(separator: "/").count < 3 }.map(\.path)
        let parent = dirs.isEmpty || chance(30) ? "" : pick(dirs) + "/"
        return parent + pick(RandomOperations.names)
    }

    private mutating func time() -> timespec {
        timespec(tv_sec: Int.random(in: -1_000_000...1_600_000_000, using: &random),
                 tv_nsec: Int.random(in: 0...999_999_999, using: &random))
    }

    mutating func next(existing: [TreeWalk.Entry]) -> Operation {
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<14:
            return .create(path(existing), flags: pick([O_CREAT, O_CREAT | O_EXCL, O_CREAT | O_TRUNC, O_TRUNC]),
                           mode: pick([0o644, 0o600, 0o755]), length: pick([0, 0, 1, Int.random(in: 1...20_000, using: &random)]))
        case 14..<30:
            return .write(path(existing), offset: pick([0, Int.random(in: 0...70_000, using: &random)]),
                          length: pick([1, Int.random(in: 1...9000, using: &random), 70_000]), fill: random.next(),
                          append: chance(20))
        case 30..<36: return .truncate(path(existing), size: pick([0, Int.random(in: 0...80_000, using: &random)]))
        case 36..<46: return .rename(path(existing), path(existing))
        case 46..<52: return .unlink(path(existing))
        case 52..<58: return .link(path(existing), path(existing))
        // Relative targets that stay inside the root ("../x" from the root
        // would reach a file the mount and the model share).
        case 58..<61: return .symlink(target: pick(["a", "b", "c/d", "nowhere"]), path(existing))
        case 61..<70: return .mkdir(path(existing), mode: pick(RandomOperations.dirModes))
        case 70..<75: return .rmdir(path(existing))
        case 75..<81: return .chmod(path(existing), mode: pick(RandomOperations.fileModes + RandomOperations.dirModes))
        case 81..<88:
            return .utimens(path(existing), atime: chance(20) ? nil : time(), mtime: chance(20) ? nil : time())
        case 88..<91: return .openUnlinkRead(path(existing), offset: Int.random(in: 0...20_000, using: &random))
        case 91..<93: return .read(path(existing))
        default:
            let slot = Int.random(in: 0..<3, using: &random)
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<3: return .holdOpen(slot: slot, path(existing), flags: pick([O_RDWR, O_RDWR, O_RDONLY, O_WRONLY | O_APPEND]))
            case 3..<6:
                return .heldWrite(slot: slot, offset: Int.random(in: 0...20_000, using: &random),
                                  length: Int.random(in: 1...5000, using: &random), fill: random.next())
            case 6: return .heldTruncate(slot: slot, size: Int.random(in: 0...30_000, using: &random))
            case 7..<9: return .heldRead(slot: slot)
            default: return .heldClose(slot: slot)
            }
        }
    }
}

/// The model's view of a tree: entries, and a comparable listing.
enum TreeWalk {
    struct Entry {
        var path: String
        var isDirectory: Bool
    }

    /// Every entry below `root`, sorted, not following symlinks.
    static func entries(_ root: String) -> [Entry] {
        var out: [Entry] = []
        func walk(_ relative: String) {
            let names = (directoryEntries(relative.isEmpty ? root : root + "/" + relative) ?? [])
                .map(\.name).filter { $0 != "." && $0 != ".." }.sorted()
            for name in names {
                let path = relative.isEmpty ? name : relative + "/" + name
                var st = stat()
                let isDirectory = lstat(root + "/" + path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
                out.append(Entry(path: path, isDirectory: isDirectory))
                if isDirectory { walk(path) }
            }
        }
        walk("")
        return out
    }

    /// One line per entry: kind, mode, owner, nlink, size, symlink target,
    /// contents (when asked), mtime; then the groups of hard links. An mtime
    /// from before the run was set explicitly and must match to the
    /// nanosecond; one from during the run only has to be from during it
    /// (the two trees are written moments apart). Inode numbers never
    /// appear: they differ between any two file systems.
    static func listing(_ root: String, since start: time_t, contents: Bool, exactTimes: Bool = false) -> [String] {
        var lines: [String] = []
        var inodes: [ino_t: [String]] = [:]
        var rootStat = stat()
        if lstat(root, &rootStat) == 0 {
            lines.append(".: " + Probe.describe(rootStat, Probe.Fields([.kind, .mode, .owner, .nlink]).union(exactTimes ? .mtime : [])))
        }
        for entry in entries(root) {
            let full = root + "/" + entry.path
            var st = stat()
            guard lstat(full, &st) == 0 else {
                lines.append("\(entry.path): lstat \(errnoName(errno))")
                continue
            }
            var line = "\(entry.path): " + Probe.describe(st, [.kind, .mode, .owner, .nlink, .size])
            let mtime = st.st_mtim
            if mtime.tv_sec < start - 5 || exactTimes {
                line += " mtime=\(mtime.tv_sec).\(mtime.tv_nsec)"
            } else {
                line += mtime.tv_sec <= time(nil) + 5 ? " mtime=during-run" : " mtime=in the future \(mtime.tv_sec)"
            }
            switch st.st_mode & S_IFMT {
            case S_IFLNK: line += " -> " + (readLink(full) ?? errnoName(errno))
            case S_IFREG:
                inodes[st.st_ino, default: []].append(entry.path)
                if contents {
                    let fd = open(full, O_RDONLY)
                    line += fd < 0 ? " contents: \(errnoName(errno))" : " contents: " + describeBytes(readAll(fd))
                    if fd >= 0 { close(fd) }
                }
            default: break
            }
            lines.append(line)
        }
        for group in inodes.values.filter({ $0.count > 1 }).map({ $0.sorted() }).sorted(by: { $0[0] < $1[0] }) {
            lines.append("hard links: \(group)")
        }
        return lines
    }
}
