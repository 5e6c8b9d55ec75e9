// libFuzzer target for the SSH packet decoder and message parsers (transport, KEXINIT, host
// keys, private key files). Built and run by scripts/fuzz.sh (`scripts/fuzz.sh 60 SSHPacketFuzz`).
// The first input byte picks the parser; the rest is the input.

@_cdecl("LLVMFuzzerTestOneInput")
public func sshPacketFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 6 {
    case 0:
        // Cleartext packets fed in uneven pieces, copied in or read into the decoder's buffer.
        let dec = SSHPacketDecoder()
        var offset = 0, step = 0
        while offset < input.count {
            var n = min(1 + offset % 97, input.count - offset)
            let piece = UnsafeRawBufferPointer(rebasing: input[offset..<offset + n])
            step += 1
            if step % 2 == 0 {
                dec.append(piece)
            } else {
                let space = dec.readSpace()
                n = min(n, space.count)
                if let to = space.baseAddress, let from = piece.baseAddress { to.copyMemory(from: from, byteCount: n) }
                dec.didRead(n)
            }
            offset += n
            do { while try dec.next({ _ in }) {} } catch { return 0 }
        }
    case 1:
        _ = try? SSHKexInit.parse(input)
    case 2:
        // A whole transport: banner, then packets, KEXINIT and kex replies.
        let t = SSHTransport(config: SSHTransportConfig())
        var banner = Array("SSH-2.0-fuzz\r\n".utf8)
        banner.append(contentsOf: input)
        _ = try? t.start()
        _ = try? banner.withUnsafeBytes { try t.receive($0) }
    case 3:
        if let key = try? SSHHostKey(blob: Array(input)) {
            for alg in SSHAlgorithms.supportedHostKeys {
                try? key.verify(signature: Array(input), message: [1, 2, 3], algorithm: alg)
            }
            _ = key.matches(fingerprint: "aa:bb")
        }
    case 4:
        _ = try? SSHEd25519PrivateKey(openSSHText: String(decoding: input, as: UTF8.self))
    default:
        // Encrypted packets: the tag check must reject garbage without crashing.
        for name in ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr"] {
            let sizes = SSHAlgorithms.cipherSizes(name)
            guard let c = try? SSHAlgorithms.makeCipher(name: name, mac: "hmac-sha2-256", key: Array(repeating: 1, count: sizes.key),
                                                        iv: Array(repeating: 2, count: sizes.iv), macKey: Array(repeating: 3, count: 32),
                                                        encrypt: false) else { continue }
            let dec = SSHPacketDecoder()
            dec.cipher = c
            dec.append(input)
            _ = try? dec.next({ _ in })
        }
    }
    return 0
}
