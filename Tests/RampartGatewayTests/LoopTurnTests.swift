import Foundation
import NIOCore
import NIOEmbedded
import PropertyBased
import Testing

@testable import RampartGateway

/// Flushes gathered in a turn of the loop are made together after it, none lost; the time is
/// read once a turn.
@Suite struct LoopTurnTests {
    /// Keeps its context, so a test can write and flush as a handler would.
    final class Held: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var context: ChannelHandlerContext?
        func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    }

    static func channel(on loop: EmbeddedEventLoop) throws -> (EmbeddedChannel, ChannelHandlerContext) {
        let held = Held()
        let channel = EmbeddedChannel(handler: held, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, try #require(held.context))
    }

    /// A loop, its batch, and two connected channels on it.
    static func twoChannels() throws -> (EmbeddedEventLoop, LoopTurn, (EmbeddedChannel, ChannelHandlerContext),
                                         (EmbeddedChannel, ChannelHandlerContext)) {
        let loop = EmbeddedEventLoop()
        return (loop, LoopTurn(eventLoop: loop), try channel(on: loop), try channel(on: loop))
    }

    /// Writes `text` through `context` and asks `batch` to flush it.
    static func write(_ text: String, _ context: ChannelHandlerContext, _ batch: LoopTurn, promise: EventLoopPromise<Void>? = nil) {
        context.write(NIOAny(ByteBuffer(string: text)), promise: promise)
        batch.flushAtEndOfTurn(context)
    }

    @Test func writesWaitForTheEndOfTheTurnThenAllGoOut() throws {
        let (loop, batch, (first, firstContext), (second, secondContext)) = try Self.twoChannels()
        Self.write("one", firstContext, batch)
        Self.write("two", secondContext, batch)
        // Written, not yet flushed: nothing has left either channel.
        #expect(try first.readOutbound(as: ByteBuffer.self) == nil)
        #expect(try second.readOutbound(as: ByteBuffer.self) == nil)
        loop.run()
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "one"))
        #expect(try second.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "two"))
    }

    @Test func aFlushAskedForWhileFlushingIsMadeInALaterTask() throws {
        let (loop, batch, (first, firstContext), (second, secondContext)) = try Self.twoChannels()
        // The first flush completes a write whose completion writes on the second channel, as a
        // failed write's retry on another connection would.
        let promise = loop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { _ in Self.write("after", secondContext, batch) }
        Self.write("before", firstContext, batch, promise: promise)
        loop.run()
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "before"))
        #expect(try second.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "after"))
        // And the batch is usable again afterwards.
        Self.write("again", firstContext, batch)
        loop.run()
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "again"))
    }

    @Test func aClosedChannelInTheBatchDoesNotStopTheOthers() throws {
        let (loop, batch, (first, firstContext), (second, secondContext)) = try Self.twoChannels()
        Self.write("lost", firstContext, batch)
        Self.write("kept", secondContext, batch)
        _ = try? first.finish()
        loop.run()
        #expect(try second.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "kept"))
    }

    @Test func theTimeIsReadOnceATurnAndAgainInTheNext() throws {
        let (loop, turn, (first, firstContext), _) = try Self.twoChannels()
        let start = turn.now()
        Thread.sleep(forTimeInterval: 0.002)
        // The same turn: the same reading, however late it is asked for.
        #expect(turn.now() == start)
        // A flush in the same turn joins the task the reading scheduled.
        Self.write("one", firstContext, turn)
        loop.run()
        #expect(try first.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "one"))
        // The next turn reads the clock again.
        let next = turn.now()
        #expect(next >= start + .milliseconds(2))
        Thread.sleep(forTimeInterval: 0.002)
        #expect(turn.now() == next)
        loop.run()
        #expect(turn.now() >= next + .milliseconds(2))
    }

    /// The answers' `Date` is the wall clock's, read once a turn: a turn that spans the change
    /// of a second keeps the date it read first; the next turn has the new one.
    @Test func theDateIsTheWallClocksReadOnceATurn() throws {
        let loop = EmbeddedEventLoop()
        let turn = LoopTurn(eventLoop: loop)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let first = turn.httpDate()
        let read = try #require(formatter.date(from: first))
        #expect(abs(read.timeIntervalSinceNow) < 5)
        Thread.sleep(forTimeInterval: 1.1)
        #expect(turn.httpDate() == first)
        loop.run()
        #expect(try #require(formatter.date(from: turn.httpDate())) > read)
    }

    /// The answers' `Date`: RFC 9110's own example, the epoch, a leap day and the end of a
    /// year, then any second from 1970 to 2200 against Foundation's formatter.
    @Test func httpDatesAreRFC9110Dates() async {
        #expect(LoopTurn.httpDate(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(LoopTurn.httpDate(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(LoopTurn.httpDate(951_825_599) == "Tue, 29 Feb 2000 11:59:59 GMT")
        #expect(LoopTurn.httpDate(1_798_761_599) == "Thu, 31 Dec 2026 23:59:59 GMT")
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        await propertyCheck(count: 2000, input: Gen.int(in: 0...7_258_118_400)) { second in
            #expect(LoopTurn.httpDate(second) == formatter.string(from: Date(timeIntervalSince1970: TimeInterval(second))))
        }
    }
}
