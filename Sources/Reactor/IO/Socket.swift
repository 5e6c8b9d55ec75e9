import CShims
import Glibc

/// Thin wrappers over socket system calls; every socket is non-blocking and close-on-exec.
public enum Socket {
    public static func makeTCP(family: Int32) throws(SocketError) -> Int32 {
        let fd = shim_socket_tcp(family)
        guard fd >= 0 else { throw SocketError(operation: "socket") }
        return fd
    }

    public static func localAddress(fd: Int32) -> SocketAddress? {
        var s = sockaddr_storage()
        var len: socklen_t = 0
        guard shim_local_address(fd, &s, &len) == 0 else { return nil }
        return SocketAddress(storage: s, length: len)
    }

    public static func peerAddress(fd: Int32) -> SocketAddress? {
        var s = sockaddr_storage()
        var len: socklen_t = 0
        guard shim_peer_address(fd, &s, &len) == 0 else { return nil }
        return SocketAddress(storage: s, length: len)
    }

    /// Raises the soft open-file limit to the hard limit (done once at start).
    @discardableResult
    public static func raiseOpenFileLimit() -> Int { Int(shim_raise_nofile_limit()) }
    public static var openFileLimit: Int { Int(shim_nofile_limit()) }

    /// Number of open descriptors of this process (from /proc/self/fd).
    public static func openDescriptorCount() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var n = 0
        while readdir(dir) != nil { n += 1 }
        return n - 3   // ".", ".." and the directory's own descriptor
    }
}
