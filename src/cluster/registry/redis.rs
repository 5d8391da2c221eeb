//! The registry in Redis, shared by several signal servers and written by
//! the workers themselves.
//!
//! Keys: `parloir:node:ID` (the last report and its wall-clock time, expiring
//! after [`NODE_TTL`]), the set `parloir:nodes` of ids that may have one,
//! `parloir:drain:ID`, `parloir:room:NAME` (the node id),
//! `parloir:door:NAME` (the door its moderators shut it with, as its worker
//! last reported, as JSON, expiring with the room's key),
//! `parloir:owner:NAME` (the digest of the room's owner's key and until
//! when, `DIGEST:UNIX_MS`, expiring then), `parloir:pending:ID` (the rooms placed on a node, scored by when, kept
//! [`PENDING_FOR`]) and `parloir:redirect` (present while new rooms go to
//! partners).
//!
//! Forgetting is Redis's expiry, with the memory registry's rules: a room's
//! key expires [`ROOM_GRACE`] after its placement, and every report of its
//! worker that lists it sets that expiry again; a node's key expires after
//! [`NODE_TTL`], and a node found gone loses its drain flag.

use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{Assigned, Moment, Registry, Result, NODE_TTL, OWNED_FOR, ROOM_GRACE};
use crate::cluster::placement::{NodeView, PENDING_FOR};
use crate::cluster::report::{LoadReport, NodeState};
use crate::worker::DoorSettings;

/// A flag that outlives a node that never reports again.
const DRAIN_TTL: Duration = Duration::from_secs(24 * 3600);

pub struct RedisRegistry {
    conn: redis::aio::ConnectionManager,
    put: redis::Script,
    cas: redis::Script,
    claim: redis::Script,
}

/// Longest wait for Redis: its answers take well under a millisecond, and
/// a worker silent for `NODE_TTL` (3 s) counts as dead anyway.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
struct Stored {
    report: LoadReport,
    at_ms: u64,
}

/// Stores report ARGV[2] of node ARGV[1] under KEYS[1] for ARGV[3] ms and
/// adds the node to the set KEYS[2]; the rooms it lists (KEYS[3..] in
/// pairs: the room's key, its door's key; their doors ARGV[5..] in order,
/// as JSON, empty for an open one) that are assigned to it are kept
/// ARGV[4] ms more, their doors as reported. One script, so that a report
/// and the rooms it keeps are written together.
const PUT: &str = r"
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
for i = 3, #KEYS, 2 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
    local door = ARGV[5 + (i - 3) / 2]
    if door == '' then
      redis.call('DEL', KEYS[i + 1])
    else
      redis.call('SET', KEYS[i + 1], door, 'PX', ARGV[4])
    end
  end
end
return 0
";

/// Places room KEYS[1] on node ARGV[1] for ARGV[3] ms if it holds ARGV[2]
/// or nothing, and if the rooms pending on the node (the sorted set
/// KEYS[2], scored by placement time, those after ARGV[4] - ARGV[5] ms)
/// are no more than ARGV[6]; the room is then added there as of ARGV[4].
/// A placed room's door (KEYS[3]), if it has one, is kept as long.
/// Returns {0, ''} (placed), {1, node} (placed there by someone else) or
/// {2, ''} (the node got rooms since it was read).
const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[2] then
  return {1, cur}
end
local now = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]))
if redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[6]) then
  return {2, ''}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {0, ''}
";

/// Makes ARGV[1] the owner of the room whose owner key is KEYS[1] until
/// ARGV[3] (Unix ms), unless another owns it after ARGV[2] (now): 1 if
/// ARGV[1] owns it now, else 0. The key expires when the claim does.
const CLAIM: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, ':', 1, true)
  if sep and string.sub(cur, 1, sep - 1) ~= ARGV[1]
      and tonumber(string.sub(cur, sep + 1)) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[3], 'PX', ARGV[4])
return 1
";

/// The owner's digest in an owner key's value, while `now_ms` is before
/// its end.
fn owner_of(value: &str, now_ms: u64) -> Option<String> {
    let (digest, until) = value.split_once(':')?;
    (until.parse::<u64>().ok()? > now_ms).then(|| digest.to_string())
}

