//! The registry of one signal server (`parloir serve`, or `parloir signal`
//! without Redis): maps behind locks, written by the reports it receives.
//!
//! What is forgotten, and when, so that memory follows the live cluster and
//! not its history: a worker silent for [`NODE_TTL`] (with its drain flag:
//! a worker that comes back under the same id is a new process), and a room
//! neither placed nor listed by its worker's reports for [`ROOM_GRACE`].
//! Forgetting is swept at most once per `SWEEP_EVERY`, from reports,
//! which arrive twice a second from each worker while the cluster is in
//! use; an assignment past its grace and not swept yet reads as absent.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::{self, BoxFuture, FutureExt};

use super::{Assigned, Moment, Registry, Result, NODE_TTL, OWNED_FOR, ROOM_GRACE};
use crate::cluster::placement::{NodeView, PENDING_FOR};
use crate::cluster::report::{LoadReport, NodeState};
use crate::state_dir::{DoorWriter, Doors, Owner, OwnerWriter, Owners};
use crate::worker::{DoorSettings, RETURN_WINDOW};

/// Sweeps cost a pass over every room: once a second, not once a report.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Rooms owned at most: a new room past it has no owner (its first in
/// moderates, as before owners), and rooms owned keep theirs. Each owner
/// written makes the file anew (about 100 bytes each).
pub const MAX_OWNERS: usize = 10_000;
/// A claim renewed less than this after its last renewal is left as it
/// was: a month counted from the day's first visit.
const RENEW_EVERY_MS: u64 = 24 * 3600 * 1000;

#[derive(Default)]
pub struct Memory {
    nodes: Mutex<Nodes>,
    rooms: Mutex<Rooms>,
    owners: Mutex<OwnerBook>,
    redirect: AtomicBool,
}

/// Who owns which room, by the room's name, or by its digest under the
/// state folder's key when they are kept on disk.
#[derive(Default)]
struct OwnerBook {
    owners: Owners,
    key: Option<String>,
    writer: Option<OwnerWriter>,
}

impl OwnerBook {
    fn room(&self, room: &str) -> String {
        match &self.key {
            Some(key) => crate::privacy::room_digest(room, key),
            None => room.to_string(),
        }
    }

    fn owner(&self, room: &str, now_ms: u64) -> Option<String> {
        let owner = self.owners.get(&self.room(room))?;
        (owner.until_ms > now_ms).then(|| owner.key.clone())
    }

    fn claim(&mut self, room: &str, digest: &str, now_ms: u64) -> bool {
        let room = self.room(room);
        let until_ms = now_ms.saturating_add(OWNED_FOR.as_millis() as u64);
        if let Some(o) = self.owners.get(&room) {
            let live = o.until_ms > now_ms;
            if live && !crate::secret::equal(o.key.as_bytes(), digest.as_bytes()) {
                return false;
            }
            // The owner's joins of one day renew it once: the file is not
            // rewritten whole at each of them.
            if live && until_ms.saturating_sub(o.until_ms) < RENEW_EVERY_MS {
                return true;
            }
        } else if self.owners.len() >= MAX_OWNERS {
            self.owners.retain(|_, o| o.until_ms > now_ms);
            if self.owners.len() >= MAX_OWNERS {
                tracing::warn!("{MAX_OWNERS} rooms owned: a new room has no owner");
                return false;
            }
        }
        let owner = Owner {
            key: digest.to_string(),
            until_ms,
        };
        self.owners.insert(room, owner);
        if let Some(w) = &self.writer {
            w.write(self.owners.clone());
        }
        true
    }
}

#[derive(Default)]
struct Nodes {
    /// Each worker's last report, with when it was received.
    reports: HashMap<String, (LoadReport, Instant)>,
    draining: HashSet<String>,
}

#[derive(Default)]
struct Rooms {
    assigned: HashMap<String, Assignment>,
    /// When rooms were placed, per node, within `PENDING_FOR`.
    pending: HashMap<String, Vec<Instant>>,
    swept: Option<Instant>,
    /// `parloir serve`'s doors on disk, when it keeps them.
    kept: Option<KeptDoors>,
}

