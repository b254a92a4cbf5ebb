import Foundation
import Glibc
import Testing

/// Permissions as another user sees them: with `-o allow_other`, user nobody
/// must get exactly what the modes say (default_permissions: the kernel
/// checks the modes the mount reports), the same as on a plain directory.
/// Without allow_other, other users get nothing at all (FUSE's default).
@Suite("POSIX: other users", .enabled(if: getuid() == 0, "needs root to act as nobody"))
struct OtherUsersTests {
    /// What nobody tries, in order, from `sh` in the root of the tree; each
    /// line is `label: ok` or `label: denied (<strerror>)`.
    static let nobodyScript = #"""
        cd "$1" || exit 9
        try() { label=$1; shift; if out=$("$@" 2>&1); then echo "$label: ok $out"; else echo "$label: denied ($(printf '%s' "$out" | head -n1 | sed 's/.*: //'))"; fi; }
        for f in f600 f644 f755 f666 f000 fnobody600; do
            try "read $f" cat $f
            try "write $f" sh -c "echo more >> $f"
        done
        try "exec f755" ./f755
        try "exec f644" ./f644
        try "truncate f644" truncate -s 0 f644
        try "truncate f666" truncate -s 1 f666
        try "touch now f666" touch f666
        try "touch -d f666" touch -d @1000000000 f666
        try "chmod f644" chmod 600 f644
        for d in d700 d755 d711 d777 d1777; do
            try "list $d" ls $d
            try "traverse $d" cat $d/inner
            try "create in $d" touch $d/by-nobody
        done
        try "owner of created" stat -c %u:%g:%a d777/by-nobody
        try "chmod own file" chmod 600 d777/by-nobody
        try "delete root file in d777" rm -f d777/inner
        try "delete root file in sticky d1777" rm -f d1777/inner
        try "delete own file in sticky d1777" rm -f d1777/by-nobody
        try "mkdir in d755" mkdir d755/sub
        try "mkdir in d777" mkdir d777/sub
        try "rename into d755" mv d777/sub d755/sub
        """#

    /// Runs the script as uid/gid 65534 with no supplementary groups.
    static func actAsNobody(in root: String) -> [String] {
        let result = Run.command(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                  "/bin/sh", "-c", nobodyScript, "sh", root], timeout: 60)
        return result.stdout.split(separator: "\n").map(String.init) + (result.status == 0 ? [] : ["exit: \(result.summary)"])
    }

    @Test func nobodyGetsWhatTheModesSayWithAllowOther() throws {
        let fixture = try MountFixture(options: ["allow_other"])
        chmod(fixture.directory.path, 0o755)  // mkdtemp made it 0700: let nobody reach both roots
        let lines = expectSameOnMountAndPlain(fixture, expecting: [
            "read f600: denied (Permission denied)", "read f644: ok x", "write f644: denied (Permission denied)",
            "read f000: denied (Permission denied)", "read fnobody600: ok x", "write fnobody600: ok ",
            "write f666: ok ", "exec f755: ok ran", "exec f644: denied (Permission denied)",
            "touch now f666: ok ", "touch -d f666: denied (Operation not permitted)", "chmod f644: denied (Operation not permitted)",
            "list d700: denied (Permission denied)", "traverse d700: denied (Permission denied)",
            "list d711: denied (Permission denied)", "traverse d711: ok x", "create in d755: denied (Permission denied)",
            "create in d777: ok ", "owner of created: ok 65534:65534:644",
            "delete root file in d777: ok ", "delete root file in sticky d1777: denied (Operation not permitted)",
            "delete own file in sticky d1777: ok ", "rename into d755: denied (Permission denied)",
        ]) { p in
            p.check("chmod root", chmod(p.root, 0o755))
            for (name, mode) in [("f600", 0o600), ("f644", 0o644), ("f666", 0o666), ("f000", 0o000), ("fnobody600", 0o600)] as [(String, mode_t)] {
                p.create(name, "x", mode: mode)
                p.check("chmod \(name)", chmod(p.path(name), mode))
            }
            p.create("f755", "#!/bin/sh\necho ran\n", mode: 0o755)
            p.check("chown fnobody600", chown(p.path("fnobody600"), 65534, 65534))
            for (name, mode) in [("d700", 0o700), ("d755", 0o755), ("d711", 0o711), ("d777", 0o777), ("d1777", 0o1777)] as [(String, mode_t)] {
                p.check("mkdir \(name)", mkdir(p.path(name), mode))
                p.check("chmod \(name)", chmod(p.path(name), mode))
                p.create(name + "/inner", "x", mode: 0o644)
            }
            for line in OtherUsersTests.actAsNobody(in: p.root) { p.note(line) }
            // What nobody left behind, seen by root.
            p.stat("d777/by-nobody")
            p.list("d777")
            p.list("d1777")
        }
        #expect(lines.count > 40)
    }

    /// POSIX ACLs set through the mount: an entry lets nobody read a 0600
    /// file, removing it shuts nobody out again (the kernel's cached ACL
    /// must be dropped), a directory's default ACL is inherited and wins
    /// over the creator's umask, and without one the umask applies.
    static let aclScript = #"""
        cd "$1" || exit 9
        nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- sh -c "$1" 2>&1 | sed 's/.*: //'; }
        umask 022
        echo x > f; chmod 600 f
        echo "before: $(nobody 'cat f')"
        setfacl -m u:nobody:r f && echo "granted: $(nobody 'cat f')"
        echo "acl: $(getfacl -p --omit-header f | tr '\n' ' ')"
        echo "ls: $(ls -l f | cut -c1-11)"
        setfacl -x u:nobody f && echo "revoked: $(nobody 'cat f')"
        mkdir d; setfacl -m u:nobody:rwx d; setfacl -d -m u:nobody:rw d
        nobody 'umask 077; touch d/new; mkdir d/sub'
        echo "inherited: $(stat -c '%n %a' d/new d/sub | tr '\n' ' ')"
        echo "inherited acl: $(getfacl -p --omit-header d/new | tr '\n' ' ')"
        touch plain; mkdir plaind
        echo "umask applies: $(stat -c '%n %a' plain plaind | tr '\n' ' ')"
        """#

    @Test func aclsGrantRevokeAndInheritAsOnAPlainDirectory() throws {
        let fixture = try MountFixture(options: ["allow_other"])
        chmod(fixture.directory.path, 0o755)
        expectSameOnMountAndPlain(fixture, expecting: [
            "before: Permission denied", "granted: x", "ls: -rw-r-----+", "revoked: Permission denied",
            "inherited: d/new 664 d/sub 775 ", "umask applies: plain 644 plaind 755 ",
        ]) { p in OtherUsersTests.runAsRoot(OtherUsersTests.aclScript, in: p) }
    }

    /// Runs `script` with bash as root in the probe's root (made 0755 for
    /// nobody), noting each line it prints and its exit status.
    static func runAsRoot(_ script: String, in p: Probe) {
        p.check("chmod root", chmod(p.root, 0o755))
        let result = Run.command(["/bin/bash", "-c", script, "bash", p.root], timeout: 60)
        for line in result.stdout.split(separator: "\n") { p.note(String(line)) }
        p.note("exit \(result.status)")
    }

    /// Setuid and setgid bits after writes and truncates: cleared when an
    /// unprivileged owner writes or truncates (setgid only with group
    /// execute), kept when root does (CAP_FSETID), and seen at once by
    /// stat through the mount. The daemon clears them itself (it writes
    /// as root) when the kernel asks (FUSE_HANDLE_KILLPRIV_V2).
    static let setIDScript = #"""
        cd "$1" || exit 9
        nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- sh -c "$1" 2>&1 | sed 's/.*: //'; }
        for f in su sg sgx both rootw; do echo x > $f; chown 65534:65534 $f; done
        chmod 4755 su; chmod 2745 sg; chmod 2775 sgx; chmod 6775 both; chmod 4777 rootw
        stat -c 'before %n %a' su sg sgx both rootw
        nobody 'echo y >> su; echo y >> sg; echo y >> sgx'
        nobody 'truncate -s 1 both'
        echo root >> rootw
        stat -c 'after %n %a %s' su sg sgx both rootw
        chmod 4777 rootw; nobody 'echo y >> rootw'
        stat -c 'after nobody %n %a' rootw
        """#

    @Test func setIDBitsAreClearedByUnprivilegedWritesAsOnAPlainDirectory() throws {
        let fixture = try MountFixture(options: ["allow_other"])
        chmod(fixture.directory.path, 0o755)
        expectSameOnMountAndPlain(fixture, expecting: [
            "before su 4755", "after su 755 4", "after sg 2745 4", "after sgx 775 4", "after both 775 1",
            "after rootw 4777 7", "after nobody rootw 777",
        ]) { p in OtherUsersTests.runAsRoot(OtherUsersTests.setIDScript, in: p) }
    }

    @Test(.enabled(if: MountKind.current.isFUSE, "FUSE's rule"))
    func otherUsersAreShutOutWithoutAllowOther() throws {
        let fixture = try MountFixture()
        chmod(fixture.directory.path, 0o755)
        let probe = Probe(root: fixture.mnt)
        probe.create("f", "x", mode: 0o644)
        let mount = Run.command(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                 "cat", fixture.mnt + "/f"], timeout: 30)
        #expect(mount.status != 0 && mount.stderr.contains("Permission denied"), "nobody read the mount: \(mount.summary)")
        // Root, the user who mounted, still can.
        #expect(probe.contents("f") == Array("x".utf8), "\(probe.lines)")
    }
}
