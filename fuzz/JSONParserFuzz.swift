// libFuzzer target for the JSON parser (control-plane bodies, the state file): any input either
// parses or throws; what parses survives a write/parse round trip unchanged, compact and pretty.
// Built by scripts/fuzz.sh with the JSON core sources.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let value = try? JSONParser.parse(bytes) else { return 0 }
    for pretty in [false, true] {
        let again: JSONValue
        do { again = try JSONParser.parse(value.text(pretty: pretty)) } catch {
            preconditionFailure("our own output does not parse: \(error)")
        }
        precondition(again == value, "round trip changed the value")
    }
    return 0
}
