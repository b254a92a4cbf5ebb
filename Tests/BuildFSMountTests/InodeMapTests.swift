import BuildFSCore
@testable import BuildFSMount
import Glibc
import Testing
import TestSupport

/// The inode table's open-addressing map against a Dictionary, through
/// growth and many removals (backward-shift deletion must keep every
/// remaining key findable).
@Suite("Inode map")
struct InodeMapTests {
    @Test func agreesWithADictionary() {
        var map = InodeMap()
        var model: [InodeKey: Inode] = [:]
        var generator = SeededRandom(seed: 15)
        for step in 0..<60_000 {
            // Few devices and inode numbers in runs, as on a real file system.
            let key = InodeKey(device: UInt64.random(in: 1...3, using: &generator),
                               inode: UInt64.random(in: 0..<20_000, using: &generator))
            if let inode = model[key], step % 3 == 0 {
                map.remove(inode)
                model[key] = nil
            } else if model[key] == nil {
                let inode = Inode(fd: -1, key: key, number: 0, type: S_IFREG, cache: nil)
                map.insert(inode)
                model[key] = inode
            }
            if step % 5_000 == 0 {
                #expect(map.count == model.count)
                for (key, inode) in model { #expect(map.find(key) === inode) }
            }
        }
        #expect(map.count == model.count)
        for (key, inode) in model { #expect(map.find(key) === inode) }
        var seen = 0
        map.forEach { inode in
            seen += 1
            #expect(model[inode.key] === inode)
        }
        #expect(seen == model.count)
        #expect(map.find(InodeKey(device: 9, inode: 9)) == nil)
    }

    @Test func removingAnotherInodeWithTheSameKeyKeepsTheHeldOne() {
        var map = InodeMap()
        let key = InodeKey(device: 1, inode: 1)
        let held = Inode(fd: -1, key: key, number: 0, type: S_IFREG, cache: nil)
        map.insert(held)
        map.remove(Inode(fd: -1, key: key, number: 0, type: S_IFREG, cache: nil))
        #expect(map.find(key) === held)
    }
}
