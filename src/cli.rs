//! Operator commands against a running signal server: `parloir nodes`,
//! `parloir drain`, `parloir priority-room` and `parloir admission`.

use std::fmt::Write;
use std::time::Duration;

pub use crate::signal::api_types::{
    AdmissionState, NodeSummary, PriorityRoom, PriorityRoomRequest,
};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("unexpected answer from {url}: {source}")]
    Body { url: String, source: reqwest::Error },
    #[error("cannot make an HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

async fn request(req: reqwest::RequestBuilder, url: &str) -> Result<reqwest::Response, CliError> {
    let res = req
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|source| CliError::Unreachable {
            url: url.to_string(),
            source,
        })?;
    if !res.status().is_success() {
        let status = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        return Err(CliError::Status {
            url: url.to_string(),
            status,
            body,
        });
    }
    Ok(res)
}

pub async fn nodes(signal: &str, secret: &str) -> Result<Vec<NodeSummary>, CliError> {
    let url = format!("{}/api/nodes", signal.trim_end_matches('/'));
    let res = request(
        crate::net::http_client(None)?.get(&url).bearer_auth(secret),
        &url,
    )
    .await?;
    res.json()
        .await
        .map_err(|source| CliError::Body { url, source })
}

pub async fn drain(signal: &str, secret: &str, id: &str) -> Result<(), CliError> {
    let url = format!("{}/api/nodes/{id}/drain", signal.trim_end_matches('/'));
    request(
        crate::net::http_client(None)?
            .post(&url)
            .bearer_auth(secret),
        &url,
    )
    .await?;
    Ok(())
}

/// Creates a priority room; its link is the signal URL and `path`.
pub async fn priority_room(
    signal: &str,
    secret: &str,
    req: &PriorityRoomRequest,
) -> Result<PriorityRoom, CliError> {
    let url = format!("{}/api/priority-rooms", signal.trim_end_matches('/'));
    let res = request(
        crate::net::http_client(None)?
            .post(&url)
            .bearer_auth(secret)
            .json(req),
        &url,
    )
    .await?;
    res.json()
        .await
        .map_err(|source| CliError::Body { url, source })
}

/// The admission state; with `redirect`, sets it first.
pub async fn admission(
    signal: &str,
    secret: &str,
    redirect: Option<bool>,
) -> Result<AdmissionState, CliError> {
    let url = format!("{}/api/admission", signal.trim_end_matches('/'));
    let client = crate::net::http_client(None)?;
    let req = match redirect {
        Some(on) => client
            .put(&url)
            .json(&serde_json::json!({ "redirect": on })),
        None => client.get(&url),
    };
    let res = request(req.bearer_auth(secret), &url).await?;
    res.json()
        .await
        .map_err(|source| CliError::Body { url, source })
}

/// The `parloir nodes` table.
pub fn table(nodes: &[NodeSummary]) -> String {
    let mut out = format!(
        "{:<24} {:<28} {:<9} {:>6} {:>5} {:>12}  {}\n",
        "ID", "ADDRESS", "STATE", "STRESS", "ROOMS", "PARTICIPANTS", "SHARDS (PARTICIPANTS@CPU)"
    );
    for n in nodes {
        let state = serde_json::to_value(n.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let shards: Vec<String> = n
            .shards
            .iter()
            .map(|s| format!("{}@{:.2}", s.participants, s.cpu))
            .collect();
        let _ = writeln!(
            out,
            "{:<24} {:<28} {:<9} {:>6.2} {:>5} {:>12}  {}",
            n.id,
            n.address,
            state,
            n.stress,
            n.rooms,
            n.participants,
            if shards.is_empty() {
                "-".to_string()
            } else {
                shards.join(" ")
            }
        );
    }
    out
}

/// The `parloir admission` summary.
pub fn admission_text(a: &AdmissionState) -> String {
    let mut out = format!(
        "new ordinary rooms below stress {:.2}; joins and priority rooms below {:.2}\n\
         headroom: {} rooms of the usual size\n\
         redirect new rooms to partners: {}\n",
        a.soft,
        a.hard,
        a.headroom,
        if a.redirect { "on" } else { "off" }
    );
    for p in &a.partners {
        let _ = writeln!(out, "partner: {} {}", p.name, p.url);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::load::Rates;
    use crate::cluster::report::{NodeState, ShardLoad};

    #[test]
    fn table_has_one_line_per_node() {
        let n = NodeSummary {
            id: "w1".into(),
            address: "http://10.0.0.1:9100".into(),
            media: "10.0.0.1:10000".into(),
            state: NodeState::Draining,
            stress: 0.25,
            stress_smoothed: None,
            rooms: 3,
            participants: 7,
            rates: Rates::default(),
            shards: vec![
                ShardLoad {
                    rooms: 2,
                    participants: 5,
                    cpu: 0.31,
                },
                ShardLoad {
                    rooms: 1,
                    participants: 2,
                    cpu: 0.1,
                },
            ],
        };
        let t = table(&[n]);
        assert_eq!(t.lines().count(), 2);
        assert!(t.lines().nth(1).unwrap().split_whitespace().eq([
            "w1",
            "http://10.0.0.1:9100",
            "draining",
            "0.25",
            "3",
            "7",
            "5@0.31",
            "2@0.10"
        ]));
    }
}
