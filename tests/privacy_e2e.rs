//! Privacy by default: a call between two Chromium participants, on a
//! server in its default configuration (its default log level too), leaves
//! no room name, no participant's name and no client address in its logs
//! or its metrics. The server listens on 127.0.0.2, so the one address
//! its logs may show is its own; the browsers come from 127.0.0.1.
//!
//! And the same check can fail: with `--log-personal-data` the room's name
//! is in the log.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::browser::Browser;
use common::{join, metrics_text, signalling_join, wait_full_mesh};
use serde_json::json;

/// `parloir serve` on 127.0.0.2 with its log (standard error) in a file,
/// in the default configuration: no `RUST_LOG`, no flag but the addresses.
struct Logged {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Logged {
    fn start(extra: &[&str]) -> Logged {
        let log = std::env::temp_dir().join(format!(
            "parloir-privacy-{}-{}.log",
            std::process::id(),
            extra.len()
        ));
        let media = format!("127.0.0.2:{}", common::free_udp_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_parloir"))
            .args(["serve", "--http", "127.0.0.2:0", "--media", &media])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start parloir");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("a URL")
            .trim_end_matches(['/', '.'])
            .to_string();
        Logged { child, url, log }
    }

    /// Stops it and returns everything it logged.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.log).expect("log");
        let _ = std::fs::remove_file(&self.log);
        text
    }
}

const ROOM: &str = "chambre-privee-217";
const NAMES: [&str; 2] = ["Zephyrine", "Barnabe"];

/// Lines of `text` that carry personal data.
fn personal_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            l.contains(ROOM) || NAMES.iter().any(|n| l.contains(n)) || l.contains("127.0.0.1")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_leaves_no_room_name_person_or_address_in_logs_or_metrics() {
    let server = Logged::start(&[]);
    let base = server.url.clone();
    assert!(base.starts_with("http://127.0.0.2:"), "{base}");
    let browser = Browser::launch().await;
    let call = vec![
        join(&browser, &base, ROOM, NAMES[0]).await,
        join(&browser, &base, ROOM, NAMES[1]).await,
    ];
    wait_full_mesh("the call is up", &call, Duration::from_secs(20)).await;
    let metrics = metrics_text(&base).await;
    assert!(metrics.contains("parloir_"), "metrics answered");
    // One leaves: the join, the leave and the removal are all logged.
    let (first, _) = call.into_iter().next().expect("a tab");
    first.close().await;
    drop(browser);
    // Polled, not slept on: on a busy machine the removal comes later.
    common::wait_for(
        "the removal to be logged",
        Duration::from_secs(15),
        || async {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            log.contains("participant removed").then_some(())
        },
    )
    .await;
    let log = server.stop();

    // Written to a file: plain text, no terminal colour codes.
    assert!(!log.contains('\x1b'), "colour codes in a log file:\n{log}");
    assert!(
        log.contains("participant joined") && log.contains("participant removed"),
        "the call was logged:\n{log}"
    );
    assert_eq!(personal_lines(&log), Vec::<&str>::new(), "in the log");
    assert_eq!(personal_lines(&metrics), Vec::<&str>::new(), "in /metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_log_personal_data_the_room_is_named() {
    let server = Logged::start(&["--log-personal-data"]);
    let (_ws, welcome) = signalling_join(
        &server.url,
        &json!({"type": "join", "v": 1, "room": ROOM, "name": NAMES[0]}),
    )
    .await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let log = server.stop();
    assert!(
        personal_lines(&log).iter().any(|l| l.contains(ROOM)),
        "the room is named:\n{log}"
    );
}
