//! Placement: which worker a new room goes to, and how much a room is
//! expected to weigh there.
//!
//! Plain data and a clock passed in. A worker's report shows a room's load
//! only seconds after the room was placed (people join, media starts, the
//! CPU figure is smoothed), so the rooms placed on a worker within
//! [`PENDING_FOR`] count as "pending": each adds the expected stress of a
//! room, so a burst of new rooms is spread instead of piled on the worker
//! that looked idle. The registry keeps these counts, shared by every
//! signal server (Redis), and the compare-and-set that places a room
//! checks that the chosen worker's count did not grow meanwhile: two
//! servers placing at the same instant do not both take the idle worker.

use std::time::{Duration, Instant};

use super::report::{LoadReport, NodeState};

/// How long a placed room counts as pending on its worker: its first
/// participants' handshakes (a second or two), then the smoothing of the
/// CPU figure (`report::CPU_SMOOTHING`). Counting it a little after its
/// load shows refuses slightly early in a surge rather than late.
pub const PENDING_FOR: Duration = Duration::from_secs(5);
/// The stress a new room is expected to add while the cluster has too few
/// rooms to tell: a meeting of four with video at the default capacity
/// (~2,400 packets per second of 50,000).
pub const DEFAULT_ROOM_STRESS: f64 = 0.05;
/// Rooms the cluster must carry before their average is believed.
const ROOMS_TO_LEARN: usize = 4;
/// Bounds of a learnt room's stress: never nearly free (rooms whose media
/// has not started yet would make a cluster in a burst look endless),
/// never more than a large share of a worker.
const ROOM_STRESS_BOUNDS: (f64, f64) = (0.01, 0.5);
/// Ties in stress (idle workers) are broken by rooms: this much stress per
/// room, small enough not to outweigh a real difference in load.
pub const ROOM_TIE_BREAK: f64 = 0.001;

/// A worker as placement sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub report: LoadReport,
    /// When the report was received.
    pub at: Instant,
    /// Rooms placed on it within [`PENDING_FOR`], by any signal server.
    pub pending: usize,
}

impl NodeView {
    /// Its stress once the rooms pending on it weigh what a room weighs.
    pub fn expected_stress(&self, room_stress: f64) -> f64 {
        self.report.admission_stress() + self.pending as f64 * room_stress
    }

    pub fn is_active(&self) -> bool {
        self.report.state == NodeState::Active
    }
}

/// What a room weighs on average in this cluster: the active workers'
/// stress over their calls (rooms of two or more: one person alone is no
/// call yet, and a burst of new rooms would make rooms look free), once
/// they carry a few; otherwise [`DEFAULT_ROOM_STRESS`].
pub fn room_stress(nodes: &[NodeView]) -> f64 {
    let (stress, rooms) = nodes
        .iter()
        .filter(|n| n.is_active())
        .fold((0.0, 0), |(s, r), n| {
            let calls = n.report.rooms.iter().filter(|r| r.participants >= 2);
            (s + n.report.admission_stress(), r + calls.count())
        });
    if rooms < ROOMS_TO_LEARN {
        return DEFAULT_ROOM_STRESS;
    }
    (stress / rooms as f64).clamp(ROOM_STRESS_BOUNDS.0, ROOM_STRESS_BOUNDS.1)
}

/// The active worker with the lowest expected stress that a new room of
/// `room_stress` still fits on: with it, the worker stays at or under
/// `limit`. A threshold is a level the room must not push a worker past,
/// not only one it must find it under: a worker just under the soft
/// threshold that took one more room would eat into the gap kept for
/// priority rooms, and one just under the hard threshold would be pushed
/// over its capacity (the first surge runs saw a priority room take a
/// worker from 0.93 to 1.0). A worker with nothing on it takes a room
/// below `limit` whatever the room weighs: that is what it is there for.
/// `None` if none fits (why is admission's to say).
pub fn choose(nodes: &[NodeView], room_stress: f64, limit: f64) -> Option<&NodeView> {
    let mut best: Option<(f64, &NodeView)> = None;
    for n in nodes.iter().filter(|n| n.is_active()) {
        let stress = n.expected_stress(room_stress);
        let empty = n.report.rooms.is_empty() && n.pending == 0;
        let fits = stress + room_stress <= limit || (empty && stress < limit);
        if !fits {
            continue;
        }
        let score = stress + (n.report.rooms.len() + n.pending) as f64 * ROOM_TIE_BREAK;
        let better = best.is_none_or(|(s, b)| {
            score < s || (score == s && n.report.id.as_str() < b.report.id.as_str())
        });
        if better {
            best = Some((score, n));
        }
    }
    best.map(|(_, n)| n)
}

