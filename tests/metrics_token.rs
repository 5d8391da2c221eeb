//! `/metrics` behind a token: `parloir serve --metrics-token` answers 401
//! to a scrape without it or with another, and the figures to one that
//! shows it as a bearer token, as Prometheus sends it.

mod common;

use common::Server;

const TOKEN: &str = "a-metrics-token-of-the-tests";

async fn scrape(base: &str, token: Option<&str>) -> (u16, String) {
    let client = parloir::net::http_client(None).expect("an HTTP client");
    let mut req = client.get(format!("{base}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("an answer");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_when_one_is_set() {
    let server = Server::start_args(&["--metrics-token", TOKEN]);
    let base = &server.http;
    assert_eq!(scrape(base, None).await.0, 401, "no token");
    assert_eq!(
        scrape(base, Some("another-token")).await.0,
        401,
        "another token"
    );
    let (status, body) = scrape(base, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("parloir_signal_sessions"),
        "the figures: {body}"
    );
    // Health and readiness stay open: load balancers probe them.
    assert_eq!(common::http_status(base, "/healthz").await, 200);
}
