import CShims

/// One TLS session with no socket in it: an SSL object between two memory BIOs.
///   ciphertext in  → `receiveCiphertext` → `handshake()` / `read(into:)` → plaintext, events
///   plaintext in   → `write(_:)`, `closeNotify()` → `drainCiphertext` → ciphertext out
/// The owner moves ciphertext between the engine and a transport (`TLSStream` does it for a
/// `ByteStream`; tests let two engines talk to each other directly).
///
/// Buffers: both BIOs keep their storage between records (the read BIO compacts in place, the
/// write BIO is emptied with a reset), so a steady stream allocates nothing per record.
public final class TLSEngine {
    public enum HandshakeStatus: Equatable { case inProgress, complete, failed(String) }
    public enum ReadResult: Equatable {
        case bytes(Int)          // plaintext written to the buffer
        case needCiphertext      // nothing more until more ciphertext arrives
        case closeNotify         // the peer finished sending (TLS close_notify)
        case failed(String)      // fatal: the reason, e.g. "tlsv13 alert certificate required"
    }

    public let role: TLSConfiguration.Role
    /// The name the client sends (SNI) and checks the certificate against.
    public let serverName: String?
    public private(set) var isHandshakeComplete = false
    public private(set) var receivedCloseNotify = false
    public private(set) var sentCloseNotify = false
    /// The first fatal error; the session is dead after it and every call repeats it.
    public private(set) var failure: String?
    /// The X509 verify result (`X509_V_ERR_*`) when the failure was the certificate check.
    public private(set) var failedVerifyResult: Int32?
    let context: TLSContext
    private let ssl: OpaquePointer
    private let readBIO: OpaquePointer   // ciphertext from the peer; owned by `ssl`
    private let writeBIO: OpaquePointer  // ciphertext for the peer; owned by `ssl`

    /// For a client, `serverName` is required unless verification is off: a host name is sent
    /// as SNI and checked against the certificate's DNS names, an IP address against its IP names.
    public init(context: TLSContext, serverName: String? = nil) throws(TLSConfigurationError) {
        let config = context.configuration
        self.context = context
        self.role = config.role
        self.serverName = serverName
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else {
            throw TLSConfigurationError("SSL_new failed: \(TLSContext.takeOpenSSLReason())")
        }
        let rbioOrNil = BIO_new(BIO_s_mem()), wbioOrNil = BIO_new(BIO_s_mem())
        guard let rbio = rbioOrNil, let wbio = wbioOrNil else {
            if let b = rbioOrNil { BIO_free(b) }
            if let b = wbioOrNil { BIO_free(b) }
            SSL_free(ssl)
            throw TLSConfigurationError("BIO_new failed: out of memory")
        }
        shim_BIO_set_mem_eof_return(rbio, -1)
        shim_BIO_set_mem_eof_return(wbio, -1)
        SSL_set_bio(ssl, rbio, wbio)
        self.ssl = ssl
        self.readBIO = rbio
        self.writeBIO = wbio
        // From here on a throw runs deinit, which frees the SSL.

        switch config.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client:
            SSL_set_connect_state(ssl)
            if let name = serverName {
                let isIP = (try? SocketAddress(ip: name, port: 0)) != nil
                // RFC 6066: SNI carries host names only, never IP literals.
                if !isIP && shim_SSL_set_tlsext_host_name(ssl, name) != 1 {
                    throw TLSConfigurationError("cannot use '\(name)' as TLS server name: \(TLSContext.takeOpenSSLReason())")
                }
                if !config.insecureSkipVerify {
                    let param = SSL_get0_param(ssl)
                    let ok = isIP ? X509_VERIFY_PARAM_set1_ip_asc(param, name)
                                  : X509_VERIFY_PARAM_set1_host(param, name, 0)
                    if ok != 1 {
                            throw TLSConfigurationError("cannot verify against '\(name)': \(TLSContext.takeOpenSSLReason())")
                    }
                    X509_VERIFY_PARAM_set_hostflags(param, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
                }
            } else if !config.insecureSkipVerify {
                throw TLSConfigurationError("a verifying TLS client needs a server name (host name or IP) to check the certificate against")
            }
        }
    }

    deinit { SSL_free(ssl) }   // frees both BIOs too

    // MARK: Ciphertext in

    /// Hands ciphertext from the transport to the session (copied into the read BIO).
    public func receiveCiphertext(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count, let base = bytes.baseAddress {
            let n = BIO_write(readBIO, base + offset, Int32(clamping: bytes.count - offset))
            if n <= 0 { return }   // only on allocation failure; the handshake/read then fails
            offset += Int(n)
        }
    }

    // MARK: Handshake and plaintext