/// The doors a `serve` process keeps across its restarts (`state_dir.rs`),
/// by the digest of their room's name.
struct KeptDoors {
    /// Read at start: given to the rooms made anew until their people had
    /// their time to come back.
    restored: HashMap<String, (DoorSettings, Instant)>,
    /// As last written.
    written: Doors,
    writer: DoorWriter,
    /// The state folder's key, for the rooms' digests.
    key: String,
}

impl KeptDoors {
    /// Writes the doors of live rooms and of those still awaited, if they
    /// changed.
    fn keep(&mut self, assigned: &HashMap<String, Assignment>, now: Instant) {
        self.restored.retain(|_, (_, until)| now < *until);
        let live = assigned
            .iter()
            .filter(|(_, a)| a.live(now))
            .filter_map(|(room, a)| Some((self.digest(room), a.door.as_ref()?)));
        let awaited = self
            .restored
            .iter()
            .map(|(digest, (door, _))| (digest.clone(), door));
        let doors: Doors = awaited
            .chain(live)
            .filter(|(_, door)| !door.is_open())
            .map(|(digest, door)| (digest, door.clone()))
            .collect();
        if doors != self.written {
            self.writer.write(doors.clone());
            self.written = doors;
        }
    }

    fn digest(&self, room: &str) -> String {
        crate::privacy::room_digest(room, &self.key)
    }

    /// The door kept for `room`, while its people may come back.
    fn restored(&self, room: &str, now: Instant) -> Option<DoorSettings> {
        let (door, until) = self.restored.get(&self.digest(room))?;
        (now < *until).then(|| door.clone())
    }
}

struct Assignment {
    node: String,
    /// When it was placed, or last listed by its worker's report.
    fresh: Instant,
    /// What its moderators shut it with, as its worker last reported.
    door: Option<DoorSettings>,
}

impl Assignment {
    fn live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.fresh) < ROOM_GRACE
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Nothing here waits: each call is done by the time its future is made.
fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, Result<T>> {
    future::ready(Ok(value)).boxed()
}

impl Nodes {
    fn forget_dead(&mut self, now: Instant) {
        let draining = &mut self.draining;
        self.reports.retain(|id, (_, at)| {
            let live = now.saturating_duration_since(*at) < NODE_TTL;
            if !live {
                draining.remove(id);
            }
            live
        });
    }
}

/// Keeps the placements of `placed` still pending at `now`; how many.
fn keep_pending(placed: &mut Vec<Instant>, now: Instant) -> usize {
    placed.retain(|t| now.saturating_duration_since(*t) < PENDING_FOR);
    placed.len()
}

impl Rooms {
    fn live(&self, room: &str, now: Instant) -> Option<&str> {
        self.assigned
            .get(room)
            .filter(|a| a.live(now))
            .map(|a| a.node.as_str())
    }

    /// Keeps the rooms `report` lists that are assigned to its worker (a
    /// worker still holding a room that was moved elsewhere keeps nothing).
    fn refresh(&mut self, report: &LoadReport, now: Instant) {
        for room in &report.rooms {
            if let Some(a) = self.assigned.get_mut(&room.room) {
                if a.node == report.id {
                    a.fresh = now;
                    a.door = room.door.clone();
                }
            }
            // Made anew: its door is now the one its worker reports.
            if let Some(kept) = &mut self.kept {
                let digest = kept.digest(&room.room);
                kept.restored.remove(&digest);
            }
        }
        if let Some(kept) = &mut self.kept {
            kept.keep(&self.assigned, now);
        }
    }

    /// Rooms placed on `node` within `PENDING_FOR` of `now`.
    fn pending(&mut self, node: &str, now: Instant) -> usize {
        let Some(placed) = self.pending.get_mut(node) else {
            return 0;
        };
        let n = keep_pending(placed, now);
        if n == 0 {
            self.pending.remove(node);
        }
        n
    }

    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
        {
            return;
        }
        self.swept = Some(now);
        self.assigned.retain(|_, a| a.live(now));
        self.pending
            .retain(|_, placed| keep_pending(placed, now) > 0);
    }
}

