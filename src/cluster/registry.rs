//! Where the cluster's shared state lives: the live workers with their last
//! load report, which room is on which worker, which workers drain.
//!
//! In memory for one signal server; in Redis when several signal servers
//! share workers (then workers write their reports to Redis themselves, so
//! no signal server is in the reporting path). Room placement uses a
//! compare-and-set, so two signal servers placing the same room at once
//! agree on one worker.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::placement::NodeView;
use super::report::{LoadReport, NodeState};

/// A worker that has not reported for this long is dead.
pub const NODE_TTL: Duration = Duration::from_secs(3);
/// A room assignment outlives its last join by this much.
const ROOM_TTL: Duration = Duration::from_secs(6 * 3600);
const DRAIN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

pub enum Registry {
    Memory(Memory),
    Redis(RedisRegistry),
}

#[derive(Default)]
pub struct Memory {
    nodes: Mutex<HashMap<String, (LoadReport, Instant)>>,
    draining: Mutex<HashSet<String>>,
    rooms: Mutex<HashMap<String, String>>,
}

pub struct RedisRegistry {
    conn: redis::aio::ConnectionManager,
    cas: redis::Script,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    report: LoadReport,
    at_ms: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sets KEYS[1] to ARGV[1] if it holds ARGV[2] ('' = absent); returns
/// what it holds afterwards.
const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
if (not cur and ARGV[2] == '') or cur == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return ARGV[1]
end
return cur
";

impl Registry {
    pub fn memory() -> Self {
        Registry::Memory(Memory::default())
    }

    pub async fn redis(url: &str) -> Result<Self, RegistryError> {
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        Ok(Registry::Redis(RedisRegistry {
            conn,
            cas: redis::Script::new(CAS),
        }))
    }

    pub async fn put_report(&self, report: &LoadReport) -> Result<(), RegistryError> {
        match self {
            Registry::Memory(m) => {
                lock(&m.nodes).insert(report.id.clone(), (report.clone(), Instant::now()));
                Ok(())
            }
            Registry::Redis(r) => {
                let mut c = r.conn.clone();
                let value = serde_json::to_string(&Stored {
                    report: report.clone(),
                    at_ms: unix_ms(),
                })
                .unwrap_or_default();
                redis::pipe()
                    .cmd("SET")
                    .arg(format!("parloir:node:{}", report.id))
                    .arg(value)
                    .arg("PX")
                    .arg(NODE_TTL.as_millis() as u64)
                    .ignore()
                    .sadd("parloir:nodes", &report.id)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await?;
                Ok(())
            }
        }
    }

    /// Live workers, with the drain flag applied to their state.
    pub async fn nodes(&self) -> Result<Vec<NodeView>, RegistryError> {
        let now = Instant::now();
        let mut nodes = match self {
            Registry::Memory(m) => {
                let mut map = lock(&m.nodes);
                map.retain(|_, (_, at)| now.saturating_duration_since(*at) < NODE_TTL);
                let draining = lock(&m.draining);
                map.values()
                    .map(|(r, at)| {
                        let mut report = r.clone();
                        if draining.contains(&r.id) {
                            report.state = NodeState::Draining;
                        }
                        NodeView { report, at: *at }
                    })
                    .collect::<Vec<_>>()
            }
            Registry::Redis(r) => {
                let mut c = r.conn.clone();
                let ids: Vec<String> = c.smembers("parloir:nodes").await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let keys: Vec<String> = ids.iter().map(|i| format!("parloir:node:{i}")).collect();
                let values: Vec<Option<String>> =
                    redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
                let drains: Vec<Option<String>> = redis::cmd("MGET")
                    .arg(
                        ids.iter()
                            .map(|i| format!("parloir:drain:{i}"))
                            .collect::<Vec<_>>(),
                    )
                    .query_async(&mut c)
                    .await?;
                let mut out = Vec::new();
                let unix_now = unix_ms();
                for ((id, value), drain) in ids.iter().zip(values).zip(drains) {
                    let Some(stored) = value.and_then(|v| serde_json::from_str::<Stored>(&v).ok())
                    else {
                        let _: () = c.srem("parloir:nodes", id).await?;
                        continue;
                    };
                    let age = Duration::from_millis(unix_now.saturating_sub(stored.at_ms));
                    let mut report = stored.report;
                    if drain.is_some() {
                        report.state = NodeState::Draining;
                    }
                    out.push(NodeView {
                        report,
                        at: now.checked_sub(age).unwrap_or(now),
                    });
                }
                out
            }
        };
        nodes.sort_by(|a, b| a.report.id.cmp(&b.report.id));
        Ok(nodes)
    }

