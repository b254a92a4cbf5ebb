import Foundation
import Glibc

/// bench/latency-proxy.py in front of a server on 127.0.0.1: every byte
/// waits `delayMilliseconds` each way, so a round trip costs twice that.
public final class LatencyProxy: @unchecked Sendable {
    public let port: Int
    private let child: Child

    public init(target port: Int, delayMilliseconds: Int) throws {
        let output = OutputFile()
        let child = try Child(["python3", ReleaseBinary.repositoryRoot + "/bench/latency-proxy.py",
                               "--target", "127.0.0.1:\(port)", "--delay-ms", String(delayMilliseconds)], stdout: output.fd)
        self.child = child
        guard waitUntil(seconds: 10, { output.contents().contains("\n") || !child.isRunning }),
              let listening = Int(output.contents().trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SpawnFailure(description: "latency-proxy.py did not start: \(output.contents())")
        }
        self.port = listening
    }

    /// The URL of `server` through this proxy.
    public func url(of server: NginxServer) -> String {
        server.url.replacingOccurrences(of: ":\(server.port)/", with: ":\(port)/")
    }

    /// Stops forwarding (SIGSTOP): connections stay open, nothing moves.
    public func pause() { kill(child.pid, SIGSTOP) }

    /// Forwards again (SIGCONT).
    public func resume() { kill(child.pid, SIGCONT) }

    deinit {
        kill(child.pid, SIGCONT)
        kill(child.pid, SIGKILL)
        _ = child.wait()
    }
}
