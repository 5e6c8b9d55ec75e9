import XCTest
@testable import Reactor

/// The one random source: the sizes asked for, and bytes that are not a constant fill.
final class SecureRandomTests: XCTestCase {
    func testBytesHaveTheLengthAskedAndDiffer() throws {
        let a = try SecureRandom.bytes(32), b = try SecureRandom.bytes(32)
        XCTAssertEqual(a.count, 32)
        XCTAssertNotEqual(a, b, "two draws of 256 bits were equal")
        XCTAssertGreaterThan(Set(a).count, 8, "32 random bytes with at most 8 distinct values: \(a)")
        XCTAssertEqual(try SecureRandom.bytes(0), [])
    }

    func testFillWritesTheWholeBuffer() throws {
        var buffer = [UInt8](repeating: 0, count: 4096)
        try buffer.withUnsafeMutableBytes { raw in try SecureRandom.fill(raw) }
        // A fill that stopped short would leave the zeros it started with at the end.
        XCTAssertFalse(buffer.suffix(256).allSatisfy { $0 == 0 }, "the tail was left unfilled")
        XCTAssertGreaterThan(Set(buffer).count, 200)
    }

    func testMaskKeysComeFromThePool() {
        let masks = MaskKeySource()
        var keys = Set<UInt32>()
        for _ in 0..<600 { if let k = masks.next() { keys.insert(k) } }   // crosses a pool refill
        XCTAssertGreaterThan(keys.count, 590)
    }
}
