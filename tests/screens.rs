//! Screenshots of every screen of the web client, in English and in
//! French, on a phone (390×844) and on a laptop (1280×800): what
//! scripts/screens.sh runs to make docs/screens/. Not a test (it checks
//! nothing about the client beyond the screens being shown): ignored
//! unless asked for with `--ignored`.
//!
//! Files: `{en,fr}-{phone,laptop}-SCREEN.png` in `PARLOIR_SCREENS_DIR`
//! (default docs/screens), SCREEN one of home, invalid-link, prejoin,
//! call-2, call-3, call-interrupted, left. Before every shot of a call,
//! each video shown plays real frames of the fake camera.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use common::browser::{Browser, Tab};
use common::{frames_decoded, join, wait_for, wait_full_mesh, wait_full_mesh_rejoined, Server};

/// Name, width, height, device pixel ratio, mobile.
const SIZES: [(&str, u32, u32, u32, bool); 2] = [
    ("phone", 390, 844, 1, true),
    ("laptop", 1280, 800, 1, false),
];

fn out_dir() -> PathBuf {
    let dir = std::env::var_os("PARLOIR_SCREENS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screens"));
    std::fs::create_dir_all(&dir).expect("screenshots directory");
    dir
}

/// Waits until `expr` is true in the tab.
async fn until(tab: &Tab<'_>, what: &str, expr: &str) {
    wait_for(what, Duration::from_secs(30), || async {
        (tab.eval(expr).await == true).then_some(())
    })
    .await;
}

const SHOWN: &str = "((id) => !document.getElementById(id).hidden)";

/// Every video the tab shows (in a tile with its camera on and forwarded,
/// or the pre-join preview) has a picture.
const VIDEOS_PLAY: &str = "[...document.querySelectorAll('video')] \
    .filter((v) => v.offsetParent !== null && getComputedStyle(v).visibility !== 'hidden' \
                   && !v.closest('.cam-off, .not-forwarded')) \
    .every((v) => v.readyState >= 2 && v.videoWidth > 0)";

/// Waits until the tab decodes `more` frames of every other participant
/// than it had: the pictures move.
async fn frames_flow(tab: &Tab<'_>, more: u64) {
    let before = frames_decoded(tab).await;
    wait_for("frames decoded", Duration::from_secs(20), || async {
        let now = frames_decoded(tab).await;
        let moving = now
            .iter()
            .all(|(id, n)| *n >= before.get(id).copied().unwrap_or(0) + more);
        (moving && tab.eval(VIDEOS_PLAY).await == true).then_some(())
    })
    .await;
}

/// Takes the tab's screen at every size, as `LANG-SIZE-SCREEN.png`.
async fn shoot(tab: &Tab<'_>, lang: &str, screen: &str, in_call: bool) {
    let dir = out_dir();
    for (size, width, height, dpr, mobile) in SIZES {
        tab.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": dpr,
                    "mobile": mobile }),
        )
        .await;
        tab.cdp("Page.bringToFront", json!({})).await;
        // The layout settles, the tiles' new sizes are told to the server,
        // and the pictures follow.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        if in_call {
            frames_flow(tab, 25).await;
        }
        until(tab, "every video shown to play", VIDEOS_PLAY).await;
        let path = dir.join(format!("{lang}-{size}-{screen}.png"));
        let _ = std::fs::remove_file(&path);
        tab.screenshot(path.to_str().expect("a UTF-8 path")).await;
        let bytes = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{} written: {e}", path.display()))
            .len();
        eprintln!("{} ({} kB)", path.display(), bytes / 1000);
    }
}

async fn screens_in(server: &mut Server, lang: &str) {
    let browser = Browser::launch_in(None, &[format!("--accept-lang={lang}")]).await;
    let base = server.http.clone();
    let is_lang = format!("document.documentElement.lang === '{lang}'");

    let home = browser.open(&format!("{base}/")).await;
    until(&home, "home", &format!("{SHOWN}('home') && {is_lang}")).await;
    shoot(&home, lang, "home", false).await;
    home.close().await;

    let invalid = browser.open(&format!("{base}/r/x!")).await;
    until(
        &invalid,
        "the invalid link said",
        &format!("{SHOWN}('home-error') && {is_lang}"),
    )
    .await;
    shoot(&invalid, lang, "invalid-link", false).await;
    invalid.close().await;

    let room = if lang == "fr" {
        "chambre-12"
    } else {
        "room-12"
    };
    let prejoin = browser.open(&format!("{base}/r/{room}")).await;
    until(
        &prejoin,
        "the pre-join screen and its preview",
        &format!(
            "{SHOWN}('prejoin') && {is_lang} && document.getElementById('preview').readyState >= 2"
        ),
    )
    .await;
    shoot(&prejoin, lang, "prejoin", false).await;
    prejoin.close().await;

    // Names as families write them.
    let mut tabs = vec![
        join(&browser, &base, room, "Ana").await,
        join(&browser, &base, room, "Mamie%20Jos%C3%A9e").await,
    ];
    wait_full_mesh("a call of two", &tabs, Duration::from_secs(30)).await;
    let quality_shown =
        "window.parloir.state().link !== null && window.parloir.tiles().every((t) => t.link)";
    until(&tabs[0].0, "the connection indicators", quality_shown).await;
    shoot(&tabs[0].0, lang, "call-2", true).await;

    tabs.push(join(&browser, &base, room, "Dr%20Ben%20Martin").await);
    wait_full_mesh("a call of three", &tabs, Duration::from_secs(30)).await;
    until(&tabs[0].0, "the connection indicators", quality_shown).await;
    shoot(&tabs[0].0, lang, "call-3", true).await;

    let ana = &tabs[0].0;
    server.stop();
    until(
        ana,
        "the call said interrupted",
        &format!("{SHOWN}('status') && {SHOWN}('retry-now')"),
    )
    .await;
    shoot(ana, lang, "call-interrupted", false).await;
    server.start_again();
    let all: Vec<&Tab> = tabs.iter().map(|(t, _)| t).collect();
    wait_full_mesh_rejoined("the call back", &all, Duration::from_secs(30)).await;

    ana.eval("document.getElementById('leave').click()").await;
    until(ana, "the screen after leaving", &format!("{SHOWN}('left')")).await;
    shoot(ana, lang, "left", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "makes docs/screens: run by scripts/screens.sh"]
async fn screenshots_of_every_screen() {
    let mut server = Server::start();
    for lang in ["en", "fr"] {
        screens_in(&mut server, lang).await;
    }
}