#[cfg(test)]
pub(crate) fn test_node(id: &str, stress: f64, rooms: usize) -> NodeView {
    NodeView {
        report: super::report::test_report(id, stress, rooms),
        at: Instant::now(),
        pending: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn id(r: Option<&NodeView>) -> Option<String> {
        r.map(|n| n.report.id.clone())
    }

    #[test]
    fn lowest_stress_wins() {
        let nodes = [
            test_node("a", 0.5, 0),
            test_node("b", 0.2, 0),
            test_node("c", 0.3, 0),
        ];
        assert_eq!(id(choose(&nodes, 0.05, 0.9)).unwrap(), "b");
    }

    #[test]
    fn a_burst_is_spread_by_pending_rooms() {
        let mut nodes = [
            test_node("a", 0.0, 0),
            test_node("b", 0.0, 0),
            test_node("c", 0.0, 0),
        ];
        let mut count: HashMap<String, usize> = HashMap::new();
        for _ in 0..6 {
            let chosen = id(choose(&nodes, 0.05, 0.9)).unwrap();
            // The registry counts it pending there.
            nodes
                .iter_mut()
                .find(|n| n.report.id == chosen)
                .unwrap()
                .pending += 1;
            *count.entry(chosen).or_default() += 1;
        }
        assert_eq!(count.len(), 3);
        assert!(count.values().all(|c| *c == 2), "{count:?}");
    }

    #[test]
    fn pending_rooms_count_toward_the_limit() {
        let mut a = test_node("a", 0.6, 10);
        assert!(choose(std::slice::from_ref(&a), 0.05, 0.8).is_some());
        a.pending = 4; // 0.6 + 4 × 0.05, and the new room: over 0.8
        assert_eq!(id(choose(&[a], 0.05, 0.8)), None);
    }

    #[test]
    fn a_room_goes_only_where_it_stays_under_the_limit() {
        let under = test_node("a", 0.7, 5);
        assert_eq!(id(choose(&[under], 0.05, 0.8)).unwrap(), "a");
        // Below the limit, but the room would take it past.
        let near = test_node("a", 0.77, 5);
        assert_eq!(id(choose(&[near], 0.05, 0.8)), None);
        // An empty worker takes even a room heavier than its gap.
        let empty = test_node("e", 0.1, 0);
        assert_eq!(id(choose(&[empty], 0.3, 0.3)).unwrap(), "e");
    }

    #[test]
    fn draining_and_overloaded_nodes_get_nothing() {
        let mut d = test_node("d", 0.0, 0);
        d.report.state = NodeState::Draining;
        assert_eq!(id(choose(std::slice::from_ref(&d), 0.05, 0.9)), None);
        let busy = test_node("busy", 0.95, 0);
        assert_eq!(id(choose(&[d, busy], 0.05, 0.9)), None);
        assert_eq!(id(choose(&[], 0.05, 0.9)), None);
    }

    #[test]
    fn the_smoothed_stress_is_what_counts() {
        let mut a = test_node("a", 0.95, 0);
        a.report.stress_smoothed = Some(0.3);
        assert_eq!(id(choose(&[a], 0.05, 0.8)).unwrap(), "a");
    }

    /// `test_node`'s rooms have one participant; these have two.
    fn calls(id: &str, stress: f64, rooms: usize) -> NodeView {
        let mut n = test_node(id, stress, rooms);
        for r in &mut n.report.rooms {
            r.participants = 2;
        }
        n
    }

    #[test]
    fn a_rooms_stress_is_learnt_from_the_cluster() {
        // Too few calls to tell.
        let few = [calls("a", 0.3, 2)];
        assert_eq!(room_stress(&few), DEFAULT_ROOM_STRESS);
        // 0.6 over 6 calls and 0.2 over 2: 0.1 a call.
        let nodes = [calls("a", 0.6, 6), calls("b", 0.2, 2)];
        assert!((room_stress(&nodes) - 0.1).abs() < 1e-9);
        // People alone in their rooms are not calls yet.
        let alone = [test_node("a", 0.6, 6), test_node("b", 0.2, 2)];
        assert_eq!(room_stress(&alone), DEFAULT_ROOM_STRESS);
        // Many calls whose media has not started: bounded below.
        let idle = [calls("a", 0.01, 100)];
        assert_eq!(room_stress(&idle), ROOM_STRESS_BOUNDS.0);
    }
}
