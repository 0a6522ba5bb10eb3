//! How many ephemeral messages a connection may send: a token bucket per connection, so that a
//! flood is dropped at the hub instead of being relayed to every listener of the document.

use std::time::{Duration, Instant};

/// Messages a connection may send in a burst.
pub const EPHEMERAL_BURST: u32 = 400;
/// Messages per second a connection may send, sustained. Presence heartbeats (one per 15 s per
/// document) and cursor updates (tens per second) stay far below it.
pub const EPHEMERAL_PER_SECOND: u32 = 200;
/// Messages dropped in a row after which the connection is cut off: it is flooding, not
/// bursting.
pub const EPHEMERAL_DROPS_BEFORE_CUT: u32 = 2_000;

/// How many ephemeral messages each connection may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EphemeralRate {
    /// Messages a connection may send in a burst.
    pub burst: u32,
    /// Messages per second a connection may send, sustained.
    pub per_second: u32,
}

impl Default for EphemeralRate {
    /// [`EPHEMERAL_BURST`] and [`EPHEMERAL_PER_SECOND`].
    fn default() -> Self {
        EphemeralRate {
            burst: EPHEMERAL_BURST,
            per_second: EPHEMERAL_PER_SECOND,
        }
    }
}

/// One connection's allowance of ephemeral messages.
#[derive(Debug, Clone)]
pub(crate) struct EphemeralAllowance {
    rate: EphemeralRate,
    tokens: f64,
    refilled_at: Option<Instant>,
    dropped_in_a_row: u32,
}

/// What to do with one ephemeral message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    Drop,
    CutOff,
}

impl EphemeralAllowance {
    pub(crate) fn new(rate: EphemeralRate) -> Self {
        EphemeralAllowance {
            rate,
            tokens: f64::from(rate.burst),
            refilled_at: None,
            dropped_in_a_row: 0,
        }
    }

    /// One message arrives at `now`.
    pub(crate) fn spend(&mut self, now: Instant) -> Verdict {
        let since = self
            .refilled_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        self.refilled_at = Some(now);
        self.tokens = (self.tokens + since.as_secs_f64() * f64::from(self.rate.per_second))
            .min(f64::from(self.rate.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.dropped_in_a_row = 0;
            return Verdict::Pass;
        }
        self.dropped_in_a_row += 1;
        if self.dropped_in_a_row > EPHEMERAL_DROPS_BEFORE_CUT {
            Verdict::CutOff
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_a_flood_is_dropped_then_cut_off_and_time_refills() {
        let t0 = Instant::now();
        let mut allowance = EphemeralAllowance::new(EphemeralRate::default());
        for _ in 0..EPHEMERAL_BURST {
            assert_eq!(allowance.spend(t0), Verdict::Pass);
        }
        assert_eq!(allowance.spend(t0), Verdict::Drop);
        // A second later the sustained rate is allowed again.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..EPHEMERAL_PER_SECOND {
            assert_eq!(allowance.spend(t1), Verdict::Pass);
        }
        let verdicts: Vec<Verdict> = (0..EPHEMERAL_DROPS_BEFORE_CUT + 1)
            .map(|_| allowance.spend(t1))
            .collect();
        assert!(verdicts[..verdicts.len() - 1]
            .iter()
            .all(|v| *v == Verdict::Drop));
        assert_eq!(verdicts.last(), Some(&Verdict::CutOff));
    }

    #[test]
    fn presence_and_cursors_never_hit_the_limit() {
        let t0 = Instant::now();
        let mut allowance = EphemeralAllowance::new(EphemeralRate::default());
        // 60 cursor moves a second on each of three documents, for a minute.
        for tick in 0..60 * 60 {
            let now = t0 + Duration::from_millis(tick * 1000 / 60);
            for _ in 0..3 {
                assert_eq!(allowance.spend(now), Verdict::Pass);
            }
        }
    }
}
