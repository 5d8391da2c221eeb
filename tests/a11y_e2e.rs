//! Accessibility audit of every screen of the web client, in English and
//! in French: axe-core (from the npm registry, installed by
//! scripts/test.sh into target/axe) is injected into each screen in
//! headless Chromium, and no violation of impact "serious" or "critical"
//! is allowed. Every violation found, minor ones included, is printed with
//! the elements concerned, for humans to read (`-- --nocapture`).
//!
//! Screens: home, home with an invalid room link, pre-join, a call of two
//! (in the browser's window and on a phone's screen), the call while it is
//! interrupted (the server stopped), the screen after leaving, and the one
//! left alone in the call.
//!
//! axe.min.js is read from `PARLOIR_AXE_JS` if set, else from
//! `target/axe/node_modules/axe-core/axe.min.js` (what
//! `npm install --prefix target/axe axe-core@4` makes).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::browser::{Browser, Tab};
use common::{join, wait_for, wait_full_mesh, wait_full_mesh_rejoined, Server};

fn axe_source() -> String {
    let path = std::env::var_os("PARLOIR_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/axe/node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is needed for the accessibility audit and {} cannot be read ({e}): \
             run `npm install --prefix target/axe axe-core@4` (scripts/test.sh does), \
             or set PARLOIR_AXE_JS to an axe.min.js",
            path.display()
        )
    })
}

/// Runs axe on what the tab shows now: the violations, simplified, and
/// how many elements of each rule axe could not decide on. Its default
/// rules, and the size of what one presses or taps (WCAG 2.2 AA, off by
/// default in axe 4): hands that shake need targets of 24 px at least.
const RUN_AXE: &str =
    "axe.run(document, { rules: { 'target-size': { enabled: true } } }).then((r) => ({ \
    violations: r.violations.map((v) => ({ \
      id: v.id, impact: v.impact, help: v.help, url: v.helpUrl, \
      nodes: v.nodes.map((n) => ({ target: n.target.map(String).join(' '), html: n.html, \
                                   summary: n.failureSummary })) })), \
    incomplete: r.incomplete.map((v) => `${v.id} (${v.nodes.length})`) }))";

/// Audits the screen `tab` shows: prints every violation, and returns the
/// serious and critical ones, one line each.
async fn audit(tab: &Tab<'_>, axe: &str, lang: &str, screen: &str) -> Vec<String> {
    assert_eq!(
        tab.eval("document.documentElement.lang").await,
        lang,
        "the {screen} screen is in the browser's language"
    );
    if tab.eval("typeof axe").await != "object" {
        let r = tab.eval(axe).await;
        assert!(r.get("exception").is_none(), "axe-core loads: {r}");
    }
    let r = tab.eval(RUN_AXE).await;
    let Some(violations) = r["violations"].as_array() else {
        panic!("axe.run on the {screen} screen ({lang}) failed: {r}");
    };
    eprintln!(
        "== {lang} {screen}: {} violation(s){}",
        violations.len(),
        if violations.is_empty() { "" } else { ":" }
    );
    if let Some(undecided) = r["incomplete"].as_array().filter(|a| !a.is_empty()) {
        let rules: Vec<&str> = undecided.iter().filter_map(Value::as_str).collect();
        eprintln!("  (for a human to check: {})", rules.join(", "));
    }
    let mut failing = Vec::new();
    for v in violations {
        let impact = v["impact"].as_str().unwrap_or("?");
        eprintln!("  [{impact}] {}: {} ({})", v["id"], v["help"], v["url"]);
        let nodes = v["nodes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for n in nodes {
            eprintln!("    at {}  {}", n["target"], n["html"]);
            if let Some(s) = n["summary"].as_str() {
                for line in s.lines() {
                    eprintln!("      {line}");
                }
            }
        }
        if matches!(impact, "serious" | "critical") {
            let at: Vec<&str> = nodes.iter().filter_map(|n| n["target"].as_str()).collect();
            failing.push(format!(
                "{lang} {screen}: [{impact}] {} at {}",
                v["id"].as_str().unwrap_or("?"),
                at.join(", ")
            ));
        }
    }
    failing
}

/// Waits until `expr` is true in the tab.
async fn until(tab: &Tab<'_>, what: &str, expr: &str, timeout: Duration) {
    wait_for(what, timeout, || async {
        (tab.eval(expr).await == true).then_some(())
    })
    .await;
}

