import Foundation
import Testing
import TestSupport

/// The issue's second scenario: a cargo project with target/ inside it, on
/// the mount. cargo's fingerprints record absolute paths and mtimes, so a
/// second container run that mounts the first run's snapshot at the same
/// stable path (with mtimes restored to the nanosecond) must find every
/// crate fresh and compile nothing.
@Suite("Scenario: cargo across container runs") struct CargoScenarioTests {
    @Test func secondRunAtTheStablePathCompilesNothing() throws {
        let cargo = try #require(CargoProject.cargoExecutable(), """
            no cargo on PATH, in ~/.cargo/bin or /root/.cargo/bin: install rustup or \
            Debian's cargo package (apt-get install cargo)
            """)
        let scenario = StablePathScenario("cargo")
        defer { scenario.finish() }
        let checkout = scenario.directory.sub("checkout")
        try CargoProject.write(to: checkout)
        let project = scenario.stablePath + "/app"
        let environment = CargoProject.environment(cargo: cargo, home: scenario.directory.sub("cargo-home"))
        // CARGO_TARGET_DIR is unset (scenarioEnvironment drops it): target/ is in the project, on the mount.
        func build(on run: ScenarioRun) -> Outcome {
            run.run([cargo, "build", "--offline"], environment: environment, directory: project, timeout: 600)
        }
        func program(on run: ScenarioRun) -> Outcome {
            run.run([project + "/target/debug/" + CargoProject.binary], environment: environment, timeout: 60)
        }

        // Run 1: the checkout on an empty mount, a cold build, commit.
        let run1 = try scenario.startRun("run1")
        let copy = run1.run(["cp", "-R", checkout, project])
        try #require(copy.succeeded, "\(copy.summary)")
        let first = build(on: run1)
        try #require(first.succeeded, "run 1: \(first.summary)")
        #expect(CargoProject.compilingLines(first.stderr).count == 1,
                "run 1 must compile the crate: \(first.stderr)")
        let firstOutput = program(on: run1)
        #expect(firstOutput.succeeded && firstOutput.stdout.hasPrefix("perimeter 4 the 3 tally "), "\(firstOutput.summary)")
        let commit = run1.commit(key: "cargo-run1")
        try #require(commit.succeeded, "\(commit.summary)\n\(scenario.daemonLog())")
        #expect(run1.end() == [])

        // Run 2: a new container, an empty upper dir over run 1's snapshot.
        let run2 = try scenario.startRun("run2", from: "cargo-run1")
        // Mounting copies nothing: the snapshot is read from the store on demand.
        #expect(run2.upperFileBytes() == 0, "bytes in the fresh upper dir right after the mount")
        let second = build(on: run2)
        try #require(second.succeeded, "run 2: \(second.summary)\n\(scenario.daemonLog())")
        #expect(CargoProject.compilingLines(second.stderr).isEmpty,
                "run 2 must find everything fresh, but cargo compiled: \(second.stderr)")
        #expect(second.stderr.contains("Finished"), "\(second.summary)")
        let secondOutput = program(on: run2)
        #expect(secondOutput.succeeded && secondOutput.stdout == firstOutput.stdout,
                "run 2's program: \(secondOutput.summary); run 1 printed \(firstOutput.stdout)")
        // target/ came out of the store, read through the mount.
        let (counters, stats) = run2.mountCounters { ($0["bytesServedFromStore"] ?? 0) > 0 }
        #expect((counters["bytesServedFromStore"] ?? 0) > 0, "nothing served from the store: \(stats.summary)")
        #expect(run2.end() == [])
    }
}
