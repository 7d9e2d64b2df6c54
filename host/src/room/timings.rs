//! The rooms' timing histograms: tick durations, the output gate's waits, swap pauses.

use super::Rooms;
use std::sync::Mutex;

impl Rooms {
    /// Tick durations of all rooms since the last call (microseconds), and resets them.
    pub fn take_tick_times(&self) -> hdrhistogram::Histogram<u64> {
        take(&self.0.tick_us)
    }

    pub(super) fn record_tick(&self, micros: u64) {
        record(&self.0.tick_us, micros);
    }

    /// How long durable rooms' answers waited for the commit of their journal since the last call
    /// (microseconds), and resets it.
    pub fn take_gate_waits(&self) -> hdrhistogram::Histogram<u64> {
        take(&self.0.gate_us)
    }
}

/// A histogram of durations from 1 µs to a minute.
pub(super) fn micros_histogram() -> Mutex<hdrhistogram::Histogram<u64>> {
    Mutex::new(hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"))
}

/// A histogram's figures since the last call, leaving it empty.
pub(super) fn take(h: &Mutex<hdrhistogram::Histogram<u64>>) -> hdrhistogram::Histogram<u64> {
    let mut h = h.lock().unwrap();
    let taken = h.clone();
    h.reset();
    taken
}

/// Records a duration in microseconds (at least 1, the histogram's lowest value).
pub(super) fn record(h: &Mutex<hdrhistogram::Histogram<u64>>, micros: u64) {
    h.lock().unwrap().saturating_record(micros.max(1));
}
