import CLinuxCalls
import Glibc

/// The upper directory's format for a snapshot layered under it (see
/// SnapshotLayer), and the one place that reads and writes it: what the
/// mount writes as it expands directories and creates stubs, it reads back
/// per inode, and a commit's scan reads back to reuse ids without reading
/// contents. Our attributes are `trusted.*`, which only root can see.
public enum UpperLayout {
    /// On a pending directory (not expanded yet): [1] + its tree id.
    static let treeAttribute = "trusted.buildfs.tree"
    /// On a stub (a file not copied up yet): StubReference.
    static let stubAttribute = "trusted.buildfs.stub"
    /// On a hard-linked stub also linked into the link index: [1].
    static let indexedAttribute = "trusted.buildfs.indexed"
    /// On the upper root: "ROOT-HEX KEY" of the snapshot under it.
    static let snapshotAttribute = "trusted.buildfs.snapshot"
    /// At the upper root, not part of the tree: the hard link index and the
    /// read trace. Hidden at the mount's root.
    public static let internalDirectory = ".buildfs-internal"
    /// In the internal directory: one link per hard-link group, named by
    /// the group in hex, so that names in other directories find its inode.
    static let linksDirectory = internalDirectory + "/links"

    /// Where an attribute is read from.
    public enum Place {
        /// A file by path; a symlink at the end is followed (an inode's
        /// /proc/self/fd path leads to the inode itself).
        case file(String)
        /// An entry of a directory, not followed if it is a symlink.
        case entry(of: FileDescriptor, name: [UInt8])
    }

    // MARK: reading

    /// The tree a pending directory stands for; nil once expanded.
    public static func pendingTree(at place: Place) -> ObjectID? {
        guard let bytes = read(treeAttribute, at: place), bytes.count == 33, bytes[0] == 1 else { return nil }
        return bytes[1...].withUnsafeBytes { ObjectID(digestBytes: $0) }
    }

    /// What a stub stands for; nil for a file copied up or never a stub.
    public static func stub(at place: Place) -> StubReference? {
        read(stubAttribute, at: place).flatMap(StubReference.decode)
    }

    /// Whether a stub is also linked into the link index.
    public static func isIndexed(at place: Place) -> Bool {
        read(indexedAttribute, at: place) != nil
    }

    /// The snapshot a mount laid under the upper root at `place`, if any.
    public static func snapshot(at place: Place) -> (root: ObjectID, key: String)? {
        guard let value = read(snapshotAttribute, at: place) else { return nil }
        let text = String(decoding: value, as: UTF8.self)
        guard let space = text.firstIndex(of: " "), let root = ObjectID(hex: text[..<space]) else { return nil }
        return (root, String(text[text.index(after: space)...]))
    }

    /// One of ours: hidden from, and refused to, the mount's users.
    public static func isInternalAttribute(_ name: UnsafePointer<CChar>) -> Bool {
        strncmp(name, "trusted.buildfs.", 16) == 0
    }

    // MARK: writing (on descriptors the layer holds)

    static func markPending(_ fd: Int32, tree: ObjectID) throws(SystemCallError) {
        try write(treeAttribute, [1] + tree.bytes, on: fd)
    }

    static func markStub(_ fd: Int32, _ stub: StubReference, indexed: Bool) throws(SystemCallError) {
        try write(stubAttribute, stub.encode(), on: fd)
        if indexed { try write(indexedAttribute, [1], on: fd) }
    }

    static func markSnapshot(_ fd: Int32, root: ObjectID, key: String) throws(SystemCallError) {
        try write(snapshotAttribute, Array("\(root.hex) \(key)".utf8), on: fd)
    }

    /// Marks a directory expanded (by path: the layer holds O_PATH descriptors).
    static func clearPending(_ path: String) throws(SystemCallError) { try remove(treeAttribute, at: path) }

    /// Marks a stub copied up.
    static func clearStub(_ path: String) throws(SystemCallError) { try remove(stubAttribute, at: path) }

    // MARK: the calls

    private static func read(_ name: String, at place: Place) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n: Int
        switch place {
        case let .file(path):
            n = CLinuxCalls.getxattr(path, name, &buffer, buffer.count)
        case let .entry(directory, entry):
            n = withCString(Array("/proc/self/fd/\(directory.raw)/".utf8) + entry) {
                CLinuxCalls.lgetxattr($0, name, &buffer, buffer.count)
            }
        }
        return n < 0 ? nil : Array(buffer[0..<n])
    }

    private static func write(_ name: String, _ value: [UInt8], on fd: Int32) throws(SystemCallError) {
        try sys("fsetxattr") { CLinuxCalls.fsetxattr(fd, name, value, value.count, 0) }
    }

    private static func remove(_ name: String, at path: String) throws(SystemCallError) {
        if CLinuxCalls.removexattr(path, name) != 0 && errno != ENODATA { throw SystemCallError("removexattr", path) }
    }
}

/// Where a stub's content is: the tree that lists it, and its name there
/// (the name when the stub was created; it may have been renamed since).
public struct StubReference: Sendable, Equatable {
    public var tree: ObjectID
    public var name: [UInt8]

    public init(tree: ObjectID, name: [UInt8]) {
        self.tree = tree
        self.name = name
    }

    public func encode() -> [UInt8] { [1] + tree.bytes + name }

    public static func decode(_ bytes: [UInt8]) -> StubReference? {
        guard bytes.count > 33, bytes[0] == 1 else { return nil }
        let tree = bytes[1..<33].withUnsafeBytes { ObjectID(digestBytes: $0) }
        return StubReference(tree: tree, name: Array(bytes[33...]))
    }
}
