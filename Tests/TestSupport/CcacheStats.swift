import Foundation

/// `ccache --print-stats` as numbers (ccache 4: one `name<TAB>value` a line).
public struct CcacheStats: CustomStringConvertible {
    public var values: [String: Int]

    public init(_ output: String) {
        values = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            if fields.count == 2, let value = Int(fields[1]) { values[String(fields[0])] = value }
        }
    }

    public var hits: Int { (values["direct_cache_hit"] ?? 0) + (values["preprocessed_cache_hit"] ?? 0) }
    public var misses: Int { values["cache_miss"] ?? 0 }
    public var compilations: Int { hits + misses }
    public var hitRate: Double { compilations == 0 ? 0 : Double(hits) / Double(compilations) }

    public var description: String {
        "\(hits) hits, \(misses) misses; nonzero: "
            + values.filter { $0.value != 0 }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                .joined(separator: " ")
    }
}