const REDIRECT: &str = "parloir:redirect";

fn node_key(id: &str) -> String {
    format!("parloir:node:{id}")
}

fn drain_key(id: &str) -> String {
    format!("parloir:drain:{id}")
}

fn owner_key(room: &str) -> String {
    format!("parloir:owner:{room}")
}

fn room_key(room: &str) -> String {
    format!("parloir:room:{room}")
}

fn door_key(room: &str) -> String {
    format!("parloir:door:{room}")
}

fn pending_key(id: &str) -> String {
    format!("parloir:pending:{id}")
}

impl RedisRegistry {
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        // Without these, a Redis that stops answering (a host gone from the
        // network rather than a refused port) would hold every join and
        // every load report forever; an error lets placement and the
        // reporter carry on and say so.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT);
        let conn = redis::aio::ConnectionManager::new_with_config(client, config).await?;
        Ok(RedisRegistry {
            conn,
            put: redis::Script::new(PUT),
            cas: redis::Script::new(CAS),
            claim: redis::Script::new(CLAIM),
        })
    }

    async fn put(&self, report: &LoadReport, now: Moment) -> Result<()> {
        let mut c = self.conn.clone();
        let value = serde_json::to_string(&Stored {
            report: report.clone(),
            at_ms: now.unix_ms,
        })?;
        let mut call = self.put.key(node_key(&report.id));
        call.key("parloir:nodes");
        for room in &report.rooms {
            call.key(room_key(&room.room));
            call.key(door_key(&room.room));
        }
        call.arg(&report.id)
            .arg(value)
            .arg(NODE_TTL.as_millis() as u64)
            .arg(ROOM_GRACE.as_millis() as u64);
        for room in &report.rooms {
            let door = match &room.door {
                Some(settings) => serde_json::to_string(settings)?,
                None => String::new(),
            };
            call.arg(door);
        }
        call.invoke_async::<()>(&mut c).await?;
        Ok(())
    }

    async fn live(&self, now: Moment) -> Result<Vec<NodeView>> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = c.smembers("parloir:nodes").await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|i| node_key(i)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        let drains: Vec<Option<String>> = redis::cmd("MGET")
            .arg(ids.iter().map(|i| drain_key(i)).collect::<Vec<_>>())
            .query_async(&mut c)
            .await?;
        // Placed after this (exclusive), they are pending.
        let since = format!(
            "({}",
            now.unix_ms.saturating_sub(PENDING_FOR.as_millis() as u64)
        );
        let mut counts = redis::pipe();
        for id in &ids {
            counts.zcount(pending_key(id), &since, "+inf");
        }
        let pending: Vec<usize> = counts.query_async(&mut c).await?;
        let mut out = Vec::new();
        for (((id, value), drain), pending) in ids.iter().zip(values).zip(drains).zip(pending) {
            let Some(value) = value else {
                // Gone: a process back under this id is a new one.
                let _: () = redis::pipe()
                    .srem("parloir:nodes", id)
                    .ignore()
                    .del(drain_key(id))
                    .ignore()
                    .query_async(&mut c)
                    .await?;
                continue;
            };
            let stored = match serde_json::from_str::<Stored>(&value) {
                Ok(s) => s,
                // A report this version cannot read (a worker of another
                // version during an upgrade): not placed on, but not taken
                // for gone either, which would drop its drain flag.
                Err(e) => {
                    tracing::warn!(node = id, "unreadable report in Redis: {e}");
                    continue;
                }
            };
            // The report's age on the wall clock it was stored with, as an
            // `Instant` of this process.
            let age = Duration::from_millis(now.unix_ms.saturating_sub(stored.at_ms));
            let mut report = stored.report;
            if drain.is_some() {
                report.state = NodeState::Draining;
            }
            out.push(NodeView {
                report,
                at: now.instant.checked_sub(age).unwrap_or(now.instant),
                pending,
            });
        }
        out.sort_by(|a, b| a.report.id.cmp(&b.report.id));
        Ok(out)
    }
}

