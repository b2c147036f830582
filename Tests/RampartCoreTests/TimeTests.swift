import PropertyBased
@testable import RampartCore
import Testing

@Suite struct TimeTests {
    @Test func nanosecondsOfADuration() {
        #expect(Duration.nanoseconds(1_500).nanoseconds == 1_500)
        #expect(Duration.nanoseconds(-1_500).nanoseconds == -1_500)
        #expect(Duration.milliseconds(250).nanoseconds == 250_000_000)
        // Beyond 64-bit attoseconds (about 9.2 s) the long way is taken.
        #expect(Duration.seconds(100).nanoseconds == 100_000_000_000)
        #expect(Duration.seconds(-100).nanoseconds == -100_000_000_000)
        // Parts of a nanosecond are dropped, toward zero.
        #expect(Duration(secondsComponent: 0, attosecondsComponent: 1_999_999_999).nanoseconds == 1)
        #expect(Duration(secondsComponent: 0, attosecondsComponent: -1_999_999_999).nanoseconds == -1)
        // Too long for 64-bit nanoseconds: clamped, not wrapped.
        #expect(Duration.seconds(Int64.max).nanoseconds == Int64.max)
        #expect(Duration.seconds(Int64.min).nanoseconds == Int64.min)
    }

    @Test func nanosecondsAgreeWithTheComponents() async {
        // Seconds and attoseconds on both sides of the 64-bit boundary.
        await propertyCheck(count: 2_000, input: Gen.int(in: -40...40), Gen.int(in: 0...999_999_999_999_999_999)) { seconds, attoseconds in
            let duration = Duration(secondsComponent: Int64(seconds), attosecondsComponent: Int64(attoseconds))
            let total = Int128(seconds) * 1_000_000_000_000_000_000 + Int128(attoseconds)
            #expect(duration.nanoseconds == Int64(total / 1_000_000_000))
        }
    }
}
