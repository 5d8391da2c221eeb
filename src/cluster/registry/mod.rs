//! Where the cluster's shared state lives: the live workers with their last
//! load report, which room is on which worker, which workers drain.
//!
//! In memory ([`Memory`]) for one signal server; in Redis
//! ([`RedisRegistry`]) when several signal servers share workers (then
//! workers write their reports to Redis themselves, so no signal server is
//! in the reporting path). Room placement is a compare-and-set, so two
//! signal servers placing the same room at once agree on one worker.
//!
//! Time is an argument, a [`Moment`] the caller reads once, never read
//! inside: the registry's rules (a worker silent for [`NODE_TTL`] is dead)
//! are then tested on a made-up clock. A `Moment` holds both clocks because
//! each implementation needs a different one: ages within one process are
//! measured on the monotonic clock (the memory registry, and the `Instant`
//! placement compares pending rooms with), since a wall clock that steps
//! would kill every worker at once or keep dead ones; but Redis is read by
//! other processes, whose `Instant`s mean nothing here, so a report's time
//! is stored there as wall-clock milliseconds.

mod memory;
mod redis;

use std::ops::Add;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::placement::NodeView;
use super::report::LoadReport;
use crate::worker::DoorSettings;
pub use memory::Memory;

pub use redis::RedisRegistry;

/// A worker that has not reported for this long is dead.
pub const NODE_TTL: Duration = Duration::from_secs(3);
/// How long a room's assignment is kept after it was placed, or after the
/// last report of its worker that listed it. It must cover the time from
/// placement to the first report that lists the room (the join, up to
/// 100 ms before the media thread publishes, up to 500 ms before the next
/// report, and that report's trip): a room forgotten before that could be
/// placed a second time, elsewhere, by the next person joining. Past it, a
/// room that ended (or whose first join failed, or whose worker died) is
/// forgotten, so the registry holds the live rooms, not every room ever.
pub const ROOM_GRACE: Duration = Duration::from_secs(30);

/// How long a room stays its creator's after the creator last came in:
/// a month of weekly calls keeps it; a name unused that long is free.
pub const OWNED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

// A worker tells a room that ended on it from one it lost for as long as
// the registry may keep the room's door.
const _: () =
    assert!(crate::worker::endpoint::ENDED_REMEMBERED.as_millis() > ROOM_GRACE.as_millis() + 1_000);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("cannot encode a report: {0}")]
    Encode(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, RegistryError>;

/// The shared state of a cluster. Methods return boxed futures so that
/// callers hold an `Arc<dyn Registry>` whichever store is behind it.
pub trait Registry: Send + Sync {
    /// Stores a worker's report, received at `now`; the rooms it lists
    /// that are assigned to that worker are kept another [`ROOM_GRACE`].
    fn put_report<'a>(&'a self, report: &'a LoadReport, now: Moment) -> BoxFuture<'a, Result<()>>;

    /// Workers that reported within [`NODE_TTL`] of `now`, by id, with the
    /// drain flag applied to their state.
    fn nodes(&self, now: Moment) -> BoxFuture<'_, Result<Vec<NodeView>>>;

    /// Marks a worker draining, whatever its reports say.
    fn set_draining<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// The worker a room was placed on, if any and not yet forgotten.
    fn room_node<'a>(&'a self, room: &'a str, now: Moment)
        -> BoxFuture<'a, Result<Option<String>>>;

    /// Places `room` on `node` if its assignment is still `expect` (or
    /// the room is not, or no longer, placed) and no more than `seen`
    /// rooms are pending on `node` (what the placer read in [`nodes`]);
    /// the room then counts as pending on `node` for
    /// [`PENDING_FOR`](crate::cluster::placement::PENDING_FOR).
    ///
    /// [`nodes`]: Registry::nodes
    fn assign_room<'a>(
        &'a self,
        room: &'a str,
        node: &'a str,
        expect: Option<&'a str>,
        seen: usize,
        now: Moment,
    ) -> BoxFuture<'a, Result<Assigned>>;

    /// The door a room's moderators shut (password digest, lobby), as the
    /// last report of the room's worker listed it, kept with the room's
    /// placement and forgotten with it: what a room made anew after its
    /// worker was lost starts behind. The worker is the one writer (its
    /// reports), so the registry never holds an older door than the room's
    /// own, and a failed write is made again half a second later.
    fn door<'a>(
        &'a self,
        room: &'a str,
        now: Moment,
    ) -> BoxFuture<'a, Result<Option<DoorSettings>>>;

    /// The digest of the key that makes its holder `room`'s owner
    /// (`signal::owner`), while the claim lasts.
    fn owner<'a>(&'a self, room: &'a str, now: Moment) -> BoxFuture<'a, Result<Option<String>>>;

    /// Makes `digest` `room`'s owner for [`OWNED_FOR`] from `now`, unless
    /// another owns it: whether `digest` owns it now. The owner's own
    /// claim, made again, starts its time again.
    fn claim<'a>(
        &'a self,
        room: &'a str,
        digest: &'a str,
        now: Moment,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Whether an operator sends new ordinary rooms to partner instances.
    fn redirect(&self) -> BoxFuture<'_, Result<bool>>;

    fn set_redirect(&self, on: bool) -> BoxFuture<'_, Result<()>>;
}

