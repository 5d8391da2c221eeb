//! Accessibility audit of every screen of the web client, in English and
//! in French: axe-core (from the npm registry, installed by
//! scripts/test.sh into target/axe) is injected into each screen in
//! headless Chromium, and no violation of impact "serious" or "critical"
//! is allowed. Every violation found, minor ones included, is printed with
//! the elements concerned, for humans to read (`-- --nocapture`).
//!
//! Screens: every one of `common::screens::walk` (the same as the
//! screenshots'), at a phone's size and a laptop's.
//!
//! axe.min.js is read from `PARLOIR_AXE_JS` if set, else from
//! `target/axe/node_modules/axe-core/axe.min.js` (what
//! `npm install --prefix target/axe axe-core@4` makes).

mod common;

use std::path::PathBuf;

use serde_json::Value;

use common::browser::Tab;
use common::screens::{self, Shown, Visit};
use common::Server;

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

/// Audits every screen it is shown; keeps the serious and critical
/// violations.
struct Auditor<'a> {
    axe: &'a str,
    failing: Vec<String>,
    /// Whether axe was shown to find what it should (checked once).
    checked: bool,
}

impl Visit for Auditor<'_> {
    async fn visit(&mut self, shown: Shown<'_, '_>) {
        let what = format!("{} ({})", shown.screen, shown.size);
        self.failing
            .extend(audit(shown.tab, self.axe, shown.lang, &what).await);
        if !self.checked {
            // The audit can see: a button without a name is a critical
            // violation.
            let found = shown
                .tab
                .eval(
                    "(() => { const b = document.createElement('button'); document.body.append(b); \
                     return axe.run(document).then((r) => { b.remove(); \
                     return r.violations.map((v) => v.id); }); })()",
                )
                .await;
            assert!(
                found
                    .as_array()
                    .is_some_and(|a| a.contains(&"button-name".into())),
                "axe finds a button without a name: {found}"
            );
            self.checked = true;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_serious_accessibility_violation_on_any_screen_in_english_or_french() {
    let axe = axe_source();
    let mut server = Server::start_args(screens::SERVER_ARGS);
    let mut auditor = Auditor {
        axe: &axe,
        failing: Vec::new(),
        checked: false,
    };
    for lang in ["en", "fr"] {
        screens::walk(&mut server, lang, &mut auditor).await;
    }
    assert!(
        auditor.failing.is_empty(),
        "serious or critical accessibility violations (details above):\n{}",
        auditor.failing.join("\n")
    );
}
