import BuildFSCore
import Foundation
import Testing
import TestSupport

/// replaceFile: the whole new file or the old one, and nothing left beside it.
@Suite struct ReplaceFileTests {
    let dir = TemporaryDirectory()

    @Test func replacesAndLeavesNoTemporaryFile() throws {
        let path = dir.sub("record.json")
        try replaceFile(path, with: Array("old".utf8), durable: false)
        try replaceFile(path, with: Array("new contents".utf8), durable: true, mode: 0o600)
        #expect(FileManager.default.contents(atPath: path) == Data("new contents".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["record.json"])
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func failureNamesThePathAndKeepsTheOldFile() throws {
        let path = dir.sub("kept")
        try replaceFile(path, with: Array("old".utf8), durable: false)
        // A directory in the way of the rename.
        let blocked = dir.sub("blocked")
        try FileManager.default.createDirectory(atPath: blocked + "/inside", withIntermediateDirectories: true)
        let overDirectory = #expect(throws: SystemCallError.self) { try replaceFile(blocked, with: Array("x".utf8), durable: false) }
        #expect(overDirectory?.description.contains(blocked) == true, "\(String(describing: overDirectory))")
        let missing = dir.sub("missing/file")
        let noDirectory = #expect(throws: SystemCallError.self) { try replaceFile(missing, with: [1], durable: false) }
        #expect(noDirectory?.description.contains(dir.sub("missing/")) == true, "\(String(describing: noDirectory))")
        #expect(FileManager.default.contents(atPath: path) == Data("old".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["blocked", "kept"])
    }
}
