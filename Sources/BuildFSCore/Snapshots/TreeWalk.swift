/// Walks snapshot trees for gc, fsck, stats, export and import's counting.
/// Depth first in the order export creates what it finds: each tree's
/// entries by name, a subdirectory's contents right after its entry. An
/// explicit stack, not recursion: trees from another machine's store may
/// nest deeper than a thread's stack.
public struct TreeWalk {
    /// Trees read so far, skipped when met again; nil when every copy of a
    /// shared subtree is walked (export writes each, counts count each).
    private var walked: Set<ObjectID>?

    public init(skippingWalkedTrees: Bool) {
        walked = skippingWalkedTrees ? [] : nil
    }

    /// Walks the tree `root` at `place`: whatever the caller tracks per
    /// directory (its path, or nothing). `read` gives the tree `id` at
    /// `place`, or nil to leave it out; it is called once per tree walked.
    /// `visit` sees every entry with its directory's place and, for a
    /// subdirectory, returns the place to walk it at (nil: not walked; the
    /// result is ignored for other entries). Stops at the first error.
    public mutating func walk<Place>(_ root: ObjectID, at place: Place,
                                     read: (ObjectID, Place) throws -> Tree?,
                                     visit: (TreeEntry, Place) throws -> Place?) rethrows {
        var stack: [(entries: [TreeEntry], next: Int, place: Place)] = []
        var toRead: (id: ObjectID, place: Place)? = (root, place)
        while true {
            if let (id, place) = toRead {
                toRead = nil
                if walked?.insert(id).inserted != false, let tree = try read(id, place) {
                    stack.append((tree.entries, 0, place))
                }
            }
            guard let top = stack.indices.last else { return }
            let index = stack[top].next
            guard index < stack[top].entries.count else {
                stack.removeLast()
                continue
            }
            stack[top].next += 1
            let entry = stack[top].entries[index]
            if let childPlace = try visit(entry, stack[top].place), case let .directory(id) = entry.content {
                toRead = (id, childPlace)
            }
        }
    }

    /// `walk(_:at:read:visit:)` for callers that need no place: every
    /// subdirectory is walked.
    public mutating func walk(_ root: ObjectID, read: (ObjectID) throws -> Tree?,
                              visit: (TreeEntry) throws -> Void) rethrows {
        try walk(root, at: (), read: { id, _ in try read(id) }, visit: { entry, _ in try visit(entry) })
    }
}
