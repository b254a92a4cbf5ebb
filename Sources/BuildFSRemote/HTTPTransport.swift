import AsyncHTTPClient
import BuildFSCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Blocking GET/HEAD/PUT against one remote store, for worker threads (never
/// call it on an event loop): credentials on every request, a deadline per
/// request, and retries with backoff for failures that may pass (connection
/// errors, timeouts, 5xx, 408, 429). Everything else fails at once with one
/// line that says what to do.
final class HTTPTransport: Sendable {
    /// One client per server address for the whole process, never shut
    /// down: it lives as long as the program and keeps its connections to
    /// the server alive. The host name is resolved by HostResolver (the
    /// static binary's getaddrinfo would follow the image's nsswitch.conf)
    /// and handed over as a DNS override, which keeps the name in the Host
    /// header and in TLS.
    private static let clients = Mutex<[[String: String]: HTTPClient]>([:])

    private static func client(dnsOverride: [String: String]) -> HTTPClient {
        clients.withLock { clients in
            if let client = clients[dnsOverride] { return client }
            let client = makeClient(dnsOverride: dnsOverride)
            clients[dnsOverride] = client
            return client
        }
    }

    /// Shuts the shared clients down (their connections and pools), when a
    /// command is done with every remote store. Not from an event loop.
    static func shutDownClients() {
        let all = clients.withLock { clients in
            defer { clients.removeAll() }
            return Array(clients.values)
        }
        for client in all { try? client.syncShutdown() }
    }

    private static func makeClient(dnsOverride: [String: String]) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.dnsOverride = dnsOverride
        // A refused or failed connect is retried by the client's pool
        // until this timeout: that is the retry for a server that is down.
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(60))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 32)
        configuration.decompression = .disabled
        // A redirect could carry our credentials to another host.
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    private let client: HTTPClient

    let endpoint: RemoteEndpoint
    private let headers: HTTPHeaders
    /// Set when the server's certificates come from a CA of its own.
    private let tls: TLSConfiguration?
    private let retryDelays: [Double]
    private let timeout: TimeAmount
    let counters = TransferCounters()

    init(endpoint: RemoteEndpoint, options: RemoteOptions) throws {
        var headers = HTTPHeaders()
        headers.add(name: "User-Agent", value: "buildfs")
        let hasCredentials = endpoint.user != nil || options.extraHeader != nil
        if hasCredentials && !endpoint.isTLS && !options.allowInsecure {
            throw BuildFSError.usage(
                "refusing to send credentials to \(endpoint.base) over plain http; use https://, or --allow-insecure on a network you trust")
        }
        if let user = endpoint.user {
            let pair = Data("\(user):\(endpoint.password ?? "")".utf8).base64EncodedString()
            headers.add(name: "Authorization", value: "Basic \(pair)")
        }
        if let extra = options.extraHeader { headers.replaceOrAdd(name: extra.name, value: extra.value) }
        if let caFile = options.caFile {
            guard endpoint.isTLS else {
                throw BuildFSError.usage("\(RemoteOptions.caFileVariable) is set, but \(endpoint.base) is not https")
            }
            guard let certificates = try? NIOSSLCertificate.fromPEMFile(caFile), !certificates.isEmpty else {
                throw BuildFSError.usage("\(RemoteOptions.caFileVariable)=\(caFile): not a readable PEM file of certificates")
            }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(certificates)
            self.tls = tls
        } else {
            tls = nil
        }
        do {
            let address = try HostResolver().address(of: endpoint.host)
            client = HTTPTransport.client(dnsOverride: address == endpoint.host ? [:] : [endpoint.host: address])
        } catch let failure as HostResolver.Failure {
            throw BuildFSError.remote(location: endpoint.base, reason: "\(failure); check the host name in --store")
        }
        self.endpoint = endpoint
        self.headers = headers
        retryDelays = options.retryDelays
        timeout = .milliseconds(Int64(options.requestTimeout * 1000))
    }

    /// The resource's bytes, or nil when the server does not have it.
    /// A body longer than `maxLength` is refused.
    func fetch(_ url: String, maxLength: Int) throws -> [UInt8]? {
        let start = ContinuousClock.now
        guard let response = try send(.GET, url, body: nil, maxBody: maxLength) else { return nil }
        let bytes = response.body.map { Array($0.readableBytesView) } ?? []
        counters.received(bytes.count)
        // A small answer took about one round trip.
        if bytes.count <= 64 << 10 { counters.answered(after: ContinuousClock.now - start) }
        return bytes
    }

    /// Bytes `range` of the resource, or nil when the server does not have
    /// it. A server that ignores Range sends the whole resource (at most
    /// `wholeLength` bytes); `whole` then says so.
    func fetch(_ url: String, range: Range<UInt64>, wholeLength: Int) throws -> (bytes: [UInt8], whole: Bool)? {
        let header = ("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")
        guard let response = try send(.GET, url, body: nil, maxBody: wholeLength, extraHeaders: [header]) else { return nil }
        let bytes = response.body.map { Array($0.readableBytesView) } ?? []
        counters.received(bytes.count)
        if response.status == .partialContent {
            guard bytes.count == range.count else {
                throw BuildFSError.remote(location: endpoint.base,
                                          reason: "the server sent \(bytes.count) bytes for a range of \(range.count) of \(url)")
            }
            return (bytes, false)
        }
        return (bytes, true)
    }

    func store(_ url: String, _ bytes: [UInt8]) throws {
        _ = try send(.PUT, url, body: bytes, maxBody: 1 << 20)
        counters.sent(bytes.count)
    }

    /// One request with retries. nil for 404.
    private func send(_ method: HTTPMethod, _ url: String, body: [UInt8]?, maxBody: Int,
                      extraHeaders: [(String, String)] = []) throws -> HTTPClient.Response? {
        var attempt = 0
        while true {
            let failure: String
            do {
                let response = try once(method, url, body: body, maxBody: maxBody, extraHeaders: extraHeaders)
                switch response.status.code {
                case 200...299: return response
                case 404: return nil
                case 401, 403:
                    throw BuildFSError.remote(
                        location: endpoint.base,
                        reason: "the server refused \(method.rawValue) with HTTP \(response.status.code) \(response.status.reasonPhrase); "
                            + (method == .PUT
                                ? "these credentials may not write (use --read-only for jobs that should only read), or give "
                                : "give ")
                            + "credentials as https://USER:PASSWORD@HOST/... or a header in \(RemoteOptions.headerVariable)='Authorization: Bearer TOKEN'")
                case 408, 429, 500...599:
                    failure = "HTTP \(response.status.code) \(response.status.reasonPhrase)"
                default:
                    throw BuildFSError.remote(
                        location: endpoint.base,
                        reason: "the server answered \(method.rawValue) \(url) with HTTP \(response.status.code) \(response.status.reasonPhrase); is this a Bazel remote cache (nginx with WebDAV PUT, bazel-remote)?")
                }
            } catch is ResponseAccumulator.ResponseTooBigError {
                throw BuildFSError.remote(location: endpoint.base, reason: "the server sent more than \(maxBody) bytes for \(url)")
            } catch let error as any ReportableError {
                throw error
            } catch let error as NIOSSLError {
                // Retrying does not make a certificate trusted.
                throw BuildFSError.remote(
                    location: endpoint.base,
                    reason: "TLS failed (\(HTTPTransport.describe(error))); for a server whose certificate comes from a private CA, "
                        + "set \(RemoteOptions.caFileVariable) to that CA's PEM file")
            } catch let error as NIOSSLExtraError where error == .failedToValidateHostname {
                throw BuildFSError.remote(
                    location: endpoint.base,
                    reason: "TLS failed: the server's certificate is not for \(endpoint.host); give --store the host name its certificate names")
            } catch where HTTPTransport.isConnectFailure(error) {
                // The pool kept trying to connect for the connect timeout already.
                throw BuildFSError.remote(
                    location: endpoint.base,
                    reason: "cannot connect (\(HTTPTransport.describe(error))); check that the server is up and --store is right")
            } catch {
                failure = HTTPTransport.describe(error)
            }
            guard attempt < retryDelays.count else {
                throw BuildFSError.remote(
                    location: endpoint.base,
                    reason: "\(method.rawValue) failed after \(attempt + 1) attempts (\(failure)); check that the server is up and --store is right")
            }
            counters.retried()
            Thread.sleep(forTimeInterval: retryDelays[attempt] * Double.random(in: 0.75...1.25))
            attempt += 1
        }
    }

    private func once(_ method: HTTPMethod, _ url: String, body: [UInt8]?, maxBody: Int,
                      extraHeaders: [(String, String)]) throws -> HTTPClient.Response {
        var requestHeaders = headers
        for (name, value) in extraHeaders { requestHeaders.add(name: name, value: value) }
        if body != nil { requestHeaders.add(name: "Content-Type", value: "application/octet-stream") }
        let request = try HTTPClient.Request(url: url, method: method, headers: requestHeaders,
                                             body: body.map { .bytes($0) }, tlsConfiguration: tls)
        counters.requested(method)
        let delegate = ResponseAccumulator(request: request, maxBodySize: maxBody)
        return try client.execute(request: request, delegate: delegate, deadline: .now() + timeout)
            .futureResult.wait()
    }

    /// Could not connect at all (refused, unreachable, connect timeout).
    static func isConnectFailure(_ error: any Error) -> Bool {
        if error is NIOConnectionError { return true }
        if let io = error as? IOError { return [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH].contains(io.errnoCode) }
        if let http = error as? HTTPClientError { return http == .connectTimeout }
        return false
    }

    /// A few words for a transport failure, not a dump of NIO's types.
    static func describe(_ error: any Error) -> String {
        if let connection = error as? NIOConnectionError {
            if let io = connection.connectionErrors.first?.error as? IOError {
                return "cannot connect to \(connection.host):\(connection.port): \(String(cString: strerror(io.errnoCode)))"
            }
            if connection.dnsAError != nil || connection.dnsAAAAError != nil {
                return "cannot resolve \(connection.host)"
            }
            return "cannot connect to \(connection.host):\(connection.port)"
        }
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if case let .handshakeFailed(reason)? = error as? NIOSSLError {
            // BoringSSL's text holds the useful words as a code such as
            // CERTIFICATE_VERIFY_FAILED, among file names and numbers.
            let text = "\(reason)"
            return "handshake failed: " + (text.range(of: "[A-Z]+(_[A-Z]+)+", options: .regularExpression).map { String(text[$0]) } ?? text)
        }
        if let http = error as? HTTPClientError {
            switch http {
            case .connectTimeout: return "connection timed out"
            case .readTimeout, .deadlineExceeded: return "request timed out"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: return "\(http)"
            }
        }
        return "\(error)"
    }
}

/// What a remote store sent and received, for summaries and stats.
final class TransferCounters: Sendable {
    let gets = Atomic<Int>(0), puts = Atomic<Int>(0), retries = Atomic<Int>(0)
    let bytesSent = Atomic<Int>(0), bytesReceived = Atomic<Int>(0)
    /// The quickest answer to a small GET, in microseconds: the round trip
    /// to the server, about (Int.max until one came).
    let fastestAnswer = Atomic<Int>(.max)

    func answered(after duration: Duration) {
        let micros = Int(duration.components.seconds) * 1_000_000 + Int(duration.components.attoseconds / 1_000_000_000_000)
        var current = fastestAnswer.load(ordering: .relaxed)
        while micros < current {
            let (exchanged, original) = fastestAnswer.compareExchange(expected: current, desired: micros, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
    }

    func requested(_ method: HTTPMethod) {
        switch method {
        case .GET: gets.add(1, ordering: .relaxed)
        case .PUT: puts.add(1, ordering: .relaxed)
        default: break
        }
    }

    func sent(_ count: Int) { bytesSent.add(count, ordering: .relaxed) }
    func received(_ count: Int) { bytesReceived.add(count, ordering: .relaxed) }
    func retried() { retries.add(1, ordering: .relaxed) }
}
