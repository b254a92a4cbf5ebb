import Foundation
import Glibc

/// Finds the address of a remote store's host without the C library's name
/// service switch: `/etc/hosts` first, then DNS over UDP to the nameservers in
/// `/etc/resolv.conf` (its `search`/`domain` list and `ndots`, `timeout`,
/// `attempts` options), A records before AAAA.
///
/// Why: the release binary is linked statically, and a static glibc's
/// getaddrinfo still follows the image's `/etc/nsswitch.conf`; any module
/// other than `files` and `dns` there (`myhostname`, `mdns4_minimal`,
/// `resolve`, `sss`, ...) is dlopen()ed from the image, a shared library
/// built for another C library than the one linked in, which fails or, worse,
/// loads. Reading the two files ourselves gives the same answer in every image
/// (manylinux, musllinux, Alpine, an empty root) and needs nothing from it.
/// The address found is handed to the HTTP client as a DNS override, which
/// keeps the name in the Host header and in TLS (SNI, certificate check).
public struct HostResolver: Sendable {
    public var hostsFile: String
    public var resolvConf: String

    public init(hostsFile: String = "/etc/hosts", resolvConf: String = "/etc/resolv.conf") {
        self.hostsFile = hostsFile
        self.resolvConf = resolvConf
    }

    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// True for an IPv4 or IPv6 address literal (no brackets), which needs
    /// no lookup.
    public static func isAddress(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// The address to connect to for `host` (an address literal is its own
    /// answer). Throws a `Failure` that names what was tried.
    public func address(of host: String) throws -> String {
        if HostResolver.isAddress(host) { return host }
        let name = host.hasSuffix(".") ? String(host.dropLast()) : host
        guard !name.isEmpty else { throw Failure(description: "an empty host name") }
        let fromHosts = HostResolver.parseHosts((try? String(contentsOfFile: hostsFile, encoding: .utf8)) ?? "", name: name)
        if let address = HostResolver.preferred(fromHosts) { return address }
        let lowered = name.lowercased()
        // RFC 6761: localhost is the loopback, whatever DNS says.
        if lowered == "localhost" || lowered.hasSuffix(".localhost") { return "127.0.0.1" }

        let configuration = HostResolver.parseResolvConf((try? String(contentsOfFile: resolvConf, encoding: .utf8)) ?? "")
        var problems: [String] = []
        search: for candidate in configuration.candidates(for: host) {
            for type in [DNSMessage.typeA, DNSMessage.typeAAAA] {
                switch query(candidate, type: type, configuration: configuration) {
                case .addresses(let addresses):
                    if let first = addresses.first { return first }
                case .nameError:
                    break
                case .failed(let why):
                    if !problems.contains(why) { problems.append(why) }
                case .unreachable(let why):
                    // No server answers at all: asking for more names would
                    // only wait out the same timeouts again (the C library
                    // stops here too).
                    problems.append(why)
                    break search
                }
            }
        }
        let servers = configuration.nameservers.joined(separator: ", ")
        let detail = problems.isEmpty ? "no such host" : problems.joined(separator: "; ")
        throw Failure(description: "cannot resolve \(host): not in \(hostsFile), and DNS (\(servers)) gave no address: \(detail)")
    }

    /// IPv4 first: a server on both usually listens on both, and a test
    /// server or a compose network often only on IPv4.
    static func preferred(_ addresses: [String]) -> String? {
        addresses.first(where: { !$0.contains(":") }) ?? addresses.first
    }

    // MARK: files

    /// The addresses `/etc/hosts` gives `name` (case-insensitive), in file order.
    static func parseHosts(_ text: String, name: String) -> [String] {
        let wanted = name.lowercased()
        var found: [String] = []
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count >= 2, isAddress(fields[0]) else { continue }
            if fields.dropFirst().contains(where: { $0.lowercased() == wanted }) { found.append(fields[0]) }
        }
        return found
    }

    struct ResolvConf: Equatable {
        var nameservers: [String] = []
        var search: [String] = []
        var ndots = 1
        var timeoutSeconds = 5
        var attempts = 2

        /// The names to ask for, in order, as the C library would: an
        /// absolute name (trailing dot) alone; a name with at least `ndots`
        /// dots as given first, then with each search domain; otherwise the
        /// search domains first.
        func candidates(for host: String) -> [String] {
            if host.hasSuffix(".") { return [String(host.dropLast())] }
            let searched = search.map { "\(host).\($0)" }
            let dots = host.filter { $0 == "." }.count
            return dots >= ndots ? [host] + searched : searched + [host]
        }
    }