impl Memory {
    /// A registry for `parloir serve` that keeps its rooms' doors across
    /// restarts: `doors` as read from its state folder (by the digest of
    /// their room's name under `key`), given to rooms made anew within
    /// [`RETURN_WINDOW`] of `now`, and `writer` to keep them as they change.
    pub fn keeping_doors(doors: Doors, writer: DoorWriter, key: String, now: Instant) -> Memory {
        let restored = doors
            .clone()
            .into_iter()
            .map(|(room, door)| (room, (door, now + RETURN_WINDOW)))
            .collect();
        let memory = Memory::default();
        lock(&memory.rooms).kept = Some(KeptDoors {
            restored,
            written: doors,
            writer,
            key,
        });
        memory
    }

    /// Keeps rooms' owners across restarts too: `owners` as read from the
    /// state folder (by the digest of their room's name under `key`), and
    /// `writer` to keep them as they change.
    pub fn keeping_owners(self, owners: Owners, writer: OwnerWriter, key: String) -> Memory {
        *lock(&self.owners) = OwnerBook {
            owners,
            key: Some(key),
            writer: Some(writer),
        };
        self
    }

    fn put(&self, report: &LoadReport, now: Instant) {
        {
            let mut nodes = lock(&self.nodes);
            // Before the insert: a worker back after it was dead starts
            // without the drain flag of its previous process.
            nodes.forget_dead(now);
            nodes
                .reports
                .insert(report.id.clone(), (report.clone(), now));
        }
        let mut rooms = lock(&self.rooms);
        rooms.refresh(report, now);
        rooms.sweep(now);
    }

    fn nodes_at(&self, now: Instant) -> Vec<NodeView> {
        let mut nodes = lock(&self.nodes);
        let mut rooms = lock(&self.rooms);
        nodes.forget_dead(now);
        let mut out: Vec<NodeView> = nodes
            .reports
            .values()
            .map(|(r, at)| {
                let mut report = r.clone();
                if nodes.draining.contains(&r.id) {
                    report.state = NodeState::Draining;
                }
                NodeView {
                    pending: rooms.pending(&r.id, now),
                    report,
                    at: *at,
                }
            })
            .collect();
        out.sort_by(|a, b| a.report.id.cmp(&b.report.id));
        out
    }

    fn assign(
        &self,
        room: &str,
        node: &str,
        expect: Option<&str>,
        seen: usize,
        now: Instant,
    ) -> Assigned {
        let mut rooms = lock(&self.rooms);
        if let Some(current) = rooms.live(room, now).filter(|c| Some(*c) != expect) {
            return Assigned::Elsewhere(current.to_string());
        }
        if rooms.pending(node, now) > seen {
            return Assigned::Raced;
        }
        // A room moved off a dead worker keeps its door; one placed anew
        // after it was forgotten starts open.
        let door = rooms
            .assigned
            .get(room)
            .filter(|a| a.live(now))
            .and_then(|a| a.door.clone());
        rooms.assigned.insert(
            room.to_string(),
            Assignment {
                node: node.to_string(),
                fresh: now,
                door,
            },
        );
        rooms.pending.entry(node.to_string()).or_default().push(now);
        Assigned::Placed
    }

    /// Assignments held, forgotten or not yet.
    #[cfg(test)]
    fn held(&self) -> usize {
        lock(&self.rooms).assigned.len()
    }
}

impl Registry for Memory {
    fn put_report<'a>(&'a self, report: &'a LoadReport, now: Moment) -> BoxFuture<'a, Result<()>> {
        self.put(report, now.instant);
        ready(())
    }

