//! The abuse policy: which clients are dropped for making the server work for nothing, and how
//! many log lines one session may cause.
//!
//! A client can make a worker do pointless work without sending requests: wake it with
//! nothing to take (by waking the futex word, whether or not it changes it), send requests that
//! do not decode, or wake it while it waits for room for answers. Each is a *pointless event*.
//! A session may cause at most [`TROUBLE_LIMIT`] of them a second; and, however slowly it causes
//! them, it may not run up more than [`STRIKE_LIMIT`] *strikes* (one a pointless event; one
//! taken off for every request that decodes, and [`STRIKE_LEAK`] a second). Past either limit
//! the client is *dropped*: its session ends and the server hangs up on it. (The rate alone was
//! not enough: on a busy machine a futex storm made the server do a few hundred pointless
//! wake-ups a second, under the rate, and was never dropped.)

use crate::sync::Mutex;
use std::time::{Duration, Instant};

/// The most pointless events one session may cause in a second; beyond it the client is dropped.
pub const TROUBLE_LIMIT: u32 = 500;
/// The most strikes a session may run up: a pointless event adds one, each request that
/// decodes takes one off, and [`STRIKE_LEAK`] leak away a second. A well-behaved client stays
/// near zero (at most one benign pointless wake-up per real request, in a race with its own
/// publish); a hostile one that keeps the server busy with nothing reaches the limit however
/// slowly it can make it work.
pub const STRIKE_LIMIT: u32 = 100;
/// Strikes forgiven a second (see [`STRIKE_LIMIT`]): a client causing fewer pointless events
/// than this costs the server nothing measurable and is left alone.
pub const STRIKE_LEAK: u32 = 10;
/// The most log lines about one session in a second; the others are counted and their number
/// logged.
pub const LOG_LIMIT: u32 = 20;

/// A pointless event (see the [module](self) docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pointless {
    /// A worker was woken with nothing to take.
    Wakeup,
    /// A request did not decode.
    Malformed,
    /// A worker waiting for room for answers was woken, and there is still no room.
    Spurious,
}

/// One session's record under the policy.
#[derive(Debug)]
pub(super) struct Abuse {
    t: Mutex<Trouble>,
}

#[derive(Debug)]
struct Trouble {
    window: Instant,
    wakeups: u32,
    malformed: u32,
    spurious: u32,
    lines: u32,
    suppressed: u32,
    /// Set once the client is to be dropped: every later event is ignored.
    dropped: bool,
    strikes: Strikes,
}

/// A leaky count of pointless events, paid off by requests that decode.
#[derive(Debug)]
struct Strikes {
    count: u32,
    /// When the leak was last applied.
    leaked_at: Instant,
    /// The session's decoded requests when last looked at.
    valid_seen: u64,
}

impl Strikes {
    fn new(now: Instant) -> Strikes {
        Strikes {
            count: 0,
            leaked_at: now,
            valid_seen: 0,
        }
    }

    /// Add a strike at `now`, when the session has decoded `valid` requests in all; first take
    /// off one for each request decoded since the last look and the leak since the last leak.
    /// Returns the strikes now.
    fn strike(&mut self, now: Instant, valid: u64) -> u32 {
        let paid = valid.saturating_sub(self.valid_seen);
        self.valid_seen = valid;
        let ms = now.saturating_duration_since(self.leaked_at).as_millis();
        let leak = ms * u128::from(STRIKE_LEAK) / 1000;
        if leak > 0 {
            self.leaked_at = now;
        }
        let off = u128::from(paid).saturating_add(leak);
        let left = u128::from(self.count).saturating_sub(off) as u32;
        self.count = left.saturating_add(1);
        self.count
    }
}

impl Trouble {
    /// Start a new window if a second has passed; returns the lines suppressed in the old one.
    fn roll(&mut self, now: Instant) -> u32 {
        if now.duration_since(self.window) < Duration::from_secs(1) {
            return 0;
        }
        self.window = now;
        self.wakeups = 0;
        self.malformed = 0;
        self.spurious = 0;
        self.lines = 0;
        std::mem::take(&mut self.suppressed)
    }

    fn events(&self) -> u32 {
        self.wakeups + self.malformed + self.spurious
    }
}

/// What [`Abuse::pointless`] decided.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    /// The client is to be dropped now, for this reason (given once).
    pub drop: Option<String>,
    /// Log lines suppressed in the window that just closed (to be reported).
    pub suppressed: u32,
}

impl Abuse {
    pub(super) fn new() -> Abuse {
        let now = Instant::now();
        Abuse {
            t: Mutex::new(Trouble {
                window: now,
                wakeups: 0,
                malformed: 0,
                spurious: 0,
                lines: 0,
                suppressed: 0,
                dropped: false,
                strikes: Strikes::new(now),
            }),
        }
    }

    /// Count a pointless event of the session's client, which has had `valid` requests
    /// decoded in all. The verdict says to drop it the first time a limit is crossed.
    pub(super) fn pointless(&self, what: Pointless, valid: u64) -> Verdict {
        self.pointless_at(what, valid, Instant::now())
    }

