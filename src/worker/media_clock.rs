//! Wall-clock times for forwarded packets, derived from RTP timestamps.
//!
//! str0m writes the sender reports of an outgoing stream from the
//! (RTP time, wall clock) pairs we give it. Using each packet's arrival
//! time makes those pairs jitter: the packets of one video frame share a
//! timestamp but arrive over several milliseconds, and Chrome then warns
//! "Newer RTCP SR report with older RTP timestamp" and mis-syncs audio and
//! video. Instead the wall clock is the arrival of a reference packet plus
//! the RTP time elapsed since it, so it advances exactly with the media.
//!
//! It must never be later than the arrival: str0m writes an RTP time of 0
//! into a sender report whose last wall clock is in the future. So a packet
//! that arrives earlier than the reference predicts becomes the reference
//! (the reference is the least-delayed packet seen). A packet much later
//! than predicted (a pause, a timestamp jump, a restarted encoder) also
//! resets it.

use std::time::{Duration, Instant};

/// Beyond this distance from the arrival time, the reference is reset.
const MAX_DRIFT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct MediaClock {
    rate: u32,
    base: Option<(u32, Instant)>,
}

impl MediaClock {
    /// `rate`: the RTP clock rate (48 kHz for Opus, 90 kHz for video).
    pub fn new(rate: u32) -> Self {
        MediaClock { rate, base: None }
    }

    pub fn wallclock(&mut self, rtp_time: u32, arrival: Instant) -> Instant {
        if let Some((base_ts, base_at)) = self.base {
            // Signed distance, so slightly reordered packets map backwards.
            let ticks = rtp_time.wrapping_sub(base_ts) as i32 as i64;
            let nanos = ticks * 1_000_000_000 / i64::from(self.rate.max(1));
            let at = if nanos >= 0 {
                base_at.checked_add(Duration::from_nanos(nanos as u64))
            } else {
                base_at.checked_sub(Duration::from_nanos(nanos.unsigned_abs()))
            };
            if let Some(at) = at {
                if at <= arrival && arrival - at <= MAX_DRIFT {
                    return at;
                }
            }
        }
        self.base = Some((rtp_time, arrival));
        arrival
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_of_one_frame_share_a_wallclock() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(90_000);
        let a = c.wallclock(1000, t0);
        let b = c.wallclock(1000, t0 + Duration::from_millis(7));
        assert_eq!(a, b);
    }

    #[test]
    fn wallclock_follows_rtp_time_not_arrival_jitter() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(90_000);
        c.wallclock(0, t0);
        // 40 ms of video later, arriving 15 ms late.
        let w = c.wallclock(3600, t0 + Duration::from_millis(55));
        assert_eq!(w, t0 + Duration::from_millis(40));
        // Reordered: an earlier frame maps before.
        let e = c.wallclock(1800, t0 + Duration::from_millis(60));
        assert_eq!(e, t0 + Duration::from_millis(20));
    }

    #[test]
    fn never_in_the_future_of_the_arrival() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(90_000);
        // The reference packet was delayed by 30 ms.
        assert_eq!(
            c.wallclock(0, t0 + Duration::from_millis(30)),
            t0 + Duration::from_millis(30)
        );
        // The next frame arrives on time: it is the better reference.
        let on_time = t0 + Duration::from_millis(40);
        assert_eq!(c.wallclock(3600, on_time), on_time);
        assert_eq!(
            c.wallclock(7200, t0 + Duration::from_millis(90)),
            t0 + Duration::from_millis(80)
        );
    }

    #[test]
    fn timestamp_wrap_is_continuous() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(48_000);
        c.wallclock(u32::MAX - 479, t0);
        let w = c.wallclock(480, t0 + Duration::from_millis(20));
        assert_eq!(w, t0 + Duration::from_millis(20));
    }

    #[test]
    fn a_jump_rebases_on_arrival() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(90_000);
        c.wallclock(0, t0);
        let later = t0 + Duration::from_millis(100);
        // The encoder restarted with an unrelated timestamp.
        assert_eq!(c.wallclock(2_000_000_000, later), later);
        assert_eq!(
            c.wallclock(2_000_000_000 + 900, later + Duration::from_millis(12)),
            later + Duration::from_millis(10)
        );
    }
}
