//! The workers this signal server talks to: one control connection per
//! worker, opened on first use; the in-process worker of `parloir serve`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::cluster::control;
use crate::cluster::placement::NodeView;
use crate::cluster::tls::ClusterTls;
use crate::worker::{WorkerError, WorkerHandle};

/// A worker whose connection failed is not used for this long, even if its
/// last report is still fresh (it may have just died).
const LOST_FOR: Duration = Duration::from_secs(5);

pub struct Pool {
    secret: String,
    /// The CA workers' control channels are checked against.
    tls: Option<ClusterTls>,
    local: Option<(String, WorkerHandle)>,
    links: Mutex<HashMap<String, WorkerHandle>>,
    lost: std::sync::Mutex<HashMap<String, Instant>>,
}

impl Pool {
    pub fn new(
        secret: String,
        local: Option<(String, WorkerHandle)>,
        tls: Option<ClusterTls>,
    ) -> Self {
        Pool {
            secret,
            tls,
            local,
            links: Mutex::new(HashMap::new()),
            lost: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn is_lost(&self, id: &str) -> bool {
        let lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        lost.get(id).is_some_and(|t| t.elapsed() < LOST_FOR)
    }

    fn mark_lost(&self, id: &str) {
        tracing::warn!(node = id, "worker unreachable; not placing rooms on it");
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), Instant::now());
    }

    /// The handle of a worker, connecting if needed.
    pub async fn link(&self, node: &NodeView) -> Result<WorkerHandle, WorkerError> {
        let id = &node.report.id;
        if let Some((local_id, h)) = &self.local {
            if local_id == id {
                return Ok(h.clone());
            }
        }
        let mut links = self.links.lock().await;
        if let Some(h) = links.get(id) {
            if !h.is_closed() {
                return Ok(h.clone());
            }
            links.remove(id);
        }
        let connected = control::connect(
            &node.report.control,
            &node.report.media,
            &self.secret,
            self.tls.as_ref(),
        )
        .await;
        match connected {
            Ok(h) => {
                links.insert(id.clone(), h.clone());
                Ok(h)
            }
            Err(e) => {
                self.mark_lost(id);
                Err(e)
            }
        }
    }

    /// A worker's handle closed under a session: its connection died.
    pub fn report_closed(&self, id: &str) {
        self.mark_lost(id);
    }
}
