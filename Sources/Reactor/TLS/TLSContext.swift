import CShims

/// One SSL_CTX built from a `TLSConfiguration`: certificates, keys and trust are loaded once
/// and shared by every connection made from it. Build one per configuration and reuse it.
///
/// Invariants: the SSL_CTX is not changed after `init`, so every session made from it sees one
/// fixed configuration; the context and its sessions live on one loop thread (not Sendable),
/// which lets them share one scratch buffer. Several loops: one context each.
public final class TLSContext {
    public let configuration: TLSConfiguration
    let ctx: OpaquePointer
    /// Server ALPN list; OpenSSL keeps a pointer to it, so it lives as long as the SSL_CTX.
    private let alpnList: UnsafeMutablePointer<shim_alpn_list>?
    /// Where outgoing ciphertext is staged on its way from an engine to its transport; shared
    /// by the context's sessions because they all run on one loop thread.
    private let scratch: UnsafeMutableRawBufferPointer
    /// One write chunk's ciphertext (`TLSStream.writeChunk` of plaintext plus the headers, tags
    /// and padding of its records), so a chunk leaves in one piece instead of a full buffer and
    /// a tail of a few dozen bytes sent on its own.
    static let scratchBytes = 64 * 1024 + 4096
    private var scratchInUse = false

    public init(_ configuration: TLSConfiguration) throws(TLSConfigurationError) {
        self.configuration = configuration
        let method = configuration.role == .client ? TLS_client_method() : TLS_server_method()
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(method) else {
            throw TLSConfigurationError("SSL_CTX_new failed: \(TLSContext.takeOpenSSLReason())")
        }
        self.ctx = ctx
        var alpnList: UnsafeMutablePointer<shim_alpn_list>?
        do {
            try Self.configure(ctx, configuration, alpnList: &alpnList)
        } catch {
            if let list = alpnList { Self.freeALPN(list) }
            SSL_CTX_free(ctx)
            throw error
        }
        self.alpnList = alpnList
        self.scratch = .allocate(byteCount: Self.scratchBytes, alignment: 16)
    }

    deinit {
        scratch.deallocate()
        SSL_CTX_free(ctx)
        if let list = alpnList { Self.freeALPN(list) }
    }

    /// Lends the scratch buffer; a nested call (a transport that calls back into another
    /// session while writing) gets a temporary one instead.
    func withScratch<T>(_ body: (UnsafeMutableRawBufferPointer) -> T) -> T {
        if scratchInUse {
            return withUnsafeTemporaryAllocation(byteCount: 16 * 1024, alignment: 16) { body($0) }
        }
        scratchInUse = true
        defer { scratchInUse = false }
        return body(scratch)
    }

    private static func configure(_ ctx: OpaquePointer, _ c: TLSConfiguration,
                                  alpnList: inout UnsafeMutablePointer<shim_alpn_list>?) throws(TLSConfigurationError) {
        shim_SSL_CTX_set_reactor_defaults(ctx)
        guard shim_SSL_CTX_set_min_proto_version(ctx, c.minimumVersion.openSSLValue) == 1 else {
            throw TLSConfigurationError("cannot set minimum TLS version \(c.minimumVersion): \(takeOpenSSLReason())")
        }

        // Our own certificate: required for a server, optional (mutual TLS) for a client.
        switch (c.certificateChainFile, c.privateKeyFile) {
        case (let cert?, let key?):
            guard SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 else {
                throw TLSConfigurationError("cannot load certificate chain \(cert): \(takeOpenSSLReason())")
            }
            guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
                throw TLSConfigurationError("cannot load private key \(key): \(takeOpenSSLReason())")
            }
            guard SSL_CTX_check_private_key(ctx) == 1 else {
                throw TLSConfigurationError("private key \(key) does not match certificate \(cert): \(takeOpenSSLReason())")
            }
        case (nil, nil):
            if c.role == .server {
                throw TLSConfigurationError("a TLS server needs certificateChainFile and privateKeyFile")
            }
        case (_?, nil):
            throw TLSConfigurationError("certificateChainFile is set but privateKeyFile is not")
        case (nil, _?):
            throw TLSConfigurationError("privateKeyFile is set but certificateChainFile is not")
        }

        // Trust.
        if c.trustSystemRoots && SSL_CTX_set_default_verify_paths(ctx) != 1 {
            throw TLSConfigurationError("cannot load the system trust store: \(takeOpenSSLReason())")
        }
        if let caFile = c.additionalCAFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                throw TLSConfigurationError("cannot load CA file \(caFile): \(takeOpenSSLReason())")
            }
        }
        switch c.role {
        case .client:
            SSL_CTX_set_verify(ctx, c.insecureSkipVerify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nil)
        case .server:
            if c.requireClientCertificate {
                guard c.trustSystemRoots || c.additionalCAFile != nil else {
                    throw TLSConfigurationError("requireClientCertificate needs additionalCAFile (the CAs that sign client certificates)")
                }
                if let caFile = c.additionalCAFile, let names = SSL_load_client_CA_file(caFile) {
                    SSL_CTX_set_client_CA_list(ctx, names)   // takes ownership
                }
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
            } else {
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
            }
        }

        // ALPN.
        let wire = try c.alpnWireFormat()
        if !wire.isEmpty {
            switch c.role {
            case .client:
                // Note the inverted convention: 0 is success here.
                guard SSL_CTX_set_alpn_protos(ctx, wire, UInt32(wire.count)) == 0 else {
                    throw TLSConfigurationError("cannot set ALPN protocols \(c.alpnProtocols): \(takeOpenSSLReason())")
                }
            case .server:
                let bytes = UnsafeMutablePointer<UInt8>.allocate(capacity: wire.count)
                bytes.initialize(from: wire, count: wire.count)
                let list = UnsafeMutablePointer<shim_alpn_list>.allocate(capacity: 1)
                list.initialize(to: shim_alpn_list(protos: bytes, length: UInt32(wire.count)))
                alpnList = list
                shim_SSL_CTX_set_alpn_server(ctx, list)
            }
        }
    }

    private static func freeALPN(_ list: UnsafeMutablePointer<shim_alpn_list>) {
        list.pointee.protos.deallocate()
        list.deallocate()
    }

    /// OpenSSL's reason for the last failure on this thread ("no such file", "key values
    /// mismatch"); the error queue is left empty.
    static func takeOpenSSLReason() -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buf in
            let code = shim_ERR_take_reason(buf.baseAddress, 256)
            guard let base = buf.baseAddress, code != 0 else { return "unknown OpenSSL error" }
            return String(cString: base)
        }
    }
}
