// libFuzzer target for the config file path: YAMLReader (libyaml events into a YAMLNode tree,
// with its limits on size, depth, aliases and tags) and the config decoder behind
// ConfigLoader (environment expansion, key registry, forwards, validation). Invariants: bad
// input is a thrown YAMLError/ConfigError, never a trap; an error that names a line names one
// the input has; and a config that loads, printed by ConfigPrinter and loaded again, prints
// the same (the printer's promise: its output reads back to the same config, secrets aside).
// Built by scripts/fuzz.sh with the Config sources and libyaml.

let environment = ["HOME": "/home/fuzz", "PIPEOPS_FUZZ": "from-env"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzYAMLConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // libyaml also breaks lines at CR, NEL, LS and PS: counting their bytes bounds the lines.
    let lines = bytes.reduce(1) { $0 + ([0x0A, 0x0D, 0x85, 0xA8, 0xA9].contains($1) ? 1 : 0) }
    // The raw bytes first (libyaml's own UTF-8 checks); the loader then gets the tree when they
    // parsed (the same text: valid UTF-8), else the text as String(decoding:) repairs it.
    var tree: YAMLNode??
    do {
        tree = .some(try YAMLReader.parse(bytes, file: "fuzz.yaml"))
    } catch {
        if let line = error.line { precondition(line >= 1 && line <= lines + 1, "YAML error on line \(line) of \(lines)") }
    }
    let config: AgentConfig
    do {
        if let root = tree {
            (config, _) = try ConfigLoader.merge(file: root, fileName: "fuzz.yaml", environment: environment, overrides: [:])
        } else {
            (config, _) = try ConfigLoader.load(yaml: String(decoding: bytes, as: UTF8.self), fileName: "fuzz.yaml",
                                                environment: environment, overrides: [:])
        }
    } catch {
        if case .file(_, let line)? = error.origin {
            precondition(line >= 1 && line <= lines + 1, "config error on line \(line) of \(lines): \(error)")
        }
        return 0
    }
    let printed = ConfigPrinter.render(config)
    do {
        let (again, _) = try ConfigLoader.load(yaml: printed, fileName: "printed.yaml", environment: environment, overrides: [:])
        precondition(ConfigPrinter.render(again) == printed, "printed config reads back differently:\n\(printed)")
    } catch {
        preconditionFailure("printed config does not load: \(error)\n\(printed)")
    }
    return 0
}
