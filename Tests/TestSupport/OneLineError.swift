import Testing

/// Checks a user-caused failure the way a user meets it: non-zero exit and
/// exactly one line on stderr, containing `text`.
public func expectOneLineError(_ result: CommandResult, containing text: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(result.status != 0, sourceLocation: sourceLocation)
    let lines = result.stderr.split(separator: "\n")
    #expect(lines.count == 1, "stderr: \(result.stderr)", sourceLocation: sourceLocation)
    #expect(result.stderr.contains(text), "stderr: \(result.stderr)", sourceLocation: sourceLocation)
}