/// Waits up to `timeout` for `expr` to be true in the tab; whether it was.
async fn perhaps(tab: &Tab<'_>, expr: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        if tab.eval(expr).await == true {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

const SHOWN: &str = "((id) => !document.getElementById(id).hidden)";

/// Walks every screen in a browser that asks for `lang`; the serious and
/// critical violations found.
async fn audit_all(server: &mut Server, axe: &str, lang: &str) -> Vec<String> {
    let browser = Browser::launch_in(None, &[format!("--accept-lang={lang}")]).await;
    let base = server.http.clone();
    let t = Duration::from_secs(20);
    let mut failing = Vec::new();

    let home = browser.open(&format!("{base}/")).await;
    until(&home, "the home screen", &format!("{SHOWN}('home')"), t).await;
    failing.extend(audit(&home, axe, lang, "home").await);
    // The audit can see: a button without a name is a critical violation.
    let found = home
        .eval(
            "document.body.append(document.createElement('button')); \
             axe.run(document).then((r) => r.violations.map((v) => v.id))",
        )
        .await;
    assert!(
        found
            .as_array()
            .is_some_and(|a| a.contains(&"button-name".into())),
        "axe finds a button without a name: {found}"
    );
    home.close().await;

    let invalid = browser.open(&format!("{base}/r/x!")).await;
    until(
        &invalid,
        "the home screen saying the link is not valid",
        &format!("{SHOWN}('home') && {SHOWN}('home-error')"),
        t,
    )
    .await;
    failing.extend(audit(&invalid, axe, lang, "invalid link").await);
    invalid.close().await;

    let room = format!("a11y-{lang}");
    let prejoin = browser.open(&format!("{base}/r/{room}")).await;
    until(
        &prejoin,
        "the pre-join screen with the camera's preview",
        &format!("{SHOWN}('prejoin') && document.getElementById('preview').readyState >= 2"),
        t,
    )
    .await;
    failing.extend(audit(&prejoin, axe, lang, "pre-join").await);
    prejoin.close().await;

    let tabs = [
        join(&browser, &base, &room, "Ana").await,
        join(&browser, &base, &room, "Ben").await,
    ];
    wait_full_mesh("Ana and Ben in a call", &tabs, Duration::from_secs(30)).await;
    let (ana, ben) = (&tabs[0].0, &tabs[1].0);
    // The connection indicators come with the first quality reports: the
    // audit should see them (they are labelled images).
    let indicators = perhaps(
        ana,
        "window.parloir.state().link !== null && window.parloir.tiles().every((t) => t.link)",
        Duration::from_secs(10),
    )
    .await;
    if !indicators {
        eprintln!("(no connection indicators shown yet: audited without them)");
    }
    failing.extend(audit(ana, axe, lang, "call of two").await);
    // On a phone the controls wrap and the tiles stack.
    ana.cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    failing.extend(audit(ana, axe, lang, "call of two on a phone").await);
    ana.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
        .await;

    // The server goes away: the call says it is interrupted.
    server.stop();
    until(
        ana,
        "the call to say it is interrupted",
        &format!("{SHOWN}('status') && {SHOWN}('retry-now')"),
        t,
    )
    .await;
    failing.extend(audit(ana, axe, lang, "call interrupted").await);
    server.start_again();
    wait_full_mesh_rejoined("the call back", &[ana, ben], Duration::from_secs(30)).await;

    ana.eval("document.getElementById('leave').click()").await;
    until(
        ana,
        "the screen after leaving",
        &format!("{SHOWN}('left')"),
        t,
    )
    .await;
    failing.extend(audit(ana, axe, lang, "left").await);

    until(
        ben,
        "Ben alone in the call",
        "window.parloir.tiles().length === 0",
        t,
    )
    .await;
    failing.extend(audit(ben, axe, lang, "call alone").await);
    failing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_serious_accessibility_violation_on_any_screen_in_english_or_french() {
    let axe = axe_source();
    let mut server = Server::start();
    let mut failing = audit_all(&mut server, &axe, "en").await;
    failing.extend(audit_all(&mut server, &axe, "fr").await);
    assert!(
        failing.is_empty(),
        "serious or critical accessibility violations (details above):\n{}",
        failing.join("\n")
    );
}
