//! The call screen as people meet it, in Chromium: a shared kiosk keeps
//! nobody's name for the next person unless asked, someone alone in a
//! call sees the link to send, one's own picture can be moved to another
//! corner (by its button or dragged) or hidden and shown again, and a
//! lobby shows the camera it says is ready.

mod common;

use std::time::Duration;

use common::browser::{Browser, Tab};
use common::{join, until, wait_for, you, Server};
use serde_json::{json, Value};

const ROOM: &str = "ecran-e2e";
const CALL: Duration = Duration::from_secs(20);

/// Fills the pre-join form with `name` (ticking "remember" or not) and
/// joins.
async fn prejoin_as(tab: &Tab<'_>, name: &str, remember: bool) {
    // Ready once its devices are open and the form answers.
    until(
        tab,
        "the pre-join screen, ready",
        "window.parloir.screen() === 'prejoin'
         && document.getElementById('prejoin-form').onsubmit !== null",
        CALL,
    )
    .await;
    tab.eval(&format!(
        "document.getElementById('name').value = '{name}';
         document.getElementById('remember-name').checked = {remember};
         document.getElementById('prejoin-form').requestSubmit(), true"
    ))
    .await;
}

/// The name the pre-join screen offers, once it shows.
async fn offered_name(tab: &Tab<'_>) -> Value {
    until(
        tab,
        "the pre-join screen",
        "window.parloir.screen() === 'prejoin'",
        CALL,
    )
    .await;
    tab.eval("document.getElementById('name').value").await
}

/// Where one's own picture is, in halves of the call's grid.
async fn self_corner(tab: &Tab<'_>) -> Value {
    tab.eval(
        "(() => { const g = document.getElementById('grid').getBoundingClientRect();
           const s = document.querySelector('#grid .tile.self').getBoundingClientRect();
           const x = s.left + s.width / 2 > g.left + g.width / 2 ? 'r' : 'l';
           const y = s.top + s.height / 2 > g.top + g.height / 2 ? 'b' : 't';
           return y + x; })()",
    )
    .await
}

