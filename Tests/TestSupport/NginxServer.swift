import Foundation
import Glibc

/// A real nginx with the WebDAV module serving a Bazel-style HTTP cache on
/// 127.0.0.1, configured the way Bazel's remote-caching docs show, in a
/// directory of its own; stopped (and its files removed) when dropped.
/// `restart` keeps the data, as a server coming back after a crash would.
public final class NginxServer: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let port: Int
    /// With a user, requests need HTTP basic auth (`user:password`).
    public let credentials: (user: String, password: String)?
    private var child: Child?

    /// The store URL buildfs is given (no credentials in it).
    public var url: String { "\(tls ? "https" : "http")://127.0.0.1:\(port)/cache" }
    /// Where the server keeps cache entries: data/cache/{cas,ac}/HASH.
    public var dataDirectory: String { directory.sub("data/cache") }

    /// Requests per second the server answers (nil: no limit); excess
    /// requests wait in a queue, so transfers take a predictable while.
    public let requestsPerSecond: Int?

    /// Serves https with a certificate from a CA of its own (`caFile`).
    public let tls: Bool
    /// PEM of the CA that signed the server's certificate (with `tls`).
    public var caFile: String { directory.sub("ca.pem") }

    /// With `tls`: the certificate names only this host (DNS), not 127.0.0.1.
    public let serverName: String?
    /// False: Range headers are ignored and whole files sent (as by a cache
    /// server without Range support).
    public let servesRanges: Bool
    /// The largest upload taken, in bytes (nginx answers 413 above it).
    public let maxUploadBytes: Int

    public init(credentials: (user: String, password: String)? = nil, requestsPerSecond: Int? = nil,
                tls: Bool = false, serverName: String? = nil, servesRanges: Bool = true,
                maxUploadBytes: Int = 1 << 30) throws {
        directory = TemporaryDirectory("buildfs-nginx")
        self.servesRanges = servesRanges
        self.maxUploadBytes = maxUploadBytes
        self.credentials = credentials
        self.requestsPerSecond = requestsPerSecond
        self.tls = tls
        self.serverName = serverName
        port = NginxServer.freePort()
        if tls { try makeCertificates() }
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory.sub("temp"), withIntermediateDirectories: true)
        if let credentials {
            // nginx reads {PLAIN} passwords: no htpasswd tool needed.
            try "\(credentials.user):{PLAIN}\(credentials.password)\n".write(
                toFile: directory.sub("htpasswd"), atomically: true, encoding: .utf8)
        }
        try configuration.write(toFile: directory.sub("nginx.conf"), atomically: true, encoding: .utf8)
        try start()
    }

    private var configuration: String {
        let temp = directory.sub("temp")
        let auth = credentials == nil ? "" : """
                  auth_basic "buildfs test cache";
                  auth_basic_user_file \(directory.sub("htpasswd"));
            """
        let limitZone = requestsPerSecond.map { "limit_req_zone $binary_remote_addr zone=slow:1m rate=\($0)r/s;" } ?? ""
        let limit = requestsPerSecond == nil ? "" : "      limit_req zone=slow burst=100000;"
        return """
            daemon off;
            master_process off;
            user root;
            worker_processes 1;
            pid \(directory.sub("nginx.pid"));
            error_log \(directory.sub("error.log")) info;
            events { worker_connections 512; }
            http {
              log_format buildfs '$remote_addr [$time_local] "$request" $status $body_bytes_sent "$http_range"';
              access_log \(directory.sub("access.log")) buildfs;
              client_body_temp_path \(temp)/body;
              proxy_temp_path \(temp)/proxy;
              fastcgi_temp_path \(temp)/fastcgi;
              uwsgi_temp_path \(temp)/uwsgi;
              scgi_temp_path \(temp)/scgi;
              \(limitZone)
              server {
                listen 127.0.0.1:\(port)\(tls ? " ssl" : "");
                \(tls ? "ssl_certificate \(directory.sub("server.pem")); ssl_certificate_key \(directory.sub("server.key"));" : "")
                location /cache/ {
                  root \(directory.sub("data"));
                  dav_methods PUT;
                  create_full_put_path on;
                  client_max_body_size \(maxUploadBytes);
                  allow all;
                  \(servesRanges ? "" : "max_ranges 0;")
            \(limit)
            \(auth)
                }
              }
            }

            """
    }

    /// A CA, and a certificate for 127.0.0.1 (or `serverName`) signed by it, with openssl.
    private func makeCertificates() throws {
        let script = """
            set -e
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=buildfs test CA'
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=\(serverName ?? "127.0.0.1")'
            printf 'subjectAltName=\(serverName.map { "DNS:\($0)" } ?? "IP:127.0.0.1")\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext
            """
        let result = try Shell.run(["/bin/bash", "-c", script], directory: directory.path)
        guard result.succeeded else { throw SpawnFailure(description: "openssl: \(result.stderr.suffix(500))") }
    }

    /// Starts nginx and waits until it accepts connections.
    public func start() throws {
        let log = open(directory.sub("stderr.log"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        defer { close(log) }
        child = try Child(["nginx", "-p", directory.path, "-c", directory.sub("nginx.conf")], stdout: log, stderr: log)
        guard waitUntil(seconds: 10, { NginxServer.accepts(port) || child?.isRunning == false }), child?.isRunning == true else {
            let errors = (try? String(contentsOfFile: directory.sub("error.log"), encoding: .utf8)) ?? ""
            throw SpawnFailure(description: "nginx did not start: \(errors.suffix(1000))")
        }
    }

    /// Kills nginx at once (SIGKILL), as a crash or a pulled cable would.
    public func kill() {
        guard let child else { return }
        Glibc.kill(child.pid, SIGKILL)
        child.wait()
        self.child = nil
    }

    public func restart() throws {
        kill()
        try start()
    }

    /// The access log's request lines, e.g. `PUT /cache/cas/...`.
    public func requests() -> [String] {
        let log = (try? String(contentsOfFile: directory.sub("access.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n").compactMap { line in
            guard let open = line.firstIndex(of: "\""), let close = line[line.index(after: open)...].firstIndex(of: "\"") else {
                return nil
            }
            return line[line.index(after: open)..<close].split(separator: " ").prefix(2).joined(separator: " ")
        }
    }

    /// The GETs of packs, in the order they were answered: the pack file
    /// on the server and the byte range asked for (nil: the whole file).
    public func packReads() -> [(file: String, range: ClosedRange<Int>?)] {
        let log = (try? String(contentsOfFile: directory.sub("access.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\"", omittingEmptySubsequences: false)
            guard fields.count >= 4, fields[1].hasPrefix("GET /cache/cas/") else { return nil }
            let path = fields[1].split(separator: " ")[1]
            let file = dataDirectory + "/cas/" + path.split(separator: "/").last!
            let range = fields[3].hasPrefix("bytes=") ? fields[3].dropFirst(6).split(separator: "-").compactMap { Int($0) } : []
            return (file, range.count == 2 ? range[0]...range[1] : nil)
        }
    }

    /// How many requests of `method` went to paths under `/cache/<space>/`
    /// (`cas` or `ac`) with a status in 200...299.
    public func count(_ method: String, _ space: String) -> Int {
        let log = (try? String(contentsOfFile: directory.sub("access.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { line in
            guard line.contains("\"\(method) /cache/\(space)/") else { return false }
            // combined format: ... "REQUEST" STATUS BYTES ...
            let afterRequest = line.split(separator: "\"")[safe: 2] ?? ""
            return afterRequest.trimmingCharacters(in: .whitespaces).hasPrefix("2")
        }.count
    }

    /// Object files the server holds.
    public func objectFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dataDirectory + "/cas")) ?? []).map { dataDirectory + "/cas/" + $0 }
    }

    deinit { kill() }

    private static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length)
                return getsockname(fd, pointer, &length)
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
