import Foundation

/// A small cargo project, std only (builds offline): a library with a few
/// modules and a binary that uses it, so a build compiles two crates and
/// leaves a real target/ directory (fingerprints, dep-info, incremental
/// state) behind.
enum CargoProject {
    static let package = "scenario-app"
    static let binary = "scenario-app"

    static func write(to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
        let files: [String: String] = [
            "Cargo.toml": """
                [package]
                name = "\(package)"
                version = "0.1.0"
                edition = "2021"

                [dependencies]

                """,
            "src/lib.rs": """
                pub mod geometry;
                pub mod text;
                pub mod tally;

                """,
            "src/geometry.rs": """
                #[derive(Debug, Clone, Copy, PartialEq)]
                pub struct Point { pub x: f64, pub y: f64 }

                pub fn perimeter(points: &[Point]) -> f64 {
                    points.iter().zip(points.iter().cycle().skip(1))
                        .map(|(a, b)| ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt())
                        .sum()
                }

                """,
            "src/text.rs": """
                use std::collections::BTreeMap;

                pub fn word_counts(text: &str) -> BTreeMap<String, usize> {
                    let mut counts = BTreeMap::new();
                    for word in text.split_whitespace() {
                        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
                    }
                    counts
                }

                """,
            "src/tally.rs": """
                pub trait Tally { fn tally(&self) -> u64; }

                impl Tally for [u64] {
                    fn tally(&self) -> u64 { self.iter().fold(17, |h, x| h.wrapping_mul(31).wrapping_add(*x)) }
                }

                """,
            "src/main.rs": """
                use scenario_app::{geometry::{perimeter, Point}, tally::Tally, text::word_counts};

                fn main() {
                    let square = [Point { x: 0.0, y: 0.0 }, Point { x: 1.0, y: 0.0 },
                                  Point { x: 1.0, y: 1.0 }, Point { x: 0.0, y: 1.0 }];
                    let counts = word_counts("the stable path keeps the cache warm the whole way");
                    let numbers: Vec<u64> = (1..=100).collect();
                    println!("perimeter {} the {} tally {}", perimeter(&square), counts["the"], numbers.tally());
                }

                """,
        ]
        for (name, text) in files {
            try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        }
    }

    /// The cargo to build with: on PATH, else where rustup puts it; nil when
    /// there is none (CI installs Debian's `cargo` package).
    static func cargoExecutable() -> String? {
        let environment = ProcessInfo.processInfo.environment
        var candidates = (environment["PATH"] ?? "").split(separator: ":").map { "\($0)/cargo" }
        candidates += [environment["HOME"].map { "\($0)/.cargo/bin/cargo" }, "/root/.cargo/bin/cargo"].compactMap { $0 }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The environment to build with: cargo's directory first on PATH (a
    /// rustup proxy needs rustc beside it), and a CARGO_HOME of the test's
    /// own, so nothing global is read or written.
    static func environment(cargo: String, home: String) -> [String: String] {
        let cargoDirectory = (cargo as NSString).deletingLastPathComponent
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return scenarioEnvironment(["CARGO_HOME": home, "PATH": cargoDirectory + ":" + path])
    }

    /// The lines of cargo's stderr that say it compiled a crate.
    static func compilingLines(_ stderr: String) -> [String] {
        stderr.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("Compiling ") }
    }
}