async fn mouse(tab: &Tab<'_>, kind: &str, (x, y): (f64, f64)) {
    tab.cdp(
        "Input.dispatchMouseEvent",
        json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_screen_keeps_kiosks_private_invites_and_gets_out_of_the_way() {
    let server = Server::start();
    let base = server.http.clone();
    let browser = Browser::launch().await;

    // A shared kiosk: Ana types her name and joins, not asking to be
    // remembered. Alone, she sees the link to send.
    let ana = browser.open(&format!("{base}/r/{ROOM}")).await;
    prejoin_as(&ana, "Ana", false).await;
    wait_for("Ana to join", CALL, || you(&ana)).await;
    until(
        &ana,
        "Ana, alone, sees the link to invite others",
        &format!(
            "!document.getElementById('alone-invite').hidden
             && document.getElementById('alone-link').textContent.endsWith('/r/{ROOM}')"
        ),
        CALL,
    )
    .await;

    // The next person at the same kiosk is not offered her name. One who
    // asks to be remembered is, on that device.
    let next = browser
        .open_beside(&ana, &format!("{base}/r/kiosque-e2e"))
        .await;
    assert_eq!(
        offered_name(&next).await,
        "",
        "Ana's name offered to the next"
    );
    prejoin_as(&next, "Eve", true).await;
    wait_for("Eve to join", CALL, || you(&next)).await;
    next.close().await;
    let again = browser
        .open_beside(&ana, &format!("{base}/r/kiosque-e2e"))
        .await;
    assert_eq!(offered_name(&again).await, "Eve", "asked to be remembered");
    assert_eq!(
        again
            .eval("document.getElementById('remember-name').checked")
            .await,
        true
    );
    again.close().await;

    // Ben comes: the link goes, and Ana's picture floats in a corner.
    let (ben, _) = join(&browser, &base, ROOM, "Ben").await;
    until(
        &ana,
        "the link gone once Ben is in",
        "document.getElementById('alone-invite').hidden",
        CALL,
    )
    .await;
    until(
        &ana,
        "Ben's tile beside her own",
        "window.parloir.tiles().length === 1",
        CALL,
    )
    .await;
    assert_eq!(self_corner(&ana).await, "br");

    // The controls: icons with their words beside them on a laptop; on a
    // phone one row of icons, each still named (said, and a tooltip).
    let bar = "(() => { const b = [...document.querySelectorAll('.controls > button')]
                 .filter((e) => !e.hidden);
               return { rows: new Set(b.map((e) => Math.round(e.getBoundingClientRect().top))).size,
                 named: b.every((e) => e.textContent.trim() && e.title),
                 words: b.every((e) => e.querySelector('.label').getBoundingClientRect().width > 1) };
             })()";
    until(
        &ana,
        "words beside the icons on a laptop",
        &format!("{bar}.words && {bar}.named"),
        CALL,
    )
    .await;
    let phone = json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true});
    ana.cdp("Emulation.setDeviceMetricsOverride", phone).await;
    until(
        &ana,
        "one row of named icons on a phone",
        &format!("{bar}.rows === 1 && {bar}.named && !{bar}.words"),
        CALL,
    )
    .await;
    ana.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
        .await;
    // Its button moves it to the next corner.
    ana.eval("document.querySelector('#grid .tile.self .move-self').click(), true")
        .await;
    until(
        &ana,
        "her picture at the bottom left",
        "document.getElementById('grid').dataset.selfCorner === 'bl'",
        CALL,
    )
    .await;
    assert_eq!(self_corner(&ana).await, "bl");
    // Dragged towards the top right, it settles there.
    let at: Value = ana
        .eval(
            "(() => { const s = document.querySelector('#grid .tile.self').getBoundingClientRect();
               const g = document.getElementById('grid').getBoundingClientRect();
               return [s.left + s.width / 2, s.top + s.height / 2, g.right - 20, g.top + 20]; })()",
        )
        .await;
    let p = |i: usize| at[i].as_f64().expect("a coordinate");
    mouse(&ana, "mousePressed", (p(0), p(1))).await;
    mouse(
        &ana,
        "mouseMoved",
        ((p(0) + p(2)) / 2.0, (p(1) + p(3)) / 2.0),
    )
    .await;
    mouse(&ana, "mouseMoved", (p(2), p(3))).await;
    mouse(&ana, "mouseReleased", (p(2), p(3))).await;
    until(
        &ana,
        "her picture dragged to the top right",
        "document.getElementById('grid').dataset.selfCorner === 'tr'",
        CALL,
    )
    .await;
    assert_eq!(self_corner(&ana).await, "tr");
    // Hidden, then shown again from More.
    ana.eval("document.querySelector('#grid .tile.self .hide-self').click(), true")
        .await;
    until(
        &ana,
        "her picture hidden, a way back under More",
        "document.querySelector('#grid .tile.self').hidden
         && !document.getElementById('show-self').hidden",
        CALL,
    )
    .await;
    ana.eval("document.getElementById('show-self').click(), true")
        .await;
    until(
        &ana,
        "her picture back",
        "!document.querySelector('#grid .tile.self').hidden
         && document.getElementById('show-self').hidden",
        CALL,
    )
    .await;
    ben.close().await;

    // Behind a lobby, Cléo waits seeing her own camera, as it says.
    ana.eval("document.getElementById('lobby-toggle').click(), true")
        .await;
    until(
        &ana,
        "the lobby on",
        "window.parloir.state().lobby === true",
        CALL,
    )
    .await;
    let cleo = browser
        .open(&format!("{base}/r/{ROOM}?name=Cleo&join=1"))
        .await;
    until(
        &cleo,
        "Cléo in the lobby with her camera's picture",
        "window.parloir.screen() === 'lobby'
         && document.getElementById('lobby-preview').videoWidth > 0",
        CALL,
    )
    .await;
    cleo.close().await;

    // A browser in English; its person reads French: chosen on the home
    // screen, kept on that device.
    let home = browser.open(&format!("{base}/")).await;
    let new_call = "document.getElementById('new-call').textContent";
    until(
        &home,
        "the home screen",
        "window.parloir.screen() === 'home'",
        CALL,
    )
    .await;
    assert_eq!(home.eval(new_call).await, "Start a new call");
    home.eval(
        "(() => { const s = document.querySelector('#home .language-choice');
           s.value = 'fr'; s.dispatchEvent(new Event('change')); return true; })()",
    )
    .await;
    until(
        &home,
        "the page in French",
        &format!("document.documentElement.lang === 'fr' && {new_call} === 'Démarrer un appel'"),
        CALL,
    )
    .await;
    let later = browser
        .open_beside(&home, &format!("{base}/r/{ROOM}"))
        .await;
    until(
        &later,
        "French on that device from then on",
        "document.documentElement.lang === 'fr'
         && document.querySelector('#prejoin .language-choice').value === 'fr'",
        CALL,
    )
    .await;
}
