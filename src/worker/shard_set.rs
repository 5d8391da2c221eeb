//! A worker's shards as its control plane sees them: one command queue
//! each, where each command goes ([`ShardMap`]), and each shard's recent
//! CPU (its thread's), which placement inside the worker compares.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::shard_map::{ShardMap, Target};
use super::stats::WorkerStats;
use super::{ask, post_to, Command, Envelope, PeerEvent, Reply, WorkerError};

/// How often the shards' rooms and CPU are read again: placement needs
/// the CPU of the last second or so, not of this instant.
const LOOK_EVERY: Duration = Duration::from_millis(250);

pub(crate) struct ShardSet {
    queues: Vec<mpsc::Sender<Envelope>>,
    stats: Arc<WorkerStats>,
    state: Mutex<State>,
}

struct State {
    map: ShardMap,
    /// Each shard's CPU in cores over the last look.
    cpu: Vec<f64>,
    /// Each shard's CPU seconds at the last look, and when.
    last: Option<(Instant, Vec<f64>)>,
}

impl State {
    fn look(&mut self, stats: &WorkerStats, now: Instant) {
        let seconds = stats.shard_cpu_seconds();
        if let Some((at, before)) = &self.last {
            let dt = now.saturating_duration_since(*at).as_secs_f64();
            if dt > 0.0 {
                self.cpu = seconds
                    .iter()
                    .zip(before)
                    .map(|(s, b)| (s - b).max(0.0) / dt)
                    .collect();
            }
        }
        self.last = Some((now, seconds));
        for (shard, s) in stats.shards().iter().enumerate() {
            let snapshot = s.snapshot();
            self.map
                .listed(shard, snapshot.rooms.iter().map(|r| r.room.as_str()), now);
        }
        self.map.expire(now);
    }

    fn due(&self, now: Instant) -> bool {
        self.last
            .as_ref()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= LOOK_EVERY)
    }
}

impl ShardSet {
    pub fn new(queues: Vec<mpsc::Sender<Envelope>>, stats: Arc<WorkerStats>) -> Self {
        let n = queues.len();
        ShardSet {
            queues,
            stats,
            state: Mutex::new(State {
                map: ShardMap::new(n),
                cpu: vec![0.0; n],
                last: None,
            }),
        }
    }

    /// A shard's thread ended (the process exits then: `media_loop`).
    pub fn is_closed(&self) -> bool {
        self.queues.iter().any(|q| q.is_closed())
    }

    fn target(&self, cmd: &Command) -> Result<Target, WorkerError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if state.due(now) {
            state.look(&self.stats, now);
        }
        let State { map, cpu, .. } = &mut *state;
        map.target(cmd, cpu, now)
    }

    pub async fn request(
        &self,
        cmd: Command,
        events: Option<mpsc::Sender<PeerEvent>>,
    ) -> Result<Reply, WorkerError> {
        let joining = match &cmd {
            Command::Join { req } => Some(req.info.id),
            _ => None,
        };
        match self.target(&cmd)? {
            Target::One(shard) => {
                let reply = ask(&self.queues[shard], cmd, events).await;
                if let (Some(id), Err(_)) = (joining, &reply) {
                    self.state
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .map
                        .join_refused(id);
                }
                reply
            }
            Target::All => {
                let mut result = Ok(Reply::Done);
                for queue in &self.queues {
                    if let Err(e) = ask(queue, cmd.clone(), None).await {
                        result = Err(e);
                    }
                }
                result
            }
        }
    }

    pub fn post(&self, cmd: Command) {
        match self.target(&cmd) {
            Ok(Target::One(shard)) => post_to(&self.queues[shard], cmd),
            Ok(Target::All) => {
                for queue in &self.queues {
                    post_to(queue, cmd.clone());
                }
            }
            // Posted commands are about someone already gone.
            Err(_) => {}
        }
    }
}
