import BuildFSCore
import Foundation
@testable import BuildFSMount
import Glibc
import Testing
import TestSupport

/// The numbers the daemon gives the kernel are checked when they come back:
/// a number never given, or of an inode the kernel has forgotten, finds no
/// inode (ESTALE) instead of freed memory or the slot's next inode.
@Suite("Inode table")
struct InodeTableTests {
    private func staleError(_ body: () throws -> Void) -> Int32? {
        do {
            try body()
            return nil
        } catch {
            return (error as? SystemCallError)?.code
        }
    }

    @Test func numbersAreCheckedWhenTheKernelHandsThemBack() throws {
        let directory = TemporaryDirectory()
        for name in ["a", "b"] { #expect(FileManager.default.createFile(atPath: directory.sub(name), contents: Data())) }
        let table = try PassthroughFileSystem(upper: directory.path).table

        let (a, _) = try table.lookUp("a", in: table.root)
        let numberOfA = table.number(of: a)
        #expect(try table.inode(numberOfA) === a)
        #expect(try table.inode(1) === table.root)
        // A second lookup of the same file is the same inode and number.
        let (again, _) = try table.lookUp("a", in: table.root)
        #expect(again === a && table.number(of: again) == numberOfA)

        // Numbers never given: zero, garbage, a slot past the end, the right
        // slot with another generation.
        for number in [0, 0xDEAD_BEEF_0000_0007, 1 << 31, numberOfA ^ (1 << 40)] as [UInt64] {
            #expect(staleError { _ = try table.inode(number) } == ESTALE, "number \(number)")
        }
        table.forget(0xDEAD_BEEF_0000_0002, count: 1) // ignored, no crash
        #expect(try table.inode(numberOfA) === a)

        // Forgotten once of two lookups: still known; twice: stale.
        table.forget(numberOfA, count: 1)
        #expect(try table.inode(numberOfA) === a)
        table.forget(numberOfA, count: 1)
        #expect(staleError { _ = try table.inode(numberOfA) } == ESTALE)

        // The freed slot goes to the next inode with a new number; the old
        // number still finds nothing.
        let (b, _) = try table.lookUp("b", in: table.root)
        #expect(table.number(of: b) & 0xFFFF_FFFF == numberOfA & 0xFFFF_FFFF)
        #expect(table.number(of: b) != numberOfA)
        #expect(try table.inode(table.number(of: b)) === b)
        #expect(staleError { _ = try table.inode(numberOfA) } == ESTALE)
        // A forgotten inode looked up again comes back under a new number.
        let (aAgain, _) = try table.lookUp("a", in: table.root)
        #expect(table.number(of: aAgain) != numberOfA)
    }
}
