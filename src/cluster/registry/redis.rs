//! The registry in Redis, shared by several signal servers and written by
//! the workers themselves.
//!
//! Keys: `parloir:node:ID` (the last report and its wall-clock time, expiring
//! after [`NODE_TTL`]), the set `parloir:nodes` of ids that may have one,
//! `parloir:drain:ID`, and `parloir:room:NAME` (the node id).

use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{Moment, Registry, Result, NODE_TTL};
use crate::cluster::placement::NodeView;
use crate::cluster::report::{LoadReport, NodeState};

/// A room assignment outlives its placement by this much.
const ROOM_TTL: Duration = Duration::from_secs(6 * 3600);
const DRAIN_TTL: Duration = Duration::from_secs(24 * 3600);

pub struct RedisRegistry {
    conn: redis::aio::ConnectionManager,
    cas: redis::Script,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    report: LoadReport,
    at_ms: u64,
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

fn node_key(id: &str) -> String {
    format!("parloir:node:{id}")
}

fn drain_key(id: &str) -> String {
    format!("parloir:drain:{id}")
}

fn room_key(room: &str) -> String {
    format!("parloir:room:{room}")
}

impl RedisRegistry {
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        Ok(RedisRegistry {
            conn,
            cas: redis::Script::new(CAS),
        })
    }

    async fn put(&self, report: &LoadReport, now: Moment) -> Result<()> {
        let mut c = self.conn.clone();
        let value = serde_json::to_string(&Stored {
            report: report.clone(),
            at_ms: now.unix_ms,
        })
        .unwrap_or_default();
        redis::pipe()
            .cmd("SET")
            .arg(node_key(&report.id))
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
        let mut out = Vec::new();
        for ((id, value), drain) in ids.iter().zip(values).zip(drains) {
            let Some(stored) = value.and_then(|v| serde_json::from_str::<Stored>(&v).ok()) else {
                let _: () = c.srem("parloir:nodes", id).await?;
                continue;
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

    fn assign_room<'a>(
        &'a self,
        room: &'a str,
        node: &'a str,
        expect: Option<&'a str>,
        _now: Moment,
    ) -> BoxFuture<'a, Result<String>> {
        async move {
            let mut c = self.conn.clone();
            let placed: String = self
                .cas
                .key(room_key(room))
                .arg(node)
                .arg(expect.unwrap_or(""))
                .arg(ROOM_TTL.as_millis() as u64)
                .invoke_async(&mut c)
                .await?;
            Ok(placed)
        }
        .boxed()
    }
}