    /// [`Abuse::pointless`] at the moment `now`.
    fn pointless_at(&self, what: Pointless, valid: u64, now: Instant) -> Verdict {
        let mut t = self.t.lock();
        let suppressed = t.roll(now);
        if t.dropped {
            return Verdict {
                drop: None,
                suppressed,
            };
        }
        match what {
            Pointless::Wakeup => t.wakeups += 1,
            Pointless::Malformed => t.malformed += 1,
            Pointless::Spurious => t.spurious += 1,
        }
        let strikes = t.strikes.strike(now, valid);
        let over_rate = t.events() > TROUBLE_LIMIT;
        if !over_rate && strikes <= STRIKE_LIMIT {
            return Verdict {
                drop: None,
                suppressed,
            };
        }
        t.dropped = true;
        let rule = if over_rate {
            format!("more than {TROUBLE_LIMIT} such events a second")
        } else {
            format!(
                "{strikes} strikes: more than {STRIKE_LIMIT} such events not paid off by valid \
                 requests ({STRIKE_LEAK} forgiven a second)"
            )
        };
        Verdict {
            drop: Some(format!(
                "within the last second it made the server wake {} time(s) with nothing to \
                 take, answer {} malformed request(s) and wake {} time(s) with no room for \
                 answers ({rule})",
                t.wakeups, t.malformed, t.spurious
            )),
            suppressed,
        }
    }

    /// Whether a log line about the session may be written now (at most [`LOG_LIMIT`] a
    /// second; the others are counted), and the lines suppressed in a window that just closed.
    pub(super) fn may_log(&self) -> (bool, u32) {
        self.may_log_at(Instant::now())
    }

    /// [`Abuse::may_log`] at the moment `now`.
    fn may_log_at(&self, now: Instant) -> (bool, u32) {
        let mut t = self.t.lock();
        let suppressed = t.roll(now);
        let ok = t.lines < LOG_LIMIT;
        if ok {
            t.lines += 1;
        } else {
            t.suppressed += 1;
        }
        (ok, suppressed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn strikes_add_up_when_nothing_pays_them_off() {
        let t0 = Instant::now();
        let mut s = Strikes::new(t0);
        for i in 1..=50 {
            assert_eq!(s.strike(t0, 0), i);
        }
    }

    #[test]
    fn valid_requests_pay_strikes_off() {
        let t0 = Instant::now();
        let mut s = Strikes::new(t0);
        for _ in 0..30 {
            s.strike(t0, 0);
        }
        assert_eq!(s.strike(t0, 10), 21, "10 paid off, one added");
        assert_eq!(s.strike(t0, 1000), 1, "never below one after a strike");
        assert_eq!(
            s.strike(t0, 1000),
            2,
            "requests already counted pay nothing"
        );
    }

    #[test]
    fn strikes_leak_with_time() {
        let t0 = Instant::now();
        let mut s = Strikes::new(t0);
        for _ in 0..40 {
            s.strike(t0, 0);
        }
        assert_eq!(
            s.strike(t0 + Duration::from_secs(2), 0),
            21,
            "20 leaked in 2 s"
        );
        assert_eq!(
            s.strike(t0 + Duration::from_millis(2050), 0),
            22,
            "no leak in 50 ms"
        );
    }

    #[test]
    fn a_client_is_dropped_once_past_the_strike_limit() {
        let a = Abuse::new();
        // One moment for every event: no strike leaks away however slowly the test runs.
        let now = Instant::now();
        let mut dropped_at = None;
        for i in 1..=STRIKE_LIMIT + 10 {
            if let Some(why) = a.pointless_at(Pointless::Wakeup, 0, now).drop {
                assert!(why.contains("strikes"), "{why}");
                assert!(dropped_at.is_none(), "dropped twice");
                dropped_at = Some(i);
            }
        }
        assert_eq!(dropped_at, Some(STRIKE_LIMIT + 1));
    }

    #[test]
    fn valid_requests_keep_a_client_that_wakes_the_server_now_and_then() {
        let a = Abuse::new();
        let now = Instant::now();
        for i in 0..u64::from(TROUBLE_LIMIT) {
            assert!(a.pointless_at(Pointless::Spurious, i, now).drop.is_none());
        }
        assert!(
            a.pointless_at(Pointless::Spurious, 1000, now)
                .drop
                .is_some(),
            "one past the rate is dropped, whatever the strikes"
        );
    }

    #[test]
    fn log_lines_are_limited() {
        let a = Abuse::new();
        let now = Instant::now();
        let allowed = (0..LOG_LIMIT + 5).filter(|_| a.may_log_at(now).0).count();
        assert_eq!(allowed as u32, LOG_LIMIT);
        let later = now + Duration::from_secs(2);
        assert_eq!(
            a.may_log_at(later),
            (true, 5),
            "a new window; 5 were suppressed"
        );
    }
}