    /// Moves the handshake on with the ciphertext received so far.
    public func handshake() -> HandshakeStatus {
        if let failure { return .failed(failure) }
        if isHandshakeComplete { return .complete }
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            isHandshakeComplete = true
            return .complete
        }
        let err = SSL_get_error(ssl, rc)
        if err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE { return .inProgress }
        return .failed(failureReason(err))
    }

    /// Decrypts into `buffer` (at most one record per call).
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        if let failure { return .failed(failure) }
        guard let base = buffer.baseAddress, buffer.count > 0 else { return .bytes(0) }
        ERR_clear_error()
        var n = 0
        if SSL_read_ex(ssl, base, buffer.count, &n) == 1 {
            return n > 0 ? .bytes(n) : .needCiphertext   // success means n > 0; never spin on 0
        }
        let err = SSL_get_error(ssl, 0)
        switch err {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .needCiphertext
        case SSL_ERROR_ZERO_RETURN:
            receivedCloseNotify = true
            return .closeNotify
        default:
            return .failed(failureReason(err))
        }
    }

    /// Encrypts all of `plaintext` into the write BIO. Returns the reason on a fatal error.
    /// Callers keep chunks modest (e.g. 64 KiB) and drain between them to bound the BIO.
    public func write(_ plaintext: UnsafeRawBufferPointer) -> String? {
        guard let base = plaintext.baseAddress, plaintext.count > 0 else { return nil }
        if let failure { return failure }
        guard !sentCloseNotify else { return "write after close_notify" }
        var offset = 0
        while offset < plaintext.count {
            ERR_clear_error()
            var n = 0
            if SSL_write_ex(ssl, base + offset, plaintext.count - offset, &n) == 1 {
                offset += n
                continue
            }
            let err = SSL_get_error(ssl, 0)
            // A memory BIO never fills up, so anything but success is fatal here.
            return failureReason(err)
        }
        return nil
    }

    /// Queues our close_notify (once).
    public func closeNotify() {
        guard !sentCloseNotify else { return }
        sentCloseNotify = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    // MARK: Ciphertext out

    public var pendingCiphertextCount: Int { Int(BIO_ctrl_pending(writeBIO)) }

    /// Hands everything waiting in the write BIO to `body`, in pieces read into the context's
    /// scratch buffer (a copy proportional to the bytes, unlike emptying the BIO with a reset,
    /// which clears its whole capacity). `body` must consume or copy the bytes before returning.
    public func drainCiphertext(_ body: (UnsafeRawBufferPointer) -> Void) {
        while BIO_ctrl_pending(writeBIO) > 0 {
            let more: Bool = context.withScratch { scratch in
                let n = BIO_read(writeBIO, scratch.baseAddress, Int32(clamping: scratch.count))
                guard n > 0 else { return false }
                body(UnsafeRawBufferPointer(rebasing: scratch[0..<Int(n)]))
                return true
            }
            if !more { return }
        }
    }

    // MARK: What was negotiated

    public var protocolVersion: TLSVersion? {
        isHandshakeComplete ? TLSVersion(openSSLValue: SSL_version(ssl)) : nil
    }

    /// The ALPN protocol both sides chose, if any.
    public var alpnProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var len: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &len)
        guard let data, len > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(len)), as: UTF8.self)
    }

    public var cipherName: String? {
        guard let cipher = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_get_name(cipher) else { return nil }
        return String(cString: name)
    }

    /// The subject of the peer's certificate (e.g. "CN=test-client"), if it sent one.
    public var peerCertificateSubject: String? {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        guard let name = X509_get_subject_name(cert),
              let text = X509_NAME_oneline(name, nil, 0) else { return nil }
        defer { CRYPTO_free(text, #fileID, #line) }
        return String(cString: text)
    }

    // MARK: Errors

    /// OpenSSL's reason for a failed call, with the certificate check's verdict when that was
    /// the cause: "certificate verify failed: hostname mismatch (expected foo.example)".
    private func failureReason(_ sslError: Int32) -> String {
        let text = describe(sslError)
        failure = text
        return text
    }

    private func describe(_ sslError: Int32) -> String {
        let (code, reason) = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buf -> (UInt, String) in
            let code = shim_ERR_take_reason(buf.baseAddress, 256)
            guard let base = buf.baseAddress else { return (code, "") }
            return (code, String(cString: base))
        }
        var text: String
        if !reason.isEmpty {
            text = reason
        } else if sslError == SSL_ERROR_SYSCALL || sslError == SSL_ERROR_SSL {
            text = "unexpected end of TLS stream"
        } else {
            text = "SSL error \(sslError)"
        }
        if code != 0 && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED {
            let verdict = Int32(truncatingIfNeeded: SSL_get_verify_result(ssl))
            if verdict != X509_V_OK {
                failedVerifyResult = verdict
                text += ": " + String(cString: X509_verify_cert_error_string(Int(verdict)))
                if verdict == X509_V_ERR_HOSTNAME_MISMATCH || verdict == X509_V_ERR_IP_ADDRESS_MISMATCH,
                   let name = serverName {
                    text += " (expected \(name))"
                }
            }
        }
        return text
    }
}
