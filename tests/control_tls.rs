//! The control channel across hosts is TLS, and the worker's certificate
//! is checked: a signal server with a cluster CA (`--cluster-ca`) places
//! calls on a worker whose certificate that CA signed, and refuses both a
//! worker with a certificate from elsewhere (someone on the path posing as
//! a worker, to read or swap the fingerprints in the SDP) and a worker
//! without TLS. The worker reaches the signal server over HTTPS too,
//! checked the same way. Workers sit on loopback addresses of their own,
//! as on their own hosts; the participants are real Chromium tabs.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::certificate::{make_ca, make_signed};
use common::{join, wait_for, wait_full_mesh, wait_full_mesh_rejoined, you, Proc};
use parloir::cluster::tls::ClusterTls;
use serde_json::Value;

const SECRET: &str = "control-tls-test-secret";

fn worker(signal: &str, ca: &str, ip: &str, id: &str, tls: Option<(&str, &str)>) -> Proc {
    let mut extra = vec!["--cluster-ca", ca];
    if let Some((cert, key)) = tls {
        extra.extend_from_slice(&["--tls-cert", cert, "--tls-key", key]);
    }
    Proc::worker(signal, SECRET, ip, id, &extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_channel_is_tls_and_an_impostor_worker_is_refused() {
    let dir = std::env::temp_dir().join(format!("parloir-ctls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = make_ca(&dir, "cluster-ca");
    let other_ca = make_ca(&dir, "someone-else");
    let signal_cert = make_signed(&dir, &ca, "signal", "127.0.0.1");
    let good_cert = make_signed(&dir, &ca, "worker-a", "127.0.0.5");
    let impostor_cert = make_signed(&dir, &other_ca, "impostor", "127.0.0.6");
    let later_cert = make_signed(&dir, &ca, "worker-b", "127.0.0.8");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let ca_file = s(&ca.0);

    let signal = Proc::parloir(&[
        "signal",
        "--http",
        "127.0.0.1:0",
        "--secret",
        SECRET,
        "--tls-cert",
        &s(&signal_cert.0),
        "--tls-key",
        &s(&signal_cert.1),
        "--cluster-ca",
        &ca_file,
    ]);
    let url = signal.url();
    assert!(url.starts_with("https://"), "{url}");
    let api = parloir::net::http_client(Some(&ClusterTls::load(&ca.0).unwrap().config))
        .expect("an HTTP client");
    let nodes = || {
        let api = api.clone();
        let url = format!("{url}/api/nodes");
        async move {
            let v: Value = api
                .get(url)
                .bearer_auth(SECRET)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let ids: Vec<String> = v
                .as_array()?
                .iter()
                .filter_map(|n| n["id"].as_str().map(str::to_string))
                .collect();
            Some(ids)
        }
    };

    // A worker with a certificate the cluster CA signed: a call works
    // through it.
    let mut good = worker(
        &url,
        &ca_file,
        "127.0.0.5",
        "worker-a",
        Some((&s(&good_cert.0), &s(&good_cert.1))),
    );
    wait_for(
        "worker-a to report over HTTPS",
        Duration::from_secs(10),
        || async {
            nodes()
                .await?
                .contains(&"worker-a".to_string())
                .then_some(())
        },
    )
    .await;
    let browser = Browser::launch_in(None, &["--ignore-certificate-errors".to_string()]).await;
    let room = "control-tls-e2e";
    let tabs = [
        join(&browser, &url, room, "Ana").await,
        join(&browser, &url, room, "Ben").await,
    ];
    wait_full_mesh(
        "Ana and Ben call through a worker reached over TLS",
        &tabs,
        Duration::from_secs(30),
    )
    .await;

    // That worker dies. Two others report: one whose certificate comes
    // from another CA, one without TLS. Neither gets the call.
    good.child.kill().unwrap();
    wait_for("the call to notice", Duration::from_secs(10), || async {
        for (tab, _) in &tabs {
            if you(tab).await.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
    let _impostor = worker(
        &url,
        &ca_file,
        "127.0.0.6",
        "impostor",
        Some((&s(&impostor_cert.0), &s(&impostor_cert.1))),
    );
    let _plain = worker(&url, &ca_file, "127.0.0.7", "plain", None);
    wait_for("both to report", Duration::from_secs(10), || async {
        let ids = nodes().await?;
        (ids.contains(&"impostor".into()) && ids.contains(&"plain".into())).then_some(())
    })
    .await;
    let refused_since = Instant::now();
    while refused_since.elapsed() < Duration::from_secs(8) {
        for (tab, _) in &tabs {
            assert_eq!(
                you(tab).await,
                None,
                "a call was placed on a worker whose control channel is not trusted"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A trusted worker comes: the call comes back by itself.
    let started = Instant::now();
    let _later = worker(
        &url,
        &ca_file,
        "127.0.0.8",
        "worker-b",
        Some((&s(&later_cert.0), &s(&later_cert.1))),
    );
    let tabs: Vec<_> = tabs.iter().map(|(t, _)| t).collect();
    wait_full_mesh_rejoined("the call back on worker-b", &tabs, Duration::from_secs(30)).await;
    eprintln!(
        "call back on a trusted worker {:.1} s after it started",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
