@testable import BuildFSRemote
import Foundation
import Glibc
import Testing
import TestSupport

/// HostResolver: the store's host name found from /etc/hosts and DNS over
/// UDP/TCP by buildfs itself, never through the C library's NSS (which a
/// static binary would load from the image).
@Suite struct HostResolverTests {
    let dir = TemporaryDirectory("buildfs-resolver")

    func resolver(hosts: String = "", resolvConf: String) throws -> HostResolver {
        try hosts.write(toFile: dir.sub("hosts"), atomically: true, encoding: .utf8)
        try resolvConf.write(toFile: dir.sub("resolv.conf"), atomically: true, encoding: .utf8)
        return HostResolver(hostsFile: dir.sub("hosts"), resolvConf: dir.sub("resolv.conf"))
    }

    @Test func addressLiteralsNeedNoLookup() throws {
        let none = HostResolver(hostsFile: dir.sub("absent"), resolvConf: dir.sub("absent"))
        #expect(try none.address(of: "10.1.2.3") == "10.1.2.3")
        #expect(try none.address(of: "fd00::1") == "fd00::1")
        #expect(HostResolver.isAddress("::1"))
        #expect(!HostResolver.isAddress("cache.example"))
        #expect(!HostResolver.isAddress("10.1.2"))
    }

    @Test func hostsFileWithCommentsAliasesAndCase() {
        let text = """
            # comment line
            127.0.0.1\tlocalhost
            ::1 localhost ip6-localhost
            10.0.0.7   build-cache   Cache.Example  # the CI cache
            not-an-address cache.example
            fd00::7 cache.example
            """
        #expect(HostResolver.parseHosts(text, name: "cache.example") == ["10.0.0.7", "fd00::7"])
        #expect(HostResolver.parseHosts(text, name: "BUILD-CACHE") == ["10.0.0.7"])
        #expect(HostResolver.parseHosts(text, name: "localhost") == ["127.0.0.1", "::1"])
        #expect(HostResolver.parseHosts(text, name: "the") == [])
        #expect(HostResolver.preferred(["fd00::7", "10.0.0.7"]) == "10.0.0.7")
        #expect(HostResolver.preferred(["fd00::7"]) == "fd00::7")
    }

    @Test func resolvConfAsTheCLibraryReadsIt() {
        let parsed = HostResolver.parseResolvConf("""
            # generated
            domain first.example
            nameserver 10.0.0.1
            nameserver fd00::53 ; comment
            nameserver not-an-address
            nameserver 10.0.0.2
            nameserver 10.0.0.3
            search corp.example. ci.example
            options ndots:2 timeout:1 attempts:3 rotate
            """)
        #expect(parsed.nameservers == ["10.0.0.1", "fd00::53", "10.0.0.2"])
        #expect(parsed.search == ["corp.example", "ci.example"])
        #expect(parsed.ndots == 2 && parsed.timeoutSeconds == 1 && parsed.attempts == 3)
        #expect(HostResolver.parseResolvConf("").nameservers == ["127.0.0.1"])
    }

    @Test func searchDomainsComeFirstForShortNames() {
        var conf = HostResolver.ResolvConf()
        conf.search = ["corp.example"]
        #expect(conf.candidates(for: "cache") == ["cache.corp.example", "cache"])
        #expect(conf.candidates(for: "cache.example") == ["cache.example", "cache.example.corp.example"])
        #expect(conf.candidates(for: "cache.example.") == ["cache.example"])
        conf.ndots = 5  // Kubernetes
        #expect(conf.candidates(for: "cache.example") == ["cache.example.corp.example", "cache.example"])
    }

    @Test func theHostsFileWinsOverDNS() throws {
        let dns = try DNSResponder(records: ["cache.example": ["10.9.9.9"]])
        let resolver = try resolver(hosts: "10.0.0.7 cache.example\n", resolvConf: "nameserver \(dns.address)\n")
        #expect(try resolver.address(of: "cache.example") == "10.0.0.7")
        #expect(dns.questions.isEmpty)
    }

    @Test func localhostResolvesWithoutAHostsFile() throws {
        let resolver = try resolver(resolvConf: "nameserver 127.0.0.1\n")
        #expect(try resolver.address(of: "localhost") == "127.0.0.1")
    }

