//! What a surge recorded, second by second, and the checks it is held
//! to: plain data (join answers, samples of the operators' API, packets
//! owed and received), so each figure is tested without a cluster.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::loss::Second;

/// The answer to one join.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRecord {
    pub room: u32,
    /// Its place in the room: 0 starts the room, the others join it.
    pub member: u32,
    pub priority: bool,
    /// µs since the surge's start.
    pub sent_us: u64,
    pub answered_us: u64,
    /// The error code that refused it; `None`: welcomed.
    pub refused: Option<String>,
    /// Partner instances the refusal offered.
    #[serde(default)]
    pub partners: usize,
}

impl JoinRecord {
    fn admitted(&self) -> bool {
        self.refused.is_none()
    }

    fn starts_room(&self) -> bool {
        self.member == 0
    }
}

/// One worker as `GET /api/nodes` showed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSample {
    pub t_us: u64,
    pub id: String,
    /// What admission reads (`stress_smoothed`).
    pub stress: f64,
}

/// One second of the surge.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecondFigures {
    pub t: u32,
    /// New rooms let in this second (ordinary, priority), refused as
    /// `overloaded`, sent to partners as `redirected`.
    pub rooms_admitted: u32,
    pub priority_admitted: u32,
    pub rooms_refused: u32,
    pub rooms_redirected: u32,
    pub priority_refused: u32,
    /// Joins to a room already running that were refused.
    pub joins_refused: u32,
    /// Rooms let in up to the end of this second.
    pub running_calls: u32,
    /// Each worker's stress at the end of this second.
    pub stress: BTreeMap<String, f64>,
    /// The cluster's headroom gauge (ordinary rooms still taken).
    pub headroom: Option<u64>,
    /// Packets sent this second to participants of running calls, and
    /// how many reached them.
    pub owed: u64,
    pub received: u64,
    pub loss_pct: Option<f64>,
    pub delay_p50_ms: Option<f64>,
    pub delay_p99_ms: Option<f64>,
}

const US: u64 = 1_000_000;

/// Percentile of a sample in ms (sorts it).
fn percentile_ms(v: &mut [u32], p: f64) -> Option<f64> {
    (!v.is_empty()).then(|| crate::stats::percentile(v, p) / 1000.0)
}

/// The surge's seconds from 0 up to `end_s`.
pub fn seconds(
    end_s: u32,
    joins: &[JoinRecord],
    nodes: &[NodeSample],
    headroom: &[(u64, u64)],
    mut media: Vec<Second>,
) -> Vec<SecondFigures> {
    media.resize(end_s as usize, Second::default());
    let mut out: Vec<SecondFigures> = (0..end_s)
        .map(|t| SecondFigures {
            t,
            ..Default::default()
        })
        .collect();
    for j in joins {
        let Some(s) = out.get_mut((j.answered_us / US) as usize) else {
            continue;
        };
        match (j.starts_room(), j.priority, j.refused.as_deref()) {
            (false, _, Some(_)) => s.joins_refused += 1,
            (false, _, None) => {}
            (true, false, None) => s.rooms_admitted += 1,
            (true, true, None) => s.priority_admitted += 1,
            (true, true, Some(_)) => s.priority_refused += 1,
            (true, false, Some("redirected")) => s.rooms_redirected += 1,
            (true, false, Some(_)) => s.rooms_refused += 1,
        }
    }
    let mut running = 0;
    for (s, m) in out.iter_mut().zip(media.iter_mut()) {
        running += s.rooms_admitted + s.priority_admitted;
        s.running_calls = running;
        let end_us = u64::from(s.t + 1) * US;
        for n in nodes.iter().filter(|n| n.t_us < end_us) {
            s.stress.insert(n.id.clone(), n.stress);
        }
        s.headroom = headroom
            .iter()
            .take_while(|h| h.0 < end_us)
            .last()
            .map(|h| h.1);
        s.owed = m.expected;
        s.received = m.received;
        s.loss_pct = (m.expected > 0)
            .then(|| 100.0 * m.expected.saturating_sub(m.received) as f64 / m.expected as f64);
        s.delay_p50_ms = percentile_ms(&mut m.delays_us, 0.5);
        s.delay_p99_ms = percentile_ms(&mut m.delays_us, 0.99);
    }
    out
}

/// An ordinary room let in onto a worker above the soft threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverSoft {
    pub room: u32,
    pub node: String,
    /// The lowest stress the worker showed while the join was decided.
    pub stress: f64,
}

/// The stress an ordinary room's worker may have shown admission when it
/// was let in: every sample of that worker from the last one before the
/// join was sent to the first one after it was answered (the report in
/// force when admission decided is among them: it is the last one the
/// signal server had received by then). Returns the lowest of them per
/// room; a room whose lowest is above `soft` was let in over the soft
/// threshold whatever report admission read.
pub fn stress_at_admission(
    joins: &[JoinRecord],
    room_node: &HashMap<u32, String>,
    nodes: &[NodeSample],
) -> Vec<OverSoft> {
    let mut out = Vec::new();
    for j in joins
        .iter()
        .filter(|j| j.starts_room() && !j.priority && j.admitted())
    {
        let Some(node) = room_node.get(&j.room) else {
            continue;
        };
        let of_node: Vec<&NodeSample> = nodes.iter().filter(|n| &n.id == node).collect();
        let from = of_node
            .iter()
            .rposition(|n| n.t_us <= j.sent_us)
            .unwrap_or(0);
        let to = of_node
            .iter()
            .position(|n| n.t_us >= j.answered_us)
            .unwrap_or(of_node.len().saturating_sub(1));
        let lowest = of_node
            .get(from..=to.max(from))
            .unwrap_or_default()
            .iter()
            .map(|n| n.stress)
            .fold(f64::INFINITY, f64::min);
        if lowest.is_finite() {
            out.push(OverSoft {
                room: j.room,
                node: node.clone(),
                stress: lowest,
            });
        }
    }
    out
}

