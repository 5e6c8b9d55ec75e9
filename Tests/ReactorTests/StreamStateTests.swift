import XCTest
@testable import Reactor

/// The send-side state machines of TCP connections and SSH channels: each request moves them
/// once, in one direction, and what cannot happen any more (data after a FIN or EOF, a second
/// FIN, an EOF after CLOSE) is refused by the state itself.
final class StreamStateTests: XCTestCase {
    func testTCPShutdownSendsFINOnceAndRefusesDataAfter() {
        var side = TCPSendSide.open
        XCTAssertTrue(side.acceptsWrites)
        XCTAssertEqual(side.shutdown(canSendNow: true), .sendFIN)
        XCTAssertEqual(side, .finSent)
        XCTAssertFalse(side.acceptsWrites)
        XCTAssertEqual(side.shutdown(canSendNow: true), .none, "a second FIN")
        XCTAssertEqual(side.drained(), .none)
        XCTAssertEqual(side.closeWhenDrained(canCloseNow: true), .close)
    }

    func testTCPFINWaitsForTheQueueAndCloseWinsOverIt() {
        var side = TCPSendSide.open
        XCTAssertEqual(side.shutdown(canSendNow: false), .none)
        XCTAssertEqual(side, .finWhenDrained)
        XCTAssertFalse(side.acceptsWrites, "data after shutdownWrite()")
        XCTAssertEqual(side.closeWhenDrained(canCloseNow: false), .none)
        XCTAssertEqual(side, .closeWhenDrained)
        XCTAssertEqual(side.shutdown(canSendNow: false), .none)
        XCTAssertEqual(side, .closeWhenDrained, "a later shutdownWrite() does not undo the close")
        XCTAssertEqual(side.drained(), .close)

        var fin = TCPSendSide.open
        _ = fin.shutdown(canSendNow: false)
        XCTAssertEqual(fin.drained(), .sendFIN)
        XCTAssertEqual(fin, .finSent)
        XCTAssertEqual(fin.drained(), .none, "the FIN goes once")
    }

    func testSSHChannelEOFThenCloseInOrder() {
        var side = SSHChannelSendSide.open
        XCTAssertEqual(side.shutdown(drained: false), .none)
        XCTAssertFalse(side.acceptsData, "data after shutdownWrite()")
        XCTAssertEqual(side.closeWhenDrained(drained: false), .none)
        XCTAssertEqual(side, .closeWhenDrained(eofFirst: true))
        XCTAssertEqual(side.drained(), .sendEOF, "the EOF asked for first goes first")
        XCTAssertEqual(side.drained(), .close)
        XCTAssertTrue(side.sendClose())
        XCTAssertFalse(side.sendClose(), "CLOSE goes once")
        XCTAssertEqual(side.shutdown(drained: true), .none, "no EOF after CLOSE")
        XCTAssertTrue(side.isCloseSent)
    }

    func testSSHChannelShutdownAfterCloseWasAskedStillSendsTheEOFFirst() {
        var side = SSHChannelSendSide.open
        XCTAssertEqual(side.closeWhenDrained(drained: false), .none)
        XCTAssertEqual(side.shutdown(drained: false), .none)
        XCTAssertEqual(side, .closeWhenDrained(eofFirst: true))
        XCTAssertEqual(side.shutdown(drained: false), .none, "already on its way")
        XCTAssertEqual(side.drained(), .sendEOF)
        XCTAssertEqual(side.drained(), .close)
    }

    func testSSHChannelEOFWhenDrainedGoesOnce() {
        var side = SSHChannelSendSide.open
        XCTAssertEqual(side.shutdown(drained: true), .sendEOF)
        XCTAssertEqual(side, .eofSent)
        XCTAssertEqual(side.shutdown(drained: true), .none, "a second EOF")
        XCTAssertEqual(side.drained(), .none)
        XCTAssertEqual(side.closeWhenDrained(drained: true), .close)
    }


    /// Through a channel whose peer window is closed: data, EOF and CLOSE asked for in that
    /// order go out in that order once the window opens; data written after them never does;
    /// data from the peer after its EOF is a protocol error.
    func testSSHChannelSendsDataEOFCloseInOrderAndRefusesWhatComesAfter() throws {
        let host = SSHChannelTests.FakeHost(loop: try makeLoop())
        let channel = SSHChannel(host: host, loop: host.loop, type: "forwarded-tcpip", localID: 0, remoteID: 7, remoteWindow: 0,
                                 remoteMaxPacket: 32768, initialWindow: 1 << 20, maxPacket: 32768)
        let r = SSHChannelTests.VectorRecorder()
        channel.delegate = r
        channel.write(Array("queued".utf8))
        channel.shutdownWrite()
        channel.write(Array("after EOF".utf8))
        channel.closeWhenFlushed()
        XCTAssertTrue(host.sent.isEmpty, "nothing may go out without window")
        try channel.receiveWindowAdjust(1 << 16)
        XCTAssertEqual(host.sent.map { $0.first }, [SSHMsg.channelData, SSHMsg.channelEOF, SSHMsg.channelClose])
        XCTAssertEqual(Array(host.sent[0].suffix(6)), Array("queued".utf8))
        XCTAssertEqual(r.events, ["close"])

        let other = SSHChannel(host: host, loop: host.loop, type: "forwarded-tcpip", localID: 1, remoteID: 8, remoteWindow: 1 << 16,
                               remoteMaxPacket: 32768, initialWindow: 1 << 20, maxPacket: 32768)
        let otherRecorder = SSHChannelTests.VectorRecorder()
        other.delegate = otherRecorder
        other.receiveEOF()
        XCTAssertThrowsError(try Array("late".utf8).withUnsafeBytes { try other.receiveData($0) }) { error in
            XCTAssertEqual(error as? SSHError, .protocolError("channel 1: data after EOF/CLOSE"))
        }
        XCTAssertEqual(otherRecorder.events, ["eof"])
    }
}