impl Registry for RedisRegistry {
    fn put_report<'a>(&'a self, report: &'a LoadReport, now: Moment) -> BoxFuture<'a, Result<()>> {
        self.put(report, now).boxed()
    }

    fn nodes(&self, now: Moment) -> BoxFuture<'_, Result<Vec<NodeView>>> {
        self.live(now).boxed()
    }

    fn set_draining<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            let mut c = self.conn.clone();
            let _: () = redis::cmd("SET")
                .arg(drain_key(id))
                .arg(1)
                .arg("PX")
                .arg(DRAIN_TTL.as_millis() as u64)
                .query_async(&mut c)
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn room_node<'a>(
        &'a self,
        room: &'a str,
        _now: Moment,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        async move {
            let mut c = self.conn.clone();
            Ok(c.get(room_key(room)).await?)
        }
        .boxed()
    }

    fn door<'a>(
        &'a self,
        room: &'a str,
        _now: Moment,
    ) -> BoxFuture<'a, Result<Option<DoorSettings>>> {
        async move {
            let mut c = self.conn.clone();
            let kept: Option<String> = c.get(door_key(room)).await?;
            // A door that cannot be read is no door: the room opens, as it
            // did before doors were kept.
            Ok(kept.and_then(|k| serde_json::from_str(&k).ok()))
        }
        .boxed()
    }

    fn assign_room<'a>(
        &'a self,
        room: &'a str,
        node: &'a str,
        expect: Option<&'a str>,
        seen: usize,
        now: Moment,
    ) -> BoxFuture<'a, Result<Assigned>> {
        async move {
            let mut c = self.conn.clone();
            let (status, other): (u8, String) = self
                .cas
                .key(room_key(room))
                .key(pending_key(node))
                .key(door_key(room))
                .arg(node)
                .arg(expect.unwrap_or(""))
                .arg(ROOM_GRACE.as_millis() as u64)
                .arg(now.unix_ms)
                .arg(PENDING_FOR.as_millis() as u64)
                .arg(seen)
                .arg(room)
                .invoke_async(&mut c)
                .await?;
            Ok(match (status, other) {
                (0, _) => Assigned::Placed,
                (1, node) => Assigned::Elsewhere(node),
                _ => Assigned::Raced,
            })
        }
        .boxed()
    }

    fn owner<'a>(&'a self, room: &'a str, now: Moment) -> BoxFuture<'a, Result<Option<String>>> {
        async move {
            let mut c = self.conn.clone();
            let kept: Option<String> = c.get(owner_key(room)).await?;
            Ok(kept.and_then(|v| owner_of(&v, now.unix_ms)))
        }
        .boxed()
    }

    fn claim<'a>(
        &'a self,
        room: &'a str,
        digest: &'a str,
        now: Moment,
    ) -> BoxFuture<'a, Result<bool>> {
        async move {
            let mut c = self.conn.clone();
            let owned_ms = OWNED_FOR.as_millis() as u64;
            let owns: i64 = self
                .claim
                .key(owner_key(room))
                .arg(digest)
                .arg(now.unix_ms)
                .arg(now.unix_ms + owned_ms)
                .arg(owned_ms)
                .invoke_async(&mut c)
                .await?;
            Ok(owns == 1)
        }
        .boxed()
    }

    fn redirect(&self) -> BoxFuture<'_, Result<bool>> {
        async move {
            let mut c = self.conn.clone();
            Ok(c.exists(REDIRECT).await?)
        }
        .boxed()
    }

    fn set_redirect(&self, on: bool) -> BoxFuture<'_, Result<()>> {
        async move {
            let mut c = self.conn.clone();
            if on {
                let _: () = c.set(REDIRECT, 1).await?;
            } else {
                let _: () = c.del(REDIRECT).await?;
            }
            Ok(())
        }
        .boxed()
    }
}

// Paths of a file's top level are relative to its folder; inside the
// tests module they would name a folder that does not exist.
#[cfg(test)]
#[path = "../../../tests/common/redis_server.rs"]
mod test_redis_server;

