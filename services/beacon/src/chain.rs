//! The discovery chain's order: which step found the mesh. Pure; the service feeds it what
//! each step has found so far.

use std::time::Duration;

/// Which step of the chain found the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    /// Step 1, the UDP beacon.
    Beacon,
    /// Step 2, mDNS.
    Mdns,
    /// Step 3, the candidate list.
    Candidates,
}

/// What the steps have to offer right now.
#[derive(Debug, Clone, Copy)]
pub struct Offers {
    /// The beacon heard a member (or, while joining, a candidate) of our mesh.
    pub beacon: bool,
    /// mDNS resolved a record of our mesh.
    pub mdns: bool,
    /// Candidates are pinned.
    pub candidates: bool,
    /// Whether step 1 or 2 is switched on at all.
    pub earlier_steps_on: bool,
    /// Whether step 1, the beacon, is switched on.
    pub beacon_on: bool,
}

/// The step that wins now, if any: the first in order that found the mesh. The order is strict:
/// mDNS wins only once the beacon had one interval to answer (on a loaded machine mDNS can
/// resolve first), and candidates, which cannot be checked before admission, wait until the
/// earlier steps had three intervals — unless those steps are switched off.
pub fn winner(offers: Offers, waited: Duration, interval: Duration) -> Option<FoundBy> {
    if offers.beacon {
        Some(FoundBy::Beacon)
    } else if offers.mdns && (!offers.beacon_on || waited >= interval) {
        Some(FoundBy::Mdns)
    } else if offers.candidates && (!offers.earlier_steps_on || waited >= interval * 3) {
        Some(FoundBy::Candidates)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(1);

    fn offers(beacon: bool, mdns: bool, candidates: bool, on: bool) -> Offers {
        Offers {
            beacon,
            mdns,
            candidates,
            earlier_steps_on: on,
            beacon_on: on,
        }
    }

    #[test]
    fn the_first_step_that_found_wins() {
        let now = Duration::from_secs(10);
        assert_eq!(
            winner(offers(true, true, true, true), now, I),
            Some(FoundBy::Beacon)
        );
        assert_eq!(
            winner(offers(false, true, true, true), now, I),
            Some(FoundBy::Mdns)
        );
        assert_eq!(
            winner(offers(false, false, true, true), now, I),
            Some(FoundBy::Candidates)
        );
        assert_eq!(winner(offers(false, false, false, true), now, I), None);
    }

    #[test]
    fn mdns_waits_one_interval_for_the_beacon_unless_it_is_off() {
        let early = Duration::from_millis(500);
        assert_eq!(winner(offers(false, true, false, true), early, I), None);
        assert_eq!(
            winner(offers(true, true, false, true), early, I),
            Some(FoundBy::Beacon)
        );
        assert_eq!(
            winner(offers(false, true, false, true), I, I),
            Some(FoundBy::Mdns)
        );
        let beacon_off = Offers {
            beacon_on: false,
            ..offers(false, true, false, true)
        };
        assert_eq!(winner(beacon_off, early, I), Some(FoundBy::Mdns));
    }

    #[test]
    fn candidates_wait_for_the_earlier_steps_unless_they_are_off() {
        let early = Duration::from_millis(500);
        assert_eq!(winner(offers(false, false, true, true), early, I), None);
        assert_eq!(
            winner(offers(false, false, true, false), early, I),
            Some(FoundBy::Candidates)
        );
        assert_eq!(
            winner(offers(false, false, true, true), I * 3, I),
            Some(FoundBy::Candidates)
        );
    }
}
