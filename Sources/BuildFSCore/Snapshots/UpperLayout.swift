import CLinuxCalls
import Glibc

/// How a mount lays its snapshot into the upper directory (see the mount's
/// LowerSnapshot), as far as a commit needs to read it back: pending
/// directories and stubs carry xattrs naming what they stand for.
public enum UpperLayout {
    /// On a directory not expanded yet: [1] + its tree id.
    public static let treeAttribute = "trusted.buildfs.tree"
    /// On a file not hydrated yet: StubReference.
    public static let stubAttribute = "trusted.buildfs.stub"
    /// On a hard-linked file also linked into the link index.
    public static let indexedAttribute = "trusted.buildfs.indexed"
    /// On the upper root: "ROOT-HEX KEY" of the snapshot under it.
    public static let snapshotAttribute = "trusted.buildfs.snapshot"
    /// At the upper root, not part of the tree: the hard link index.
    public static let internalDirectory = ".buildfs-internal"

    public static func decodeTreeID(_ bytes: [UInt8]) -> ObjectID? {
        guard bytes.count == 33, bytes[0] == 1 else { return nil }
        return bytes[1...].withUnsafeBytes { ObjectID(digestBytes: $0) }
    }

    /// The key of the snapshot a mount laid into the upper directory `root`.
    static func mountedSnapshotKey(_ root: FileDescriptor) -> String? {
        guard let value = attribute(root, Array(".".utf8), snapshotAttribute) else { return nil }
        let text = String(decoding: value, as: UTF8.self)
        return text.firstIndex(of: " ").map { String(text[text.index(after: $0)...]) }
    }

    /// The value of xattr `name` on `name`'s entry of `directory`, nil when absent.
    static func attribute(_ directory: FileDescriptor, _ entry: [UInt8], _ name: String) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let path = Array("/proc/self/fd/\(directory.raw)/".utf8) + entry
        let n = withCString(path) { CLinuxCalls.lgetxattr($0, name, &buffer, buffer.count) }
        return n < 0 ? nil : Array(buffer[0..<n])
    }
}

/// Where a stub's content is: the tree that lists it, and its name there
/// (the name when it was laid out; the stub may have been renamed since).
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
