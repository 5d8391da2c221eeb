//! Placement: which worker a new room goes to.
//!
//! Plain data and a clock passed in. The signal server keeps the rooms it
//! placed since each worker's last report ("pending"): until the report
//! that counts them arrives, they are added to the worker's load, so a burst
//! of new rooms is spread instead of piled on the worker that looked idle.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::report::{LoadReport, NodeState};

/// Load a new room is assumed to add before its worker reports it.
pub const PENDING_ROOM_STRESS: f64 = 0.05;
/// Ties in stress (idle workers) are broken by rooms: this much stress per
/// room, small enough not to outweigh a real difference in load.
pub const ROOM_TIE_BREAK: f64 = 0.001;
/// A placement is pending for at most this long (a lost report).
const PENDING_TTL: Duration = Duration::from_secs(3);

/// A worker as placement sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub report: LoadReport,
    /// When the report was received.
    pub at: Instant,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("no media worker is available")]
    NoWorker,
    #[error("every media worker is above the admission threshold")]
    Overloaded,
}

#[derive(Debug, Default)]
pub struct Placement {
    /// Rooms placed per node, with when.
    pending: HashMap<String, Vec<Instant>>,
}

impl Placement {
    /// The node with the lowest stress (counting pending rooms), among
    /// active nodes under `threshold`.
    pub fn choose(
        &mut self,
        nodes: &[NodeView],
        threshold: f64,
        now: Instant,
    ) -> Result<String, PlacementError> {
        let mut best: Option<(f64, &str)> = None;
        let mut any = false;
        for n in nodes {
            if n.report.state != NodeState::Active {
                continue;
            }
            any = true;
            let pending = self.pending_for(&n.report.id, n.at, now);
            let stress = n.report.stress + pending as f64 * PENDING_ROOM_STRESS;
            if stress >= threshold {
                continue;
            }
            let score = stress + (n.report.rooms.len() + pending) as f64 * ROOM_TIE_BREAK;
            if best.is_none_or(|(s, id)| score < s || (score == s && n.report.id.as_str() < id)) {
                best = Some((score, &n.report.id));
            }
        }
        match best {
            Some((_, id)) => {
                let id = id.to_string();
                self.pending.entry(id.clone()).or_default().push(now);
                Ok(id)
            }
            None if any => Err(PlacementError::Overloaded),
            None => Err(PlacementError::NoWorker),
        }
    }

    /// Rooms placed on `id` after its last report (received at `report_at`).
    fn pending_for(&mut self, id: &str, report_at: Instant, now: Instant) -> usize {
        let Some(v) = self.pending.get_mut(id) else {
            return 0;
        };
        v.retain(|t| *t >= report_at && now.saturating_duration_since(*t) < PENDING_TTL);
        v.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::report::test_report;

    fn node(id: &str, stress: f64, rooms: usize, at: Instant) -> NodeView {
        NodeView {
            report: test_report(id, stress, rooms),
            at,
        }
    }

    #[test]
    fn lowest_stress_wins() {
        let t = Instant::now();
        let mut p = Placement::default();
        let nodes = [
            node("a", 0.5, 0, t),
            node("b", 0.2, 0, t),
            node("c", 0.3, 0, t),
        ];
        assert_eq!(p.choose(&nodes, 0.9, t).unwrap(), "b");
    }

    #[test]
    fn a_burst_is_spread_before_reports_arrive() {
        let t = Instant::now();
        let mut p = Placement::default();
        let nodes = [
            node("a", 0.0, 0, t),
            node("b", 0.0, 0, t),
            node("c", 0.0, 0, t),
        ];
        let mut count: HashMap<String, usize> = HashMap::new();
        for i in 0..6 {
            let id = p.choose(&nodes, 0.9, t + Duration::from_millis(i)).unwrap();
            *count.entry(id).or_default() += 1;
        }
        assert_eq!(count.len(), 3);
        assert!(count.values().all(|c| *c == 2), "{count:?}");
    }

    #[test]
    fn a_new_report_replaces_the_pending_count() {
        let t = Instant::now();
        let mut p = Placement::default();
        let nodes = [node("a", 0.1, 0, t), node("b", 0.12, 0, t)];
        assert_eq!(p.choose(&nodes, 0.9, t).unwrap(), "a");
        // "a" now counts one pending room: 0.15 > 0.12.
        assert_eq!(p.choose(&nodes, 0.9, t).unwrap(), "b");
        // A report from "a" (counting its room, still 0.1) clears pending.
        let later = t + Duration::from_millis(500);
        let nodes = [node("a", 0.1, 1, later), node("b", 0.12, 1, t)];
        assert_eq!(p.choose(&nodes, 0.9, later).unwrap(), "a");
    }

    #[test]
    fn draining_and_overloaded_nodes_get_nothing() {
        let t = Instant::now();
        let mut p = Placement::default();
        let mut d = node("d", 0.0, 0, t);
        d.report.state = NodeState::Draining;
        assert_eq!(
            p.choose(&[d.clone()], 0.9, t),
            Err(PlacementError::NoWorker)
        );
        let busy = node("busy", 0.95, 0, t);
        assert_eq!(
            p.choose(&[d, busy], 0.9, t),
            Err(PlacementError::Overloaded)
        );
        assert_eq!(p.choose(&[], 0.9, t), Err(PlacementError::NoWorker));
    }

    #[test]
    fn a_busy_worker_gets_fewer_rooms() {
        let t = Instant::now();
        let mut p = Placement::default();
        let nodes = [
            node("busy", 0.4, 2, t),
            node("idle1", 0.05, 0, t),
            node("idle2", 0.05, 0, t),
        ];
        let mut busy = 0;
        for i in 0..6 {
            if p.choose(&nodes, 0.9, t + Duration::from_millis(i)).unwrap() == "busy" {
                busy += 1;
            }
        }
        assert_eq!(busy, 0);
    }
}