/// Against a `redis-server` of its own on a free loopback port
/// (`scripts/test.sh` installs it; without one these tests fail, they do
/// not pass by skipping).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::registry::contract;
    use crate::cluster::report::test_listing;
    use test_redis_server::Redis;

    /// A redis-server of the test's own, the registry on it, and a
    /// connection for looking behind the registry's back.
    async fn start() -> (Redis, RedisRegistry, redis::aio::ConnectionManager) {
        let server = Redis::start();
        let r = RedisRegistry::connect(&server.url)
            .await
            .expect("connect to the test's redis-server");
        let c = r.conn.clone();
        (server, r, c)
    }

    async fn ttl_ms(c: &mut redis::aio::ConnectionManager, key: &str) -> i64 {
        redis::cmd("PTTL").arg(key).query_async(c).await.unwrap()
    }

    #[tokio::test]
    async fn rooms_live_by_their_workers_reports() {
        let (_server, r, mut c) = start().await;
        let t = Moment::now();
        assert_eq!(
            r.assign_room("a", "w1", None, 0, t).await.unwrap(),
            Assigned::Placed
        );
        assert_eq!(
            r.assign_room("b", "w2", None, 0, t).await.unwrap(),
            Assigned::Placed
        );
        let grace = ROOM_GRACE.as_millis() as i64;
        assert!(ttl_ms(&mut c, "parloir:room:a").await > grace - 5_000);
        // Time passes (made short by hand); w1 then reports both rooms:
        // its own is kept another grace, w2's is not w1's to keep.
        for key in ["parloir:room:a", "parloir:room:b"] {
            let _: () = c.pexpire(key, 1_000).await.unwrap();
        }
        r.put_report(&test_listing("w1", &["a", "b"]), t)
            .await
            .unwrap();
        assert!(ttl_ms(&mut c, "parloir:room:a").await > grace - 5_000);
        assert!(ttl_ms(&mut c, "parloir:room:b").await <= 1_000);
        let nodes = r.nodes(t).await.unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].report.rooms.len(), 2);
    }

    #[tokio::test]
    async fn compare_and_set_and_a_forgotten_room() {
        let (_server, r, mut c) = start().await;
        let t = Moment::now();
        super::super::contract::placement_is_a_compare_and_set(&r, t).await;
        // Expired between a placer's read and its compare-and-set.
        let _: () = c.del("parloir:room:room").await.unwrap();
        assert_eq!(
            r.assign_room("room", "d", Some("b"), 0, t).await.unwrap(),
            Assigned::Placed
        );
    }

    #[tokio::test]
    async fn pending_rooms_are_shared() {
        let (_server, r, _) = start().await;
        super::super::contract::pending_rooms_are_shared(&r, Moment::now()).await;
    }

    /// Two registries on one Redis are two signal servers: in a burst of
    /// placements from both at once, each reading then placing, no two
    /// placements are made on the same view of the node (each one that
    /// lands saw every earlier one).
    #[tokio::test]
    async fn two_servers_placing_at_once_see_each_other() {
        let (server, a, _) = start().await;
        let b = RedisRegistry::connect(&server.url).await.unwrap();
        let t = Moment::now();
        a.put_report(&test_listing::<&str>("idle", &[]), t)
            .await
            .unwrap();
        let place = |r: RedisRegistry, tag: &'static str| async move {
            let mut placed_on_seen = Vec::new();
            let mut raced = 0;
            for i in 0..20 {
                let seen = r.nodes(t).await.unwrap()[0].pending;
                let room = format!("{tag}{i}");
                match r.assign_room(&room, "idle", None, seen, t).await.unwrap() {
                    Assigned::Placed => placed_on_seen.push(seen),
                    _ => raced += 1,
                }
            }
            (placed_on_seen, raced)
        };
        let ((mut x, rx), (y, ry)) = tokio::join!(place(a, "a"), place(b, "b"));
        x.extend(y);
        x.sort_unstable();
        let placed = x.len();
        x.dedup();
        assert_eq!(x.len(), placed, "two placements on one view");
        // And no livelock: of two tries at once, one lands.
        assert!(placed >= 20, "{placed} placed, {} raced", rx + ry);
    }

    #[tokio::test]
    async fn doors_expire_with_their_rooms() {
        let (_server, r, mut c) = start().await;
        let t = Moment::now();
        contract::a_door_is_kept_with_its_room(&r, t).await;
        let shut = contract::listing_with_door("b", &["room"], Some(&contract::lobby_only()));
        r.put_report(&shut, t).await.unwrap();
        let grace = ROOM_GRACE.as_millis() as i64;
        assert!(ttl_ms(&mut c, "parloir:door:room").await > grace - 5_000);
        // The room's key and its door's go together.
        let _: () = c.pexpire("parloir:room:room", 1_000).await.unwrap();
        let _: () = c.pexpire("parloir:door:room", 1_000).await.unwrap();
        r.put_report(&shut, t).await.unwrap();
        assert!(ttl_ms(&mut c, "parloir:door:room").await > grace - 5_000);
        // A door that does not read is no door.
        let _: () = c.set("parloir:door:room", "{not json").await.unwrap();
        assert_eq!(r.door("room", t).await.unwrap(), None);
    }

    #[tokio::test]
    async fn owners_are_shared_and_expire() {
        let (server, r, mut c) = start().await;
        contract::a_room_has_one_owner_for_a_time(&r, Moment::now()).await;
        // Another signal server sees the same owner; the key goes when
        // the claim ends.
        let other = RedisRegistry::connect(&server.url).await.unwrap();
        let t = Moment::now();
        assert!(r.claim("salon", &"b".repeat(32), t).await.unwrap());
        assert!(!other.claim("salon", &"c".repeat(32), t).await.unwrap());
        let month = OWNED_FOR.as_millis() as i64;
        assert!(ttl_ms(&mut c, "parloir:owner:salon").await > month - 5_000);
    }

    #[tokio::test]
    async fn redirect_is_shared() {
        let (server, r, _) = start().await;
        super::super::contract::redirect_is_a_shared_switch(&r).await;
        let other = RedisRegistry::connect(&server.url).await.unwrap();
        r.set_redirect(true).await.unwrap();
        assert!(other.redirect().await.unwrap());
    }

    #[tokio::test]
    async fn a_gone_node_loses_its_drain_flag() {
        let (_server, r, mut c) = start().await;
        let t = Moment::now();
        r.put_report(&test_listing::<&str>("w1", &[]), t)
            .await
            .unwrap();
        r.set_draining("w1").await.unwrap();
        assert_eq!(
            r.nodes(t).await.unwrap()[0].report.state,
            NodeState::Draining
        );
        let _: () = c.del("parloir:node:w1").await.unwrap();
        assert!(r.nodes(t).await.unwrap().is_empty());
        r.put_report(&test_listing::<&str>("w1", &[]), t)
            .await
            .unwrap();
        assert_eq!(r.nodes(t).await.unwrap()[0].report.state, NodeState::Active);
    }

    #[tokio::test]
    async fn an_unreadable_report_keeps_its_drain_flag() {
        let (_server, r, mut c) = start().await;
        let t = Moment::now();
        r.put_report(&test_listing::<&str>("w1", &[]), t)
            .await
            .unwrap();
        r.set_draining("w1").await.unwrap();
        // A worker of another version wrote something this one cannot read.
        let _: () = c.set("parloir:node:w1", "{\"renamed\":1}").await.unwrap();
        assert!(r.nodes(t).await.unwrap().is_empty(), "not placed on");
        r.put_report(&test_listing::<&str>("w1", &[]), t)
            .await
            .unwrap();
        assert_eq!(
            r.nodes(t).await.unwrap()[0].report.state,
            NodeState::Draining,
            "still draining once readable again"
        );
    }

    #[tokio::test]
    async fn a_redis_that_stops_answering_is_an_error_not_a_hang() {
        let (server, r, _) = start().await;
        // Silent from now on, as a host that fell off the network.
        server.pause();
        let asked = tokio::time::timeout(Duration::from_secs(10), r.nodes(Moment::now())).await;
        assert!(matches!(asked, Ok(Err(_))), "an error within the timeout");
    }
}