    pub async fn set_draining(&self, id: &str) -> Result<(), RegistryError> {
        match self {
            Registry::Memory(m) => {
                lock(&m.draining).insert(id.to_string());
                Ok(())
            }
            Registry::Redis(r) => {
                let mut c = r.conn.clone();
                let _: () = redis::cmd("SET")
                    .arg(format!("parloir:drain:{id}"))
                    .arg(1)
                    .arg("PX")
                    .arg(DRAIN_TTL.as_millis() as u64)
                    .query_async(&mut c)
                    .await?;
                Ok(())
            }
        }
    }

    /// The worker a room was placed on, if any.
    pub async fn room_node(&self, room: &str) -> Result<Option<String>, RegistryError> {
        match self {
            Registry::Memory(m) => Ok(lock(&m.rooms).get(room).cloned()),
            Registry::Redis(r) => {
                let mut c = r.conn.clone();
                Ok(c.get(format!("parloir:room:{room}")).await?)
            }
        }
    }

    /// Places `room` on `node` if its assignment is still `expect` (`None`:
    /// unplaced). Returns the node the room is on afterwards, which is
    /// another one if someone else placed it first.
    pub async fn assign_room(
        &self,
        room: &str,
        node: &str,
        expect: Option<&str>,
    ) -> Result<String, RegistryError> {
        match self {
            Registry::Memory(m) => {
                let mut rooms = lock(&m.rooms);
                let current = rooms.get(room).map(String::as_str);
                if current == expect {
                    rooms.insert(room.to_string(), node.to_string());
                    Ok(node.to_string())
                } else {
                    Ok(current.unwrap_or(node).to_string())
                }
            }
            Registry::Redis(r) => {
                let mut c = r.conn.clone();
                let now: String = r
                    .cas
                    .key(format!("parloir:room:{room}"))
                    .arg(node)
                    .arg(expect.unwrap_or(""))
                    .arg(ROOM_TTL.as_millis() as u64)
                    .invoke_async(&mut c)
                    .await?;
                Ok(now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::report::test_report;

    fn report(id: &str) -> LoadReport {
        test_report(id, 0.0, 1)
    }

    #[tokio::test]
    async fn memory_rooms_compare_and_set() {
        let r = Registry::memory();
        assert_eq!(r.assign_room("room", "a", None).await.unwrap(), "a");
        // A second placer that also saw "unplaced" loses.
        assert_eq!(r.assign_room("room", "b", None).await.unwrap(), "a");
        // Re-placing after "a" died succeeds once.
        assert_eq!(r.assign_room("room", "b", Some("a")).await.unwrap(), "b");
        assert_eq!(r.assign_room("room", "c", Some("a")).await.unwrap(), "b");
        assert_eq!(r.room_node("room").await.unwrap().as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn memory_nodes_and_drain_flag() {
        let r = Registry::memory();
        r.put_report(&report("w1")).await.unwrap();
        r.put_report(&report("w2")).await.unwrap();
        r.set_draining("w2").await.unwrap();
        let nodes = r.nodes().await.unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].report.state, NodeState::Active);
        assert_eq!(nodes[1].report.state, NodeState::Draining);
    }
}