    static func parseResolvConf(_ text: String) -> ResolvConf {
        var configuration = ResolvConf()
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.split(whereSeparator: { $0 == "#" || $0 == ";" }).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let keyword = fields.first else { continue }
            switch keyword {
            case "nameserver":
                // The C library uses the first three.
                if fields.count >= 2, isAddress(fields[1]), configuration.nameservers.count < 3 {
                    configuration.nameservers.append(fields[1])
                }
            case "search", "domain":
                // The last of these lines wins.
                configuration.search = fields.dropFirst().map { $0.hasSuffix(".") ? String($0.dropLast()) : $0 }
                    .filter { !$0.isEmpty }
            case "options":
                for option in fields.dropFirst() {
                    let parts = option.split(separator: ":", maxSplits: 1)
                    guard parts.count == 2, let value = Int(parts[1]) else { continue }
                    switch parts[0] {
                    case "ndots": configuration.ndots = min(max(value, 0), 15)
                    case "timeout": configuration.timeoutSeconds = min(max(value, 1), 30)
                    case "attempts": configuration.attempts = min(max(value, 1), 5)
                    default: break
                    }
                }
            default:
                break
            }
        }
        // No nameserver line: the C library asks the local host.
        if configuration.nameservers.isEmpty { configuration.nameservers = ["127.0.0.1"] }
        return configuration
    }

    // MARK: DNS

    enum Answer: Equatable {
        case addresses([String])
        /// NXDOMAIN, or no record of this type: try the next name.
        case nameError
        /// A server answered with an error (SERVFAIL, REFUSED).
        case failed(String)
        /// No server answered at all (timeouts, nothing listening).
        case unreachable(String)
    }

    /// Asks each nameserver in turn, `attempts` rounds, until one answers.
    func query(_ name: String, type: UInt16, configuration: ResolvConf) -> Answer {
        var lastFailure = "no answer"
        var anyAnswer = false
        for _ in 0..<configuration.attempts {
            for server in configuration.nameservers {
                switch HostResolver.exchange(name: name, type: type, server: server,
                                             timeoutMilliseconds: configuration.timeoutSeconds * 1000) {
                case .success(let answer):
                    switch answer {
                    case .failed(let why):
                        anyAnswer = true
                        lastFailure = "\(server): \(why)"
                    default: return answer
                    }
                case .failure(let failure):
                    lastFailure = "\(server): \(failure.description)"
                }
            }
        }
        return anyAnswer ? .failed(lastFailure) : .unreachable(lastFailure)
    }

    /// One question to one server over UDP; over TCP when the answer comes
    /// back truncated.
    static func exchange(name: String, type: UInt16, server: String, timeoutMilliseconds: Int,
                         port: UInt16 = 53) -> Result<Answer, Failure> {
        let id = UInt16.random(in: 0...UInt16.max)
        guard let question = DNSMessage.query(id: id, name: name, type: type) else {
            return .success(.nameError)
        }
        let udp = DNSSocket.exchange(question, server: server, port: port, stream: false, timeoutMilliseconds: timeoutMilliseconds)
        guard case .success(let reply) = udp else { return udp.map { _ in .nameError } }
        guard var answer = DNSMessage.parse(reply, id: id, type: type) else {
            return .failure(Failure(description: "an answer that is not DNS"))
        }
        if answer.truncated {
            let tcp = DNSSocket.exchange(question, server: server, port: port, stream: true, timeoutMilliseconds: timeoutMilliseconds)
            guard case .success(let whole) = tcp else { return tcp.map { _ in .nameError } }
            guard let parsed = DNSMessage.parse(whole, id: id, type: type) else {
                return .failure(Failure(description: "an answer over TCP that is not DNS"))
            }
            answer = parsed
        }
        return .success(answer.answer)
    }
}

/// The few bits of RFC 1035 a lookup of A and AAAA records needs.
enum DNSMessage {
    static let typeA: UInt16 = 1
    static let typeAAAA: UInt16 = 28

