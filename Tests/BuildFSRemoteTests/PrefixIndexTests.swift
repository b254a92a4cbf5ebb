import BuildFSCore
@testable import BuildFSRemote
import Testing

/// The rules that let a plain HTTP cache answer `--from PREFIX`.
@Suite struct PrefixIndexTests {
    func ref(_ key: String, _ created: Double) -> SnapshotRef {
        SnapshotRef(key: key, root: ObjectID.hashing(Array(key.utf8)), created: created, logicalBytes: 0, addedBytes: 0,
                    files: 0, directories: 0, symlinks: 0, statIndex: nil, source: nil, parent: nil)
    }

    @Test func keysAreIndexedUnderEveryPrefixEndingInASeparator() {
        #expect(PrefixIndex.prefixes(of: "ccache-linux-gcc12-abc") == ["", "ccache-", "ccache-linux-", "ccache-linux-gcc12-"])
        #expect(PrefixIndex.prefixes(of: "plain") == [""])
        // A key ending in a separator is found by its exact key.
        #expect(PrefixIndex.prefixes(of: "ends-") == [""])
    }

    @Test func aLookupReadsTheEntryOfItsLongestIndexedPrefix() {
        #expect(PrefixIndex.entryPrefix(for: "ccache-linux-") == "ccache-linux-")
        #expect(PrefixIndex.entryPrefix(for: "ccache-linux-gc") == "ccache-linux-")
        #expect(PrefixIndex.entryPrefix(for: "cc") == "")
        // Every key with that prefix is in the entry the lookup reads.
        for key in ["ccache-linux-gcc12-abc", "ccache-linux-x"] {
            #expect(PrefixIndex.prefixes(of: key).contains(PrefixIndex.entryPrefix(for: "ccache-linux-g")))
        }
    }

    @Test func mergingKeepsTheNewestFirstAndNeverGoesBackInTime() {
        var refs: [SnapshotRef] = []
        for n in 0..<(PrefixIndex.capacity + 5) { refs = PrefixIndex.merging(ref("k-\(n)", Double(n)), into: refs) }
        #expect(refs.count == PrefixIndex.capacity)
        #expect(refs.first?.key == "k-\(PrefixIndex.capacity + 4)")
        let newer = PrefixIndex.merging(ref("k-3", 1000), into: refs)
        #expect(newer.first?.key == "k-3" && newer.filter { $0.key == "k-3" }.count == 1)
        // An older write of a key does not replace a newer one.
        #expect(PrefixIndex.merging(ref("k-3", 1), into: newer).first?.created == 1000)
    }

    @Test func endpointsKeepCredentialsOutOfTheBaseURL() throws {
        let endpoint = try RemoteEndpoint("https://ci:pa%40ss@cache.example:8443/team/buildfs/")
        #expect(endpoint.base == "https://cache.example:8443/team/buildfs")
        #expect(endpoint.user == "ci" && endpoint.password == "pa@ss" && endpoint.isTLS)
        #expect(RemoteEndpoint.redacted("https://ci:pw@host/x") == "https://***@host/x")
        #expect(throws: BuildFSError.self) { try RemoteEndpoint("http://") }
        #expect(throws: BuildFSError.self) { try RemoteEndpoint("http://host/x?y=1") }
    }
}
