//! Honest device states and the full room, in headless Chromium against
//! the real server: a kiosk whose camera is refused says so on the call
//! screen, tells the others only what it really sends, and asks for the
//! camera again when its button is pressed; someone who finds the room
//! full waits on a screen of their own, camera released, and gets in by
//! themselves when a place frees up.

mod common;

use std::time::Duration;

use common::browser::{Browser, Tab};
use common::{join, seen_and_heard, still_decoding, wait_for, wait_full_mesh, Server};
use serde_json::Value;

const CALL: Duration = Duration::from_secs(30);

async fn state(tab: &Tab<'_>) -> Value {
    tab.eval("window.parloir.state()").await
}

async fn screen(tab: &Tab<'_>) -> Value {
    tab.eval("window.parloir.screen()").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_camera_and_full_room() {
    let server = Server::start_args(&["--max-participants", "2"]);
    let browser = Browser::launch_asking().await;

    // Ana's kiosk: microphone allowed, camera refused.
    browser
        .set_permission(&server.http, "microphone", "granted")
        .await;
    browser
        .set_permission(&server.http, "camera", "denied")
        .await;
    let ana = join(&browser, &server.http, "devices-e2e", "Ana").await;
    browser
        .set_permission(&server.http, "camera", "granted")
        .await;
    let ben = join(&browser, &server.http, "devices-e2e", "Ben").await;
    let tabs = [ana, ben];
    let [(ana, a), (ben, b)] = &tabs;
    let a = *a;
    // The call is up: Ben hears Ana, Ana sees and hears Ben.
    wait_for("Ben to hear Ana and Ana to see Ben", CALL, || async {
        let at_ben = ben.eval("window.parloir.stats()").await;
        let at_ana = seen_and_heard(ana).await;
        (at_ben[a.to_string()]["audioPacketsReceived"].as_u64()? > 0 && at_ana.contains(b))
            .then_some(())
    })
    .await;
    // Said on the call screen, where she looks, not on the hidden pre-join.
    let notice = ana
        .eval(
            "(() => { const el = document.getElementById('device-notice'); \
             return el.hidden || el.offsetParent === null ? null : el.textContent; })()",
        )
        .await;
    assert!(
        notice
            .as_str()
            .is_some_and(|n| n.contains("camera cannot be used")),
        "Ana is told her camera is not used: {notice}"
    );
    let s = state(ana).await;
    assert_eq!(s["video"], false, "not said to send video: {s}");
    assert_eq!(s["sending"], serde_json::json!(["audio"]), "{s}");
    assert_eq!(
        ana.eval("document.getElementById('toggle-cam').textContent")
            .await,
        "Start video"
    );
    let ana_at_ben = ben.eval("window.parloir.tiles()").await;
    let ana_tile = ana_at_ben
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == a)
        .unwrap()
        .clone();
    assert_eq!(
        ana_tile["video"], false,
        "Ben sees her initials, not a black picture"
    );
    assert_eq!(ana_tile["audio"], true);

    // Still refused: pressing "Start video" asks again, and changes nothing.
    browser
        .set_permission(&server.http, "camera", "denied")
        .await;
    // The button's handler is awaited: the browser answered before we look.
    ana.eval("document.getElementById('toggle-cam').onclick()")
        .await;
    let s = state(ana).await;
    assert_eq!(s["video"], false, "{s}");
    assert_eq!(s["sending"], serde_json::json!(["audio"]), "{s}");
    assert_eq!(
        ana.eval("document.getElementById('device-notice').hidden")
            .await,
        false,
        "still said"
    );
    // Allowed now (she changed the browser's setting): pressed again, her
    // camera goes out, and Ben decodes it, with no new join.
    browser
        .set_permission(&server.http, "camera", "granted")
        .await;
    ana.eval("document.getElementById('toggle-cam').click()")
        .await;
    wait_for("Ana's camera to go out", CALL, || async {
        (state(ana).await["video"] == true).then_some(())
    })
    .await;
    wait_full_mesh("Ana and Ben see each other", &tabs, CALL).await;
    assert_eq!(state(ana).await["you"], a, "the same participant");

    // The room holds two: Cléo's kiosk waits on a screen of its own, its
    // camera and microphone released.
    let cleo = browser
        .open(&format!(
            "{}/r/devices-e2e?name=Cl%C3%A9o&join=1",
            server.http
        ))
        .await;
    wait_for("Cléo told the call is full", CALL, || async {
        (screen(&cleo).await == "full").then_some(())
    })
    .await;
    let heading = cleo
        .eval("document.querySelector('#full h1').textContent")
        .await;
    assert_eq!(heading, "This call is full");
    wait_for("Cléo's camera released", CALL, || async {
        (state(&cleo).await["sending"] == serde_json::json!([])).then_some(())
    })
    .await;
    // Ben leaves: Cléo gets in by herself, and Ana sees her.
    ben.eval("document.getElementById('leave').click()").await;
    wait_for("Cléo to get the place", CALL, || async {
        (screen(&cleo).await == "call").then_some(())?;
        state(&cleo).await["you"].as_u64()
    })
    .await;
    still_decoding(&[ana, &cleo], CALL).await;
    assert_eq!(
        state(&cleo).await["sending"],
        serde_json::json!(["audio", "video"])
    );
}