/// When the first room let in onto `node` was answered, in µs after
/// `since_us`.
pub fn first_room_on(
    node: &str,
    since_us: u64,
    joins: &[JoinRecord],
    room_node: &HashMap<u32, String>,
) -> Option<u64> {
    joins
        .iter()
        .filter(|j| j.starts_room() && j.admitted() && j.answered_us >= since_us)
        .filter(|j| room_node.get(&j.room).is_some_and(|n| n == node))
        .map(|j| j.answered_us - since_us)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(
        room: u32,
        member: u32,
        priority: bool,
        at_ms: u64,
        refused: Option<&str>,
    ) -> JoinRecord {
        JoinRecord {
            room,
            member,
            priority,
            sent_us: at_ms * 1000,
            answered_us: at_ms * 1000 + 20_000,
            refused: refused.map(String::from),
            partners: 0,
        }
    }

    fn sample(t_ms: u64, id: &str, stress: f64) -> NodeSample {
        NodeSample {
            t_us: t_ms * 1000,
            id: id.into(),
            stress,
        }
    }

    #[test]
    fn each_answer_counts_in_its_second() {
        let joins = [
            join(0, 0, false, 100, None),
            join(0, 1, false, 500, None),
            join(1, 0, true, 1200, None),
            join(2, 0, false, 1300, Some("overloaded")),
            join(3, 0, false, 2100, Some("redirected")),
            join(1, 1, true, 2200, Some("server-full")),
            join(4, 0, true, 2300, Some("server-full")),
        ];
        let s = seconds(3, &joins, &[], &[], Vec::new());
        let row = |s: &SecondFigures| {
            (
                s.rooms_admitted,
                s.priority_admitted,
                s.rooms_refused,
                s.rooms_redirected,
                s.priority_refused,
                s.joins_refused,
                s.running_calls,
            )
        };
        assert_eq!(row(&s[0]), (1, 0, 0, 0, 0, 0, 1));
        assert_eq!(row(&s[1]), (0, 1, 1, 0, 0, 0, 2));
        assert_eq!(row(&s[2]), (0, 0, 0, 1, 1, 1, 2));
    }

    #[test]
    fn loss_delay_stress_and_headroom_per_second() {
        let media = vec![
            Second {
                expected: 200,
                received: 199,
                delays_us: vec![1000; 199],
            },
            Second::default(),
        ];
        let nodes = [
            sample(200, "w1", 0.3),
            sample(900, "w1", 0.4),
            sample(1500, "w2", 0.1),
        ];
        let s = seconds(2, &[], &nodes, &[(100_000, 7), (1_100_000, 5)], media);
        assert_eq!(s[0].loss_pct, Some(0.5));
        assert_eq!(s[0].delay_p99_ms, Some(1.0));
        assert_eq!(s[1].loss_pct, None, "nothing owed is not 0 % loss");
        assert_eq!(s[0].stress["w1"], 0.4);
        assert_eq!(s[1].stress["w1"], 0.4);
        assert_eq!(s[1].stress["w2"], 0.1);
        assert_eq!((s[0].headroom, s[1].headroom), (Some(7), Some(5)));
    }

    #[test]
    fn admission_is_judged_on_the_reports_it_could_have_read() {
        let nodes = [
            sample(0, "w1", 0.5),
            sample(1000, "w1", 0.75),
            sample(2000, "w1", 0.8),
            sample(3000, "w1", 0.6),
        ];
        let room_node: HashMap<u32, String> =
            [(0, "w1".into()), (1, "w1".into()), (2, "w1".into())].into();
        // Room 0 asked at 1.5 s (reports 0.75, then 0.8 seen after): over.
        // Room 1 asked at 2.5 s, answered as 0.6 came: it may have read 0.6.
        // Room 2 is a priority room: it may use the headroom.
        let joins = [
            join(0, 0, false, 1500, None),
            join(1, 0, false, 2990, None),
            join(2, 0, true, 1500, None),
        ];
        let seen = stress_at_admission(&joins, &room_node, &nodes);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].stress, 0.75);
        assert_eq!(seen[1].stress, 0.6);
    }

    #[test]
    fn the_new_workers_first_room() {
        let room_node: HashMap<u32, String> =
            [(0, "w1".into()), (1, "w3".into()), (2, "w3".into())].into();
        let joins = [
            join(0, 0, false, 5000, None),
            join(2, 0, false, 6500, None),
            join(1, 0, false, 5900, None),
        ];
        assert_eq!(
            first_room_on("w3", 5_000_000, &joins, &room_node),
            Some(920_000)
        );
        assert_eq!(first_room_on("w4", 0, &joins, &room_node), None);
    }
}
