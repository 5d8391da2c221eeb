//! The registry of one signal server (`parloir serve`, or `parloir signal`
//! without Redis): maps behind locks, written by the reports it receives.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use futures_util::future::{self, BoxFuture, FutureExt};

use super::{Moment, Registry, Result, NODE_TTL};
use crate::cluster::placement::NodeView;
use crate::cluster::report::{LoadReport, NodeState};

#[derive(Default)]
pub struct Memory {
    nodes: Mutex<HashMap<String, (LoadReport, Instant)>>,
    draining: Mutex<HashSet<String>>,
    rooms: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Nothing here waits: each call is done by the time its future is made.
fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, Result<T>> {
    future::ready(Ok(value)).boxed()
}

impl Memory {
    fn nodes_at(&self, now: Moment) -> Vec<NodeView> {
        let mut map = lock(&self.nodes);
        map.retain(|_, (_, at)| now.instant.saturating_duration_since(*at) < NODE_TTL);
        let draining = lock(&self.draining);
        let mut nodes: Vec<NodeView> = map
            .values()
            .map(|(r, at)| {
                let mut report = r.clone();
                if draining.contains(&r.id) {
                    report.state = NodeState::Draining;
                }
                NodeView { report, at: *at }
            })
            .collect();
        nodes.sort_by(|a, b| a.report.id.cmp(&b.report.id));
        nodes
    }

    fn assign(&self, room: &str, node: &str, expect: Option<&str>) -> String {
        let mut rooms = lock(&self.rooms);
        let current = rooms.get(room).map(String::as_str);
        if current == expect {
            rooms.insert(room.to_string(), node.to_string());
            node.to_string()
        } else {
            current.unwrap_or(node).to_string()
        }
    }
}

impl Registry for Memory {
    fn put_report<'a>(&'a self, report: &'a LoadReport, now: Moment) -> BoxFuture<'a, Result<()>> {
        lock(&self.nodes).insert(report.id.clone(), (report.clone(), now.instant));
        ready(())
    }

    fn nodes(&self, now: Moment) -> BoxFuture<'_, Result<Vec<NodeView>>> {
        ready(self.nodes_at(now))
    }

    fn set_draining<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        lock(&self.draining).insert(id.to_string());
        ready(())
    }

    fn room_node<'a>(
        &'a self,
        room: &'a str,
        _now: Moment,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        ready(lock(&self.rooms).get(room).cloned())
    }

    fn assign_room<'a>(
        &'a self,
        room: &'a str,
        node: &'a str,
        expect: Option<&'a str>,
        _now: Moment,
    ) -> BoxFuture<'a, Result<String>> {
        ready(self.assign(room, node, expect))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::report::test_report;
    use std::time::Duration;

    fn report(id: &str) -> LoadReport {
        test_report(id, 0.0, 1)
    }

    #[tokio::test]
    async fn memory_rooms_compare_and_set() {
        let r = Memory::default();
        let t = Moment::now();
        assert_eq!(r.assign_room("room", "a", None, t).await.unwrap(), "a");
        // A second placer that also saw "unplaced" loses.
        assert_eq!(r.assign_room("room", "b", None, t).await.unwrap(), "a");
        // Re-placing after "a" died succeeds once.
        assert_eq!(r.assign_room("room", "b", Some("a"), t).await.unwrap(), "b");
        assert_eq!(r.assign_room("room", "c", Some("a"), t).await.unwrap(), "b");
        assert_eq!(r.room_node("room", t).await.unwrap().as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn memory_nodes_and_drain_flag() {
        let r = Memory::default();
        let t = Moment::now();
        r.put_report(&report("w1"), t).await.unwrap();
        r.put_report(&report("w2"), t).await.unwrap();
        r.set_draining("w2").await.unwrap();
        let nodes = r.nodes(t).await.unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].report.state, NodeState::Active);
        assert_eq!(nodes[1].report.state, NodeState::Draining);
    }
    #[tokio::test]
    async fn a_worker_silent_for_the_ttl_is_dead() {
        let r = Memory::default();
        let t = Moment::now();
        r.put_report(&report("w1"), t).await.unwrap();
        r.put_report(&report("w2"), t + Duration::from_secs(2))
            .await
            .unwrap();
        let later = t + NODE_TTL + Duration::from_millis(1);
        let nodes = r.nodes(later).await.unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].report.id, "w2");
        assert_eq!(nodes[0].at, (t + Duration::from_secs(2)).instant);
    }
}