/// What [`Registry::assign_room`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assigned {
    /// The room is on the node asked for, pending there.
    Placed,
    /// Someone placed the room first, on this node.
    Elsewhere(String),
    /// Rooms were placed on the node since the placer read it: its stress
    /// is not what was compared; choose again.
    Raced,
}

/// When a registry call happens, on both clocks (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// For ages measured within this process.
    pub instant: Instant,
    /// Milliseconds since the Unix epoch: for times other processes read.
    pub unix_ms: u64,
}

impl Moment {
    pub fn now() -> Self {
        Moment {
            instant: Instant::now(),
            unix_ms: crate::worker::stats::unix_ms(),
        }
    }
}

/// Both clocks advance together: a made-up clock for tests is
/// `Moment::now() + d`.
impl Add<Duration> for Moment {
    type Output = Moment;

    fn add(self, d: Duration) -> Moment {
        Moment {
            instant: self.instant + d,
            unix_ms: self.unix_ms + d.as_millis() as u64,
        }
    }
}

/// What every registry must do, run against each implementation.
#[cfg(test)]
pub(crate) mod contract {
    use super::{LoadReport, Moment, Registry};

    use super::Assigned::{Elsewhere, Placed, Raced};
    use crate::cluster::placement::PENDING_FOR;
    use crate::cluster::report::test_listing;
    use crate::worker::DoorSettings;
    use std::time::Duration;

    /// Two placers that saw the same state: the first wins, and a room is
    /// moved off a dead worker only once.
    pub async fn placement_is_a_compare_and_set(r: &dyn Registry, t: Moment) {
        assert_eq!(
            r.assign_room("room", "a", None, 0, t).await.unwrap(),
            Placed
        );
        // A second placer that also saw "unplaced" loses.
        let a = Elsewhere("a".into());
        assert_eq!(r.assign_room("room", "b", None, 0, t).await.unwrap(), a);
        // Re-placing after "a" died succeeds once.
        assert_eq!(
            r.assign_room("room", "b", Some("a"), 0, t).await.unwrap(),
            Placed
        );
        let b = Elsewhere("b".into());
        assert_eq!(
            r.assign_room("room", "c", Some("a"), 0, t).await.unwrap(),
            b
        );
        assert_eq!(r.room_node("room", t).await.unwrap().as_deref(), Some("b"));
    }

    /// Placed rooms count on their worker for `PENDING_FOR`, for every
    /// placer; one that read an older count chooses again.
    pub async fn pending_rooms_are_shared(r: &dyn Registry, t: Moment) {
        for id in ["idle", "other"] {
            r.put_report(&test_listing::<&str>(id, &[]), t)
                .await
                .unwrap();
        }
        let pending = |nodes: Vec<crate::cluster::placement::NodeView>| {
            nodes.iter().map(|n| n.pending).collect::<Vec<_>>()
        };
        assert_eq!(pending(r.nodes(t).await.unwrap()), [0, 0]);
        // Two servers read "idle" with nothing pending; the first places.
        assert_eq!(
            r.assign_room("r1", "idle", None, 0, t).await.unwrap(),
            Placed
        );
        assert_eq!(
            r.assign_room("r2", "idle", None, 0, t).await.unwrap(),
            Raced
        );
        assert_eq!(r.room_node("r2", t).await.unwrap(), None, "not placed");
        assert_eq!(pending(r.nodes(t).await.unwrap()), [1, 0]);
        // Reading again, it places knowing of the first.
        assert_eq!(
            r.assign_room("r2", "idle", None, 1, t).await.unwrap(),
            Placed
        );
        let later = t + Duration::from_millis(10);
        assert_eq!(pending(r.nodes(later).await.unwrap()), [2, 0]);
        // Past the window they no longer count (and their reports do).
        let after = t + PENDING_FOR + Duration::from_millis(1);
        for id in ["idle", "other"] {
            r.put_report(&test_listing::<&str>(id, &[]), after)
                .await
                .unwrap();
        }
        assert_eq!(pending(r.nodes(after).await.unwrap()), [0, 0]);
        // A count that fell since the read is no race.
        assert_eq!(
            r.assign_room("r3", "idle", None, 2, after).await.unwrap(),
            Placed
        );
    }

