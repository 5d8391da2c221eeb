//! Admission in a surge: who may start a room or join one, by the
//! workers' smoothed stress and two thresholds.
//!
//! - Below the **soft** threshold a worker takes new ordinary rooms, as
//!   long as one more room of the usual weight keeps it under
//!   (`placement::choose`).
//! - Between soft and **hard** it takes only joins to rooms it already
//!   carries (a family is never cut in half) and new **priority** rooms
//!   (a signed grant, `signal::grant`): the headroom between the two is
//!   kept for them.
//! - Above hard it takes nothing; what it carries goes on untouched. No
//!   call is ever dropped or degraded to make room.
//!
//! An operator may also turn "redirect new rooms" on ahead of a surge:
//! ordinary new rooms are then sent to the partner instances at once.
//! Plain data, no clock: the decisions are tested on made-up workers.

use super::placement::{choose, room_stress, NodeView};

/// The two thresholds, `0 < soft <= hard <= 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub soft: f64,
    pub hard: f64,
}

/// What is asked of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A room nobody is in yet.
    NewRoom { priority: bool },
    /// A room that is running, on its worker.
    Join,
}

/// Why an entry was refused: each has its own message for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("every media worker is above the threshold for new rooms")]
    Busy,
    #[error("new rooms are sent to partner instances for now")]
    Redirected,
    #[error("this call's media worker is above its hard threshold")]
    Full,
    #[error("no media worker is available")]
    NoWorker,
}

impl Thresholds {
    /// The stress under which a worker takes this entry.
    pub fn limit(&self, entry: Entry) -> f64 {
        match entry {
            Entry::NewRoom { priority: false } => self.soft,
            Entry::NewRoom { priority: true } | Entry::Join => self.hard,
        }
    }

    /// Whether `node`, which carries the room, takes one more person.
    pub fn admit_join(&self, node: &NodeView) -> Result<(), Refusal> {
        if node.report.admission_stress() < self.limit(Entry::Join) {
            Ok(())
        } else {
            Err(Refusal::Full)
        }
    }

    /// The worker a new room goes to.
    pub fn place_new<'a>(
        &self,
        nodes: &'a [NodeView],
        priority: bool,
        redirect: bool,
    ) -> Result<&'a NodeView, Refusal> {
        if redirect && !priority {
            return Err(Refusal::Redirected);
        }
        let limit = self.limit(Entry::NewRoom { priority });
        choose(nodes, room_stress(nodes), limit).ok_or_else(|| {
            if nodes.iter().any(NodeView::is_active) {
                Refusal::Busy
            } else {
                Refusal::NoWorker
            }
        })
    }

    /// How many more ordinary rooms of the usual size the cluster takes
    /// before it refuses: on each active worker, the stress left under the
    /// soft threshold over what a room weighs. The figure an operator, an
    /// alert or an autoscaler watches to add a worker before refusals.
    pub fn headroom(&self, nodes: &[NodeView]) -> usize {
        let per_room = room_stress(nodes);
        nodes
            .iter()
            .filter(|n| n.is_active())
            .map(|n| {
                let left = self.soft - n.expected_stress(per_room);
                // A hair under a whole room is not a room.
                (left / per_room + 1e-9).floor().max(0.0) as usize
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::placement::{test_node, DEFAULT_ROOM_STRESS};
    use crate::cluster::report::NodeState;

    const T: Thresholds = Thresholds {
        soft: 0.8,
        hard: 0.95,
    };

    #[test]
    fn above_soft_only_joins_and_priority_rooms() {
        let nodes = [test_node("a", 0.85, 0), test_node("b", 0.9, 0)];
        assert_eq!(T.place_new(&nodes, false, false).err(), Some(Refusal::Busy));
        assert_eq!(T.place_new(&nodes, true, false).unwrap().report.id, "a");
        assert!(T.admit_join(&nodes[1]).is_ok());
    }

    #[test]
    fn above_hard_nothing() {
        let nodes = [test_node("a", 0.96, 0), test_node("b", 0.97, 0)];
        assert_eq!(T.place_new(&nodes, true, false).err(), Some(Refusal::Busy));
        assert_eq!(T.admit_join(&nodes[0]), Err(Refusal::Full));
    }

    #[test]
    fn one_worker_under_soft_takes_the_new_room() {
        let nodes = [test_node("a", 0.9, 0), test_node("b", 0.5, 0)];
        assert_eq!(T.place_new(&nodes, false, false).unwrap().report.id, "b");
    }

    #[test]
    fn redirect_sends_ordinary_rooms_away_but_not_priority_ones() {
        let nodes = [test_node("a", 0.1, 0)];
        assert_eq!(
            T.place_new(&nodes, false, true).err(),
            Some(Refusal::Redirected)
        );
        assert_eq!(T.place_new(&nodes, true, true).unwrap().report.id, "a");
        // Joins to running rooms are not redirected.
        assert!(T.admit_join(&nodes[0]).is_ok());
    }

    #[test]
    fn no_worker_is_not_busy() {
        let mut d = test_node("d", 0.0, 0);
        d.report.state = NodeState::Draining;
        assert_eq!(
            T.place_new(std::slice::from_ref(&d), true, false).err(),
            Some(Refusal::NoWorker)
        );
        assert_eq!(T.place_new(&[], true, false).err(), Some(Refusal::NoWorker));
        // A draining worker beside a busy one: busy, not none.
        let busy = test_node("busy", 0.97, 0);
        assert_eq!(
            T.place_new(&[d, busy], true, false).err(),
            Some(Refusal::Busy)
        );
    }

    #[test]
    fn headroom_counts_rooms_of_the_usual_size_under_soft() {
        // Few rooms: the default weight of a room.
        let idle = [test_node("a", 0.0, 0), test_node("b", 0.0, 0)];
        let per_worker = (0.8 / DEFAULT_ROOM_STRESS).floor() as usize;
        assert_eq!(T.headroom(&idle), 2 * per_worker);
        // 10 calls weigh 0.5 (0.05 each): a has 0.4 left → 8 rooms; b,
        // with 2 pending, 0.8 - 0.1 - 0.1 → 12.
        let mut nodes = [test_node("a", 0.4, 8), test_node("b", 0.1, 2)];
        for r in nodes.iter_mut().flat_map(|n| &mut n.report.rooms) {
            r.participants = 3;
        }
        nodes[1].pending = 2;
        assert_eq!(T.headroom(&nodes), 8 + 12);
        // A draining worker and one above soft add nothing.
        let mut d = test_node("d", 0.0, 5);
        d.report.state = NodeState::Draining;
        let full = test_node("f", 0.9, 5);
        assert_eq!(T.headroom(&[d, full]), 0);
    }
}
