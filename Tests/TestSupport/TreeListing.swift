import Crypto
import Foundation
import Glibc

/// Everything a restore must reproduce about a tree, path by path: kind,
/// permission bits, owner, mtime to the nanosecond, size, content hash, link
/// target, and which paths are hard links of one file.
public struct TreeListing: Equatable {
    public var entries: [String: String] = [:]
    /// Sets of paths sharing an inode (only those with more than one path).
    public var hardLinkGroups: Set<[String]> = []

    public init(of root: String, includeRootMetadata: Bool = false) {
        var inodes: [UInt64: [String]] = [:]
        walk(root, relative: "", inodes: &inodes)
        hardLinkGroups = Set(inodes.values.filter { $0.count > 1 }.map { $0.sorted() })
    }

    private mutating func walk(_ dir: String, relative: String, inodes: inout [UInt64: [String]]) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        for name in names {
            let path = dir + "/" + name
            let rel = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else {
                entries[rel] = "unreadable"
                continue
            }
            var line = "mode=\(String(st.st_mode, radix: 8)) uid=\(st.st_uid) gid=\(st.st_gid) "
                + "mtime=\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
            if st.isRegularFile {
                let data = FileManager.default.contents(atPath: path) ?? Data()
                let digest = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
                line += " file size=\(st.st_size) sha256=\(digest)"
                inodes[UInt64(st.st_ino), default: []].append(rel)
            } else if st.isSymlink {
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
                line += " symlink -> \(target)"
            } else if st.isDirectory {
                line += " dir"
                walk(path, relative: rel, inodes: &inodes)
            } else {
                line += " special"
            }
            entries[rel] = line
        }
    }

    /// The same listing with every mtime blanked, for trees changed by the
    /// same operations at different times.
    public func withoutMtimes() -> TreeListing {
        var copy = self
        for (path, line) in entries {
            copy.entries[path] = line.replacingOccurrences(of: #"mtime=[-0-9.]+"#, with: "mtime=*", options: .regularExpression)
        }
        return copy
    }

    /// Human-readable differences, empty when the trees match.
    public func differences(from other: TreeListing) -> [String] {
        var out: [String] = []
        for key in Set(entries.keys).union(other.entries.keys).sorted() {
            let a = entries[key], b = other.entries[key]
            if a != b { out.append("\(key): \(a ?? "absent") != \(b ?? "absent")") }
        }
        if hardLinkGroups != other.hardLinkGroups {
            out.append("hard links: \(hardLinkGroups.sorted { $0.description < $1.description }) != "
                       + "\(other.hardLinkGroups.sorted { $0.description < $1.description })")
        }
        return out
    }
}