    fn nodes(&self, now: Moment) -> BoxFuture<'_, Result<Vec<NodeView>>> {
        ready(self.nodes_at(now.instant))
    }

    fn set_draining<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        lock(&self.nodes).draining.insert(id.to_string());
        ready(())
    }

    fn room_node<'a>(
        &'a self,
        room: &'a str,
        now: Moment,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        ready(
            lock(&self.rooms)
                .live(room, now.instant)
                .map(str::to_string),
        )
    }

    fn assign_room<'a>(
        &'a self,
        room: &'a str,
        node: &'a str,
        expect: Option<&'a str>,
        seen: usize,
        now: Moment,
    ) -> BoxFuture<'a, Result<Assigned>> {
        ready(self.assign(room, node, expect, seen, now.instant))
    }

    fn door<'a>(
        &'a self,
        room: &'a str,
        now: Moment,
    ) -> BoxFuture<'a, Result<Option<DoorSettings>>> {
        let rooms = lock(&self.rooms);
        let live = rooms.assigned.get(room).filter(|a| a.live(now.instant));
        let restored = || rooms.kept.as_ref()?.restored(room, now.instant);
        // Placed but not yet reported by its worker: the door kept on disk.
        ready(live.and_then(|a| a.door.clone()).or_else(restored))
    }

    fn owner<'a>(&'a self, room: &'a str, now: Moment) -> BoxFuture<'a, Result<Option<String>>> {
        ready(lock(&self.owners).owner(room, now.unix_ms))
    }

    fn claim<'a>(
        &'a self,
        room: &'a str,
        digest: &'a str,
        now: Moment,
    ) -> BoxFuture<'a, Result<bool>> {
        ready(lock(&self.owners).claim(room, digest, now.unix_ms))
    }

    fn redirect(&self) -> BoxFuture<'_, Result<bool>> {
        ready(self.redirect.load(Ordering::Relaxed))
    }

    fn set_redirect(&self, on: bool) -> BoxFuture<'_, Result<()>> {
        self.redirect.store(on, Ordering::Relaxed);
        ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::registry::contract;
    use crate::cluster::report::{test_listing, test_report};
    use Assigned::{Elsewhere, Placed};

    /// Tests of rooms, not of pending counts: any count was seen.
    const ANY: usize = usize::MAX;

    fn report(id: &str) -> LoadReport {
        test_report(id, 0.0, 1)
    }

    #[tokio::test]
    async fn memory_rooms_compare_and_set() {
        super::super::contract::placement_is_a_compare_and_set(&Memory::default(), Moment::now())
            .await;
    }

    #[tokio::test]
    async fn memory_pending_rooms_are_shared() {
        super::super::contract::pending_rooms_are_shared(&Memory::default(), Moment::now()).await;
    }

    #[tokio::test]
    async fn memory_doors() {
        let r = Memory::default();
        let t = Moment::now();
        contract::a_door_is_kept_with_its_room(&r, t).await;
        // Forgotten with the room: a room of that name placed later is open.
        let shut = contract::listing_with_door("b", &["room"], Some(&contract::lobby_only()));
        r.put_report(&shut, t).await.unwrap();
        assert!(r.door("room", t).await.unwrap().is_some());
        let later = t + ROOM_GRACE + SWEEP_EVERY;
        assert_eq!(r.door("room", later).await.unwrap(), None);
        assert_eq!(
            r.assign_room("room", "c", None, ANY, later).await.unwrap(),
            Placed
        );
        assert_eq!(r.door("room", later).await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_owners() {
        contract::a_room_has_one_owner_for_a_time(&Memory::default(), Moment::now()).await;
    }

    #[tokio::test]
    async fn memory_redirect() {
        super::super::contract::redirect_is_a_shared_switch(&Memory::default()).await;
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
    /// Reports of `node` listing `rooms` every 500 ms from `from` to `to`.
    async fn reports(r: &Memory, node: &str, rooms: &[String], from: Moment, to: Moment) {
        let mut at = from;
        while at.instant <= to.instant {
            r.put_report(&test_listing(node, rooms), at).await.unwrap();
            at = at + Duration::from_millis(500);
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[tokio::test]
    async fn rooms_that_ended_are_forgotten_after_the_grace() {
        let r = Memory::default();
        let t = Moment::now();
        let rooms: Vec<String> = (0..1000).map(|i| format!("room{i}")).collect();
        for room in &rooms {
            assert_eq!(
                r.assign_room(room, "w1", None, ANY, t).await.unwrap(),
                Placed
            );
        }
        // The calls go on for a minute, then end: the worker lists nothing.
        let last = t + secs(60.0);
        reports(&r, "w1", &rooms, t + secs(0.5), last).await;
        assert_eq!(r.held(), 1000);
        reports(
            &r,
            "w1",
            &[],
            last + secs(0.5),
            last + (ROOM_GRACE - secs(0.5)),
        )
        .await;
        assert_eq!(r.held(), 1000, "not before the grace");
        let after = last + ROOM_GRACE + SWEEP_EVERY;
        r.put_report(&test_listing::<&str>("w1", &[]), after)
            .await
            .unwrap();
        assert_eq!(r.held(), 0);
        assert_eq!(r.room_node("room0", after).await.unwrap(), None);
        // A room of that name is a new room, placed anew.
        assert_eq!(
            r.assign_room("room0", "w2", None, ANY, after)
                .await
                .unwrap(),
            Placed
        );
    }

    #[tokio::test]
    async fn a_placed_room_is_kept_until_its_worker_reports_it() {
        let r = Memory::default();
        let t = Moment::now();
        let room = vec!["new".to_string()];
        assert_eq!(
            r.assign_room("new", "w1", None, ANY, t).await.unwrap(),
            Placed
        );
        // Reports that do not list it yet (sampled before the join) keep it
        // for the grace: a second joiner finds it on w1, not unplaced.
        let first = t + (ROOM_GRACE - secs(0.5));
        reports(&r, "w1", &[], t, t + (ROOM_GRACE - secs(1.0))).await;
        assert_eq!(
            r.room_node("new", first).await.unwrap().as_deref(),
            Some("w1")
        );
        assert_eq!(
            r.assign_room("new", "w2", None, ANY, first).await.unwrap(),
            Elsewhere("w1".into())
        );
        // Listed from then on, it stays as long as the call.
        reports(&r, "w1", &room, first, first + ROOM_GRACE * 3).await;
        let later = first + ROOM_GRACE * 3;
        assert_eq!(
            r.room_node("new", later).await.unwrap().as_deref(),
            Some("w1")
        );
    }

    #[tokio::test]
    async fn a_placement_never_reported_or_on_a_dead_worker_is_forgotten() {
        let r = Memory::default();
        let t = Moment::now();
        r.assign_room("failed-join", "w1", None, ANY, t)
            .await
            .unwrap();
        r.assign_room("on-dead", "w2", None, ANY, t).await.unwrap();
        let on_dead = vec!["on-dead".to_string()];
        reports(&r, "w1", &[], t, t + secs(40.0)).await;
        // w2 reported the room, then died.
        reports(&r, "w2", &on_dead, t, t + secs(2.0)).await;
        // w1 lists a room assigned to w2 (a straggler after a move): that
        // does not keep w2's assignment.
        reports(&r, "w1", &on_dead, t + secs(40.0), t + secs(40.0)).await;
        let later = t + secs(40.0);
        assert_eq!(r.room_node("failed-join", later).await.unwrap(), None);
        assert_eq!(r.room_node("on-dead", later).await.unwrap(), None);
        assert_eq!(r.held(), 0);
    }

    #[tokio::test]
    async fn a_forgotten_assignment_is_placed_whatever_the_placer_saw() {
        let r = Memory::default();
        let t = Moment::now();
        r.assign_room("room", "a", None, ANY, t).await.unwrap();
        // A placer saw "a" (dead); before its compare-and-set the
        // assignment passed its grace.
        let later = t + ROOM_GRACE;
        assert_eq!(
            r.assign_room("room", "b", Some("a"), ANY, later)
                .await
                .unwrap(),
            Placed
        );
        assert_eq!(
            r.room_node("room", later).await.unwrap().as_deref(),
            Some("b")
        );
    }

    #[tokio::test]
    async fn a_worker_back_from_the_dead_does_not_drain() {
        let r = Memory::default();
        let t = Moment::now();
        r.put_report(&report("w1"), t).await.unwrap();
        r.set_draining("w1").await.unwrap();
        assert_eq!(
            r.nodes(t).await.unwrap()[0].report.state,
            NodeState::Draining
        );
        // It exits when drained; a new process under the same id reports.
        let back = t + NODE_TTL + secs(1.0);
        r.put_report(&report("w1"), back).await.unwrap();
        assert_eq!(
            r.nodes(back).await.unwrap()[0].report.state,
            NodeState::Active
        );
    }

    /// `parloir serve` after a restart: the doors read from its state
    /// folder shut the rooms made anew, until their worker reports them
    /// or their people had their time to come back; what changes is
    /// written back, by the digest of the room's name.
    #[tokio::test]
    async fn doors_kept_on_disk_shut_rooms_made_anew() {
        use crate::state_dir::StateDir;
        let dir = std::env::temp_dir().join(format!(
            "parloir-memory-doors-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let state = StateDir::open(&dir).unwrap();
        let key = state.password_key().unwrap();
        let shut = DoorSettings {
            password: Some("digest".into()),
            lobby: true,
            ..Default::default()
        };
        let digest = crate::privacy::room_digest("chambre-217", &key);
        let doors = Doors::from([(digest.clone(), shut.clone())]);
        let now = Moment::now();
        let memory = Memory::keeping_doors(doors, state.door_writer(), key, now.instant);
        let door = |room: &'static str, at: Moment| memory.door(room, at);
        assert_eq!(door("chambre-217", now).await.unwrap(), Some(shut.clone()));
        assert_eq!(door("salon", now).await.unwrap(), None);
        let placed = memory
            .assign_room("chambre-217", "local", None, ANY, now)
            .await
            .unwrap();
        assert_eq!(placed, Placed);
        assert_eq!(
            door("chambre-217", now).await.unwrap(),
            Some(shut.clone()),
            "placed, not yet reported"
        );
        let later = Moment {
            instant: now.instant + RETURN_WINDOW,
            ..now
        };
        assert_eq!(door("chambre-217", later).await.unwrap(), None, "given up");

        // Its worker reports it opened: written back, under the digest.
        let mut opened = test_listing("local", &["chambre-217"]);
        let keys = DoorSettings {
            returning: vec![crate::worker::ReturnKey {
                key: "ab".repeat(16),
                moderator: true,
            }],
            ..Default::default()
        };
        opened.rooms[0].door = Some(keys.clone());
        memory.put_report(&opened, now).await.unwrap();
        let mut read = Doors::new();
        for _ in 0..200 {
            read = state.doors().unwrap();
            if read.get(&digest) == Some(&keys) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(read, Doors::from([(digest, keys)]));
        let file = std::fs::read_to_string(dir.join("doors.json")).unwrap();
        assert!(!file.contains("chambre"), "no room's name on disk: {file}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `parloir serve`'s rooms keep their owners across a restart, by the
    /// digest of their name, with the time they had left.
    #[tokio::test]
    async fn owners_kept_on_disk_outlive_a_restart() {
        use crate::state_dir::StateDir;
        let dir = std::env::temp_dir().join(format!(
            "parloir-memory-owners-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let ana = "a".repeat(32);
        let now = Moment::now();
        {
            let state = StateDir::open(&dir).unwrap();
            let key = state.password_key().unwrap();
            let memory = Memory::default().keeping_owners(
                state.owners().unwrap(),
                state.owner_writer(),
                key,
            );
            assert!(memory.claim("chambre-217", &ana, now).await.unwrap());
            for _ in 0..200 {
                if !state.owners().unwrap().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let file = std::fs::read_to_string(dir.join("owners.json")).unwrap();
        assert!(!file.contains("chambre"), "no room's name on disk: {file}");
        let mut state = StateDir::open(&dir);
        for _ in 0..200 {
            if state.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            state = StateDir::open(&dir);
        }
        let state = state.unwrap();
        let key = state.password_key().unwrap();
        let again =
            Memory::default().keeping_owners(state.owners().unwrap(), state.owner_writer(), key);
        let later = now + Duration::from_secs(3600);
        assert_eq!(again.owner("chambre-217", later).await.unwrap(), Some(ana));
        assert!(!again
            .claim("chambre-217", &"e".repeat(32), later)
            .await
            .unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