    /// A recursive query for `name`; nil for a name DNS cannot carry.
    static func query(id: UInt16, name: String, type: UInt16) -> [UInt8]? {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            let utf8 = Array(label.utf8)
            guard !utf8.isEmpty, utf8.count < 64 else { return nil }
            bytes.append(UInt8(utf8.count))
            bytes.append(contentsOf: utf8)
        }
        bytes.append(0)
        guard bytes.count <= 12 + 255 else { return nil }
        bytes += [UInt8(type >> 8), UInt8(type & 0xff), 0, 1]
        return bytes
    }

    struct Parsed {
        var truncated: Bool
        var answer: HostResolver.Answer
    }

    /// The addresses of type `type` in a reply to query `id` (any owner
    /// name: a CNAME chain's records come in the same answer).
    static func parse(_ reply: [UInt8], id: UInt16, type: UInt16) -> Parsed? {
        guard reply.count >= 12, UInt16(reply[0]) << 8 | UInt16(reply[1]) == id, reply[2] & 0x80 != 0 else { return nil }
        let truncated = reply[2] & 0x02 != 0
        let rcode = reply[3] & 0x0f
        let questions = Int(reply[4]) << 8 | Int(reply[5])
        let answers = Int(reply[6]) << 8 | Int(reply[7])
        switch rcode {
        case 0: break
        case 3: return Parsed(truncated: false, answer: .nameError)
        case 2: return Parsed(truncated: false, answer: .failed("server failure (SERVFAIL)"))
        case 5: return Parsed(truncated: false, answer: .failed("refused (REFUSED)"))
        default: return Parsed(truncated: false, answer: .failed("error code \(rcode)"))
        }
        var offset = 12
        for _ in 0..<questions {
            guard let next = skipName(reply, offset), next + 4 <= reply.count else { return nil }
            offset = next + 4
        }
        var addresses: [String] = []
        for _ in 0..<answers {
            guard let next = skipName(reply, offset), next + 10 <= reply.count else { break }
            let recordType = UInt16(reply[next]) << 8 | UInt16(reply[next + 1])
            let recordClass = UInt16(reply[next + 2]) << 8 | UInt16(reply[next + 3])
            let length = Int(reply[next + 8]) << 8 | Int(reply[next + 9])
            let data = next + 10
            guard data + length <= reply.count else { break }
            if recordClass == 1, recordType == type, let text = presentation(Array(reply[data..<data + length])) {
                addresses.append(text)
            }
            offset = data + length
        }
        if addresses.isEmpty && truncated { return Parsed(truncated: true, answer: .nameError) }
        return Parsed(truncated: false, answer: addresses.isEmpty ? .nameError : .addresses(addresses))
    }

    /// The offset after a (possibly compressed) name at `offset`.
    static func skipName(_ bytes: [UInt8], _ offset: Int) -> Int? {
        var offset = offset
        while offset < bytes.count {
            let length = bytes[offset]
            if length == 0 { return offset + 1 }
            if length & 0xc0 == 0xc0 { return offset + 2 <= bytes.count ? offset + 2 : nil }
            guard length & 0xc0 == 0 else { return nil }
            offset += 1 + Int(length)
        }
        return nil
    }

    /// An address record's bytes as text (4 bytes: IPv4, 16: IPv6).
    static func presentation(_ bytes: [UInt8]) -> String? {
        let family: Int32
        switch bytes.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return nil
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &text, socklen_t(text.count)) != nil }
        return ok ? String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }
}

/// A blocking socket exchange with one nameserver, with a deadline.
enum DNSSocket {
    static func exchange(_ message: [UInt8], server: String, port: UInt16, stream: Bool,
                         timeoutMilliseconds: Int) -> Result<[UInt8], HostResolver.Failure> {
        guard let (storage, length, family) = socketAddress(server, port) else {
            return .failure(.init(description: "not an address"))
        }
        let kind = Int32(stream ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue)
        let fd = socket(family, kind | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.init(description: "socket: \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutMilliseconds) * 1_000_000

        // A connected socket only hears from this server.
        let connected = withUnsafePointer(to: storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        guard connected == 0 else { return .failure(.init(description: String(cString: strerror(errno)))) }

        var outgoing = message
        if stream { outgoing = [UInt8(message.count >> 8), UInt8(message.count & 0xff)] + message }
        let sent = outgoing.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == outgoing.count else { return .failure(.init(description: "send: \(String(cString: strerror(errno)))")) }

        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return .failure(.init(description: "timed out")) }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32((deadline - now) / 1_000_000) + 1)
            if ready < 0 {
                if errno == EINTR { continue }
                return .failure(.init(description: "poll: \(String(cString: strerror(errno)))"))
            }
            if ready == 0 { return .failure(.init(description: "timed out")) }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                // ECONNREFUSED: nothing listens there (ICMP port unreachable).
                return .failure(.init(description: String(cString: strerror(errno))))
            }
            if !stream {
                let reply = Array(buffer[0..<count])
                // A stray datagram (an old query's answer): keep waiting.
                if reply.count >= 2, reply[0] == message[0], reply[1] == message[1] { return .success(reply) }
                continue
            }
            if count == 0 { return .failure(.init(description: "the server closed the TCP connection")) }
            received += buffer[0..<count]
            if received.count >= 2 {
                let expected = Int(received[0]) << 8 | Int(received[1])
                if received.count >= 2 + expected { return .success(Array(received[2..<2 + expected])) }
            }
        }
    }

    /// `address`:`port` as a socket address, its length and family.
    static func socketAddress(_ address: String, _ port: UInt16) -> (sockaddr_storage, socklen_t, Int32)? {
        func stored<T>(_ value: T) -> (sockaddr_storage, socklen_t) {
            var storage = sockaddr_storage()
            withUnsafeBytes(of: value) { raw in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) } }
            return (storage, socklen_t(MemoryLayout<T>.size))
        }
        var v4 = sockaddr_in(), v6 = sockaddr_in6()
        if inet_pton(AF_INET, address, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            let (storage, length) = stored(v4)
            return (storage, length, AF_INET)
        }
        if inet_pton(AF_INET6, address, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            let (storage, length) = stored(v6)
            return (storage, length, AF_INET6)
        }
        return nil
    }
}
