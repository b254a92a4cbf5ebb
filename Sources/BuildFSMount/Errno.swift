import Glibc

/// A failed system call, carried to the FUSE reply as its errno.
struct Errno: Error {
    let code: Int32

    static var current: Errno { Errno(code: errno) }
}

/// Throws the current errno when a call returned -1.
@discardableResult
@inline(__always)
func check(_ result: Int32) throws -> Int32 {
    if result == -1 { throw Errno.current }
    return result
}

@discardableResult
@inline(__always)
func check(_ result: Int) throws -> Int {
    if result == -1 { throw Errno.current }
    return result
}
