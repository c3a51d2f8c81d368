@testable import GeoCore
import Testing

/// The replica's timer table (issue 13): the clock, start, restart, cancel, stopwatch reads and
/// deadlines.
@Suite struct TimerTableTests {
    /// A table whose clock reads `ticks`.
    static func table(at ticks: UInt64) -> TimerTable {
        var timers = TimerTable()
        timers.advance(by: ticks)
        return timers
    }

    @Test func aTimerRunsFromItsStartAndStopsWhenCancelled() {
        var timers = Self.table(at: 4)
        #expect(!timers.isRunning(.progress))
        #expect(timers.elapsed(.progress) == nil)
        timers.start(.progress)
        timers.advance(by: 6)
        #expect(timers.now == 10)
        #expect(timers.isRunning(.progress))
        #expect(timers.started(.progress) == 4)
        #expect(timers.elapsed(.progress) == 6)
        timers.cancel(.progress)
        #expect(!timers.isRunning(.progress))
        #expect(timers.started(.progress) == nil)
    }

    @Test func startIfIdleKeepsARunningTimerAndStartRestartsIt() {
        var timers = Self.table(at: 3)
        timers.startIfIdle(.progress)
        timers.advance(by: 6)
        timers.startIfIdle(.progress)
        #expect(timers.started(.progress) == 3, "a running timer keeps its start")
        timers.start(.progress)
        #expect(timers.started(.progress) == 9, "start restarts")
    }

    @Test func hasRunReadsTheStopwatchAndAnIdleTimerCountsAsAsked() {
        var timers = Self.table(at: 100)
        #expect(timers.hasRun(.fetch, ticks: 5, idle: true), "a pace that never ran is due")
        #expect(!timers.hasRun(.progress, ticks: 5, idle: false), "a wait that never started is not")
        timers.start(.fetch)
        timers.advance(by: 4)
        #expect(!timers.hasRun(.fetch, ticks: 5, idle: true))
        timers.advance()
        #expect(timers.hasRun(.fetch, ticks: 5, idle: false))
    }

    @Test func deadlinesFireInNameOrderAndOnlyOncePassed() {
        var timers = Self.table(at: 10)
        timers.start(.viewChange, deadlineAfter: 20)
        timers.setDeadline(.transferPause, at: 25)
        timers.start(.fetch)
        #expect(timers.deadline(.viewChange) == 30)
        timers.advance(by: 14)
        #expect(timers.due().isEmpty)
        timers.advance()
        #expect(timers.due() == [.transferPause])
        timers.advance(by: 5)
        #expect(timers.due() == [.viewChange, .transferPause], "in name order; stopwatches are never due")
        #expect(timers.isDue(.viewChange))
        timers.advance(by: 1_000)
        #expect(!timers.isDue(.fetch))
        timers.setDeadline(.viewChange, at: 2_000)
        #expect(timers.started(.viewChange) == 10, "moving a deadline keeps the start")
        #expect(!timers.isDue(.viewChange))
    }

    @Test func timersPerRemoteClusterAreApartAndTheSummaryListsThem() {
        var timers = Self.table(at: 1)
        timers.start(.viewChange, deadlineAfter: 4)
        timers.advance(by: 4)
        timers.start(.remoteFetch(0))
        timers.advance(by: 2)
        timers.start(.remoteFetch(2))
        timers.cancel(.remoteFetch(2))
        #expect(timers.isRunning(.remoteFetch(0)))
        #expect(!timers.isRunning(.remoteFetch(2)))
        #expect(timers.summary == "view-change@1->5 remote-fetch(0)@5")
    }
}