    @Test func dnsOverUDPWithSearchDomainsAndIPv6Only() throws {
        let dns = try DNSResponder(records: [
            "cache.corp.example": ["10.1.2.3", "10.1.2.4"],
            "v6only.example": ["fd00::42"],
        ])
        let resolver = try resolver(resolvConf: "search corp.example\nnameserver \(dns.address)\noptions timeout:2\n")
        #expect(try resolver.address(of: "cache") == "10.1.2.3")
        #expect(dns.questions == ["A cache.corp.example"])
        #expect(try resolver.address(of: "v6only.example.") == "fd00::42")
        #expect(dns.questions.suffix(2) == ["A v6only.example", "AAAA v6only.example"])
    }

    @Test func aTruncatedAnswerIsAskedAgainOverTCP() throws {
        let dns = try DNSResponder(records: ["big.example": ["10.5.5.5"]], truncated: ["big.example"])
        let resolver = try resolver(resolvConf: "nameserver \(dns.address)\n")
        #expect(try resolver.address(of: "big.example") == "10.5.5.5")
        #expect(dns.questions == ["A big.example", "A big.example"], "once over UDP, once over TCP")
    }

    @Test func aDeadNameserverIsSkipped() throws {
        let dns = try DNSResponder(records: ["cache.example": ["10.1.1.1"]])
        // Nothing listens on port 53 of 127.53.0.2: refused at once.
        let resolver = try resolver(resolvConf: "nameserver 127.53.0.2\nnameserver \(dns.address)\noptions timeout:1\n")
        #expect(try resolver.address(of: "cache.example") == "10.1.1.1")
    }

    @Test func anUnknownNameIsOneClearFailure() throws {
        let dns = try DNSResponder(records: [:])
        let resolver = try resolver(resolvConf: "nameserver \(dns.address)\n")
        #expect {
            try resolver.address(of: "nowhere.example")
        } throws: { error in
            let text = "\(error)"
            return text.contains("cannot resolve nowhere.example") && text.contains(dns.address) && text.contains("no such host")
        }
    }

    @Test func aSilentNameserverTimesOut() throws {
        // A UDP socket that never answers.
        let silent = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(silent) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(53).bigEndian
        inet_pton(AF_INET, "127.53.0.1", &address.sin_addr)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(silent, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0)
        // With a search list: the search stops at the first timeout.
        let resolver = try resolver(resolvConf: "nameserver 127.53.0.1\nsearch a.example b.example\noptions timeout:1 attempts:1\n")
        let start = Date()
        #expect {
            try resolver.address(of: "cache.example")
        } throws: { "\($0)".contains("timed out") }
        #expect(Date().timeIntervalSince(start) < 2.5, "one timeout, not one per name and record type")
    }

    @Test func dnsMessagesRoundTrip() throws {
        let query = try #require(DNSMessage.query(id: 0x1234, name: "a.example", type: DNSMessage.typeA))
        #expect(query.count == 12 + 11 + 4)
        #expect(DNSMessage.query(id: 1, name: "a..example", type: 1) == nil)
        #expect(DNSMessage.query(id: 1, name: String(repeating: "x", count: 64), type: 1) == nil)
        // A reply with a CNAME then an A record, names compressed.
        var reply = query
        reply[2] = 0x81; reply[3] = 0x80; reply[7] = 2
        reply += [0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, 0x62, 0xc0, 14]  // CNAME b.example
        reply += [0xc0, 39, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]
        let parsed = try #require(DNSMessage.parse(reply, id: 0x1234, type: DNSMessage.typeA))
        #expect(parsed.answer == .addresses(["192.0.2.1"]))
        #expect(DNSMessage.parse(reply, id: 0x9999, type: DNSMessage.typeA) == nil, "another query's answer")
        reply[3] = 0x83
        #expect(DNSMessage.parse(reply, id: 0x1234, type: DNSMessage.typeA)?.answer == .nameError)
        #expect(DNSMessage.parse(Array(reply.prefix(5)), id: 0x1234, type: DNSMessage.typeA) == nil)
    }
}
