import Foundation
import Glibc

/// A tiny authoritative DNS server for tests, on port 53 of an address of its
/// own in 127.0.0.0/8 (resolv.conf has no port; any 127.x.y.z is loopback,
/// so parallel tests never collide with each other or a local resolver).
/// Answers A and AAAA questions from `records` over UDP and TCP, NXDOMAIN for
/// other names; names in `truncated` get an empty answer with the TC bit over
/// UDP, so that a client has to ask again over TCP. Stopped when dropped.
public final class DNSResponder: @unchecked Sendable {
    public let address: String
    private let records: [String: [String]]
    private let truncated: Set<String>
    private let udp: Int32
    private let tcp: Int32
    private let lock = NSLock()
    private var seen: [String] = []
    private var stopped = false
    private let threads = DispatchGroup()

    /// `records`: lower-case name without trailing dot -> addresses (IPv4 or IPv6).
    public init(records: [String: [String]], truncated: Set<String> = []) throws {
        self.records = records
        self.truncated = truncated
        var lastError = ""
        for _ in 0..<50 {
            let candidate = "127.53.\(Int.random(in: 1...254)).\(Int.random(in: 1...254))"
            guard let udp = DNSResponder.bound(candidate, SOCK_DGRAM) else { lastError = String(cString: strerror(errno)); continue }
            guard let tcp = DNSResponder.bound(candidate, SOCK_STREAM) else {
                lastError = String(cString: strerror(errno)); close(udp); continue
            }
            listen(tcp, 16)
            self.address = candidate
            self.udp = udp
            self.tcp = tcp
            startThreads()
            return
        }
        throw SpawnFailure(description: "DNSResponder: cannot bind port 53 on 127.53.x.y: \(lastError)")
    }

    deinit { stop() }

    /// The names asked for, in order, as "TYPE name" ("A cache.example").
    public var questions: [String] { lock.lock(); defer { lock.unlock() }; return seen }

    public func stop() {
        lock.lock()
        let wasStopped = stopped
        stopped = true
        lock.unlock()
        guard !wasStopped else { return }
        shutdown(udp, Int32(SHUT_RDWR))
        shutdown(tcp, Int32(SHUT_RDWR))
        threads.wait()
        close(udp)
        close(tcp)
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    private static func bound(_ address: String, _ kind: __socket_type) -> Int32? {
        let fd = socket(AF_INET, Int32(kind.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = UInt16(53).bigEndian
        inet_pton(AF_INET, address, &sa.sin_addr)
        let result = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 { let saved = errno; close(fd); errno = saved; return nil }
        return fd
    }

    private func startThreads() {
        threads.enter()
        Thread.detachNewThread { [self] in
            defer { threads.leave() }
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !isStopped {
                var peer = sockaddr_storage()
                var peerLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let count = buffer.withUnsafeMutableBytes { raw in
                    withUnsafeMutablePointer(to: &peer) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            recvfrom(udp, raw.baseAddress, raw.count, 0, $0, &peerLength)
                        }
                    }
                }
                if count <= 0 { if isStopped { return }; continue }
                guard let reply = answer(Array(buffer[0..<count]), overUDP: true) else { continue }
                _ = reply.withUnsafeBytes { raw in
                    withUnsafePointer(to: &peer) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(udp, raw.baseAddress, raw.count, 0, $0, peerLength)
                        }
                    }
                }
            }
        }
        threads.enter()
        Thread.detachNewThread { [self] in
            defer { threads.leave() }
            while !isStopped {
                let client = accept(tcp, nil, nil)
                if client < 0 { if isStopped { return }; continue }
                defer { close(client) }
                var received: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                    if count <= 0 { break }
                    received += buffer[0..<count]
                    if received.count >= 2, received.count >= 2 + (Int(received[0]) << 8 | Int(received[1])) { break }
                }
                guard received.count >= 2,
                      let reply = answer(Array(received.dropFirst(2)), overUDP: false) else { continue }
                let framed = [UInt8(reply.count >> 8), UInt8(reply.count & 0xff)] + reply
                _ = framed.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    /// The reply to one query, or nil for something that is not one.
    private func answer(_ query: [UInt8], overUDP: Bool) -> [UInt8]? {
        guard query.count >= 12, query[2] & 0x80 == 0, query[4] == 0, query[5] == 1 else { return nil }
        var offset = 12
        var labels: [String] = []
        while offset < query.count, query[offset] != 0 {
            let length = Int(query[offset])
            guard length < 64, offset + 1 + length <= query.count else { return nil }
            labels.append(String(decoding: query[offset + 1..<offset + 1 + length], as: UTF8.self))
            offset += 1 + length
        }
        guard offset + 5 <= query.count else { return nil }
        let questionEnd = offset + 5
        let type = UInt16(query[offset + 1]) << 8 | UInt16(query[offset + 2])
        let name = labels.joined(separator: ".").lowercased()
        lock.lock()
        seen.append("\(type == 1 ? "A" : type == 28 ? "AAAA" : "TYPE\(type)") \(name)")
        lock.unlock()

        var reply = Array(query[0..<questionEnd])
        reply[2] = 0x84 | (query[2] & 0x01)  // response, authoritative, RD copied
        reply[3] = 0x80                      // recursion available, NOERROR
        reply[6] = 0; reply[7] = 0; reply[8] = 0; reply[9] = 0; reply[10] = 0; reply[11] = 0
        guard let addresses = records[name] else {
            reply[3] = 0x83  // NXDOMAIN
            return reply
        }
        if overUDP && truncated.contains(name) {
            reply[2] |= 0x02
            return reply
        }
        var count = 0
        for address in addresses {
            var v4 = in_addr(), v6 = in6_addr()
            var data: [UInt8]
            if type == 1, inet_pton(AF_INET, address, &v4) == 1 {
                data = withUnsafeBytes(of: v4) { Array($0) }
            } else if type == 28, inet_pton(AF_INET6, address, &v6) == 1 {
                data = withUnsafeBytes(of: v6) { Array($0) }
            } else {
                continue
            }
            // Name: a pointer to the question's name at offset 12.
            reply += [0xc0, 12, UInt8(type >> 8), UInt8(type & 0xff), 0, 1, 0, 0, 0, 60, 0, UInt8(data.count)]
            reply += data
            count += 1
        }
        reply[7] = UInt8(count)
        return reply
    }
}
