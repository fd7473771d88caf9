//! When the next Graph call may go. Two kinds of deadline, one per scope in one
//! map: Facebook's throttle pauses (a page's, or the whole app's, for its
//! estimate) and the pacing of one page's calls (Facebook allows about 2 per
//! second). A rate limiter such as governor could pace, but cannot hold a pause
//! of Facebook's length; a deadline can do both, so there is one mechanism.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What a throttle stops: every call of the app, or one page's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    App,
    Page(String),
}

impl Scope {
    pub(crate) fn of(page: Option<&str>) -> Self {
        page.map_or(Self::App, |p| Self::Page(p.to_owned()))
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Deadlines {
    /// No call before this (a throttle pause).
    paused_until: Option<Instant>,
    /// The next paced call's earliest start.
    next_paced: Option<Instant>,
}

/// What [`Gate::admit`] found.
pub(crate) enum Admission {
    /// Go now.
    Go,
    /// Wait this long (a pause, or this call's paced slot), then go.
    After(Wait),
}

pub(crate) enum Wait {
    /// A throttle pause: ask again afterwards, the pause may have grown.
    Paused(Duration),
    /// This call's paced slot, already reserved: go after it.
    Paced(Duration),
}

#[derive(Debug)]
pub(crate) struct Gate {
    /// Smallest spacing of two paced calls for one page; `None`: not paced.
    interval: Option<Duration>,
    deadlines: Mutex<HashMap<Scope, Deadlines>>,
}

impl Gate {
    pub(crate) fn new(interval: Option<Duration>) -> Self {
        Self {
            interval: interval.filter(|d| !d.is_zero()),
            deadlines: Mutex::default(),
        }
    }

    /// Stops calls of `scope` for `pause` (a longer pause already set stays).
    pub(crate) fn pause(&self, scope: Scope, pause: Duration) {
        let until = Instant::now() + pause;
        let mut map = self.deadlines.lock().expect("gate lock");
        let slot = &mut map.entry(scope).or_default().paused_until;
        *slot = Some(slot.map_or(until, |t| t.max(until)));
    }

    /// Whether a call for `page` may go now. With `paced`, a call that may go
    /// reserves its page's next slot, so concurrent callers are spaced too.
    pub(crate) fn admit(&self, page: Option<&str>, paced: bool) -> Admission {
        let now = Instant::now();
        let mut map = self.deadlines.lock().expect("gate lock");
        let paused = [Some(Scope::App), page.map(|p| Scope::Page(p.to_owned()))]
            .into_iter()
            .flatten()
            .filter_map(|s| map.get(&s).and_then(|d| d.paused_until))
            .filter(|until| *until > now)
            .max();
        if let Some(until) = paused {
            return Admission::After(Wait::Paused(until - now));
        }
        let (Some(page), Some(interval), true) = (page, self.interval, paced) else {
            return Admission::Go;
        };
        let slot = &mut map
            .entry(Scope::Page(page.to_owned()))
            .or_default()
            .next_paced;
        let start = slot.map_or(now, |t| t.max(now));
        *slot = Some(start + interval);
        if start > now {
            Admission::After(Wait::Paced(start - now))
        } else {
            Admission::Go
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(a: Admission) -> Option<Duration> {
        match a {
            Admission::Go => None,
            Admission::After(Wait::Paused(d) | Wait::Paced(d)) => Some(d),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn paced_calls_of_one_page_are_spaced_and_other_pages_are_not() {
        let gate = Gate::new(Some(Duration::from_millis(500)));
        assert!(waits(gate.admit(Some("p1"), true)).is_none());
        assert_eq!(
            waits(gate.admit(Some("p1"), true)),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            waits(gate.admit(Some("p1"), true)),
            Some(Duration::from_millis(1000))
        );
        assert!(waits(gate.admit(Some("p2"), true)).is_none());
        assert!(waits(gate.admit(Some("p1"), false)).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_app_pause_stops_every_page_and_a_page_pause_only_its_own() {
        let gate = Gate::new(None);
        gate.pause(Scope::of(Some("p1")), Duration::from_secs(5));
        assert!(matches!(
            gate.admit(Some("p1"), true),
            Admission::After(Wait::Paused(d)) if d == Duration::from_secs(5)
        ));
        assert!(matches!(gate.admit(Some("p2"), true), Admission::Go));
        gate.pause(Scope::App, Duration::from_secs(9));
        assert!(matches!(
            gate.admit(Some("p2"), true),
            Admission::After(Wait::Paused(d)) if d == Duration::from_secs(9)
        ));
        // A shorter pause does not shorten a longer one.
        gate.pause(Scope::App, Duration::from_secs(1));
        assert_eq!(waits(gate.admit(None, false)), Some(Duration::from_secs(9)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(matches!(gate.admit(Some("p1"), true), Admission::Go));
    }
}
