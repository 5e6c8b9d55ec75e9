import XCTest
@testable import Reactor

final class ByteBufferTests: XCTestCase {
    /// A stream read in uneven pieces: every byte comes out once, in order, and the storage
    /// stays bounded although the reader never catches up completely.
    func testStreamingKeepsOrderAndBoundedStorage() {
        var b = ByteBuffer()
        var next: UInt8 = 0
        var expect: UInt8 = 0
        var maxCapacity = 0
        for round in 0..<1_000 {
            let piece = (0..<(1 + (round * 7919) % 12_000)).map { _ -> UInt8 in next &+= 1; return next }
            piece.withUnsafeBytes { b.append($0) }
            // Leave a little unread each time.
            let take = max(0, b.readableBytes - (round % 3) * 100)
            if let bytes = b.readBytes(take) {
                let wanted = (0..<bytes.count).map { _ -> UInt8 in expect &+= 1; return expect }
                guard bytes == wanted else { return XCTFail("bytes out of order in round \(round)") }
            }
            maxCapacity = max(maxCapacity, b.storage.capacity)
        }
        XCTAssertLessThanOrEqual(maxCapacity, 64 * 1024, "the consumed prefix was never reclaimed")
    }

    func testIntegersAndPeeks() {
        var b = ByteBuffer()
        b.appendInteger(UInt32(0x01020304))
        b.append(string: "hi")
        XCTAssertEqual(b.peekInteger(as: UInt16.self), 0x0102)
        XCTAssertEqual(b.readInteger(as: UInt32.self), 0x01020304)
        XCTAssertNil(b.peekInteger(as: UInt32.self), "only 2 bytes left")
        XCTAssertEqual(b.readBytes(2), Array("hi".utf8))
        XCTAssertTrue(b.isEmpty)
    }
}