    /// A room's door is kept while the room is placed, through a move off
    /// a dead worker; an open door keeps nothing, and an unplaced room
    /// none.
    /// A report of `node` listing `rooms`, each behind `door`.
    pub fn listing_with_door(
        node: &str,
        rooms: &[&str],
        door: Option<&DoorSettings>,
    ) -> LoadReport {
        let mut report = test_listing(node, rooms);
        for room in &mut report.rooms {
            room.door = door.cloned();
        }
        report
    }

    /// A door with only the lobby on.
    pub fn lobby_only() -> DoorSettings {
        DoorSettings {
            password: None,
            lobby: true,
            ..Default::default()
        }
    }

    pub async fn a_door_is_kept_with_its_room(r: &dyn Registry, t: Moment) {
        let shut = DoorSettings {
            password: Some("digest".into()),
            lobby: true,
            ..Default::default()
        };
        let listing = |node: &str, door: Option<&DoorSettings>| {
            listing_with_door(node, &["room", "unplaced"], door)
        };
        assert_eq!(
            r.assign_room("room", "a", None, 0, t).await.unwrap(),
            Placed
        );
        assert_eq!(r.door("room", t).await.unwrap(), None);
        r.put_report(&listing("a", Some(&shut)), t).await.unwrap();
        assert_eq!(r.door("room", t).await.unwrap(), Some(shut.clone()));
        assert_eq!(r.door("unplaced", t).await.unwrap(), None);
        // A worker the room is not on changes nothing.
        r.put_report(&listing("x", None), t).await.unwrap();
        assert_eq!(r.door("room", t).await.unwrap(), Some(shut.clone()));
        // "a" died: the room moves, its door with it, until its new worker
        // reports it (here, opened).
        assert_eq!(
            r.assign_room("room", "b", Some("a"), 0, t).await.unwrap(),
            Placed
        );
        assert_eq!(r.door("room", t).await.unwrap(), Some(shut.clone()));
        r.put_report(&listing("b", None), t).await.unwrap();
        assert_eq!(r.door("room", t).await.unwrap(), None);
    }

    /// The first claim of a room wins; its owner's claim made again keeps
    /// it longer; a month without it frees the name.
    pub async fn a_room_has_one_owner_for_a_time(r: &dyn Registry, t: Moment) {
        use super::OWNED_FOR;
        let (ana, eve) = ("a".repeat(32), "e".repeat(32));
        assert_eq!(r.owner("chambre-217", t).await.unwrap(), None);
        assert!(r.claim("chambre-217", &ana, t).await.unwrap());
        assert!(!r.claim("chambre-217", &eve, t).await.unwrap());
        assert_eq!(r.owner("chambre-217", t).await.unwrap(), Some(ana.clone()));
        assert_eq!(r.owner("chambre-218", t).await.unwrap(), None);
        // Ana comes back after three weeks: another month from then.
        let later = t + OWNED_FOR * 3 / 4;
        assert!(r.claim("chambre-217", &ana, later).await.unwrap());
        let past_first = t + OWNED_FOR + Duration::from_secs(60);
        assert_eq!(
            r.owner("chambre-217", past_first).await.unwrap(),
            Some(ana.clone())
        );
        assert!(!r.claim("chambre-217", &eve, past_first).await.unwrap());
        // A month without her: the name is anyone's.
        let gone = later + OWNED_FOR + Duration::from_secs(60);
        assert_eq!(r.owner("chambre-217", gone).await.unwrap(), None);
        assert!(r.claim("chambre-217", &eve, gone).await.unwrap());
    }

    pub async fn redirect_is_a_shared_switch(r: &dyn Registry) {
        assert!(!r.redirect().await.unwrap());
        r.set_redirect(true).await.unwrap();
        assert!(r.redirect().await.unwrap());
        r.set_redirect(false).await.unwrap();
        assert!(!r.redirect().await.unwrap());
    }
}
