//! A walk through every screen of the web client, in one browser language,
//! at a phone's size and a laptop's: what the accessibility audit checks
//! and what the screenshots show, so that the two never cover different
//! screens.
//!
//! Screens, in order: `home`, `invalid-link`, `prejoin`, `call-2`,
//! `call-chat` (a message in the open chat), `call-people` (the list, a
//! hand raised, the moderator's door controls), `password` (a locked
//! room asks for it), `lobby` (waiting to be let in), `call-knock` (the
//! moderator sees who knocks), `ended` (not let in), `call-3`, `full` (the room's limit reached: the server
//! must run with `--max-participants 3`), `busy` (a new room sent to the
//! partner services: an operator's redirect, through the API),
//! `call-interrupted` (the server stopped), `left`.

use std::time::Duration;

use serde_json::json;

use super::browser::{Browser, Tab};
use super::{join, until, wait_full_mesh, wait_full_mesh_rejoined, Server};

/// What `walk` needs of its server: room for three, the operators' API
/// and partner services.
pub const SERVER_ARGS: &[&str] = &[
    // The walk starts a dozen rooms from one address within a minute.
    "--no-address-limits",
    "--max-participants",
    "3",
    "--secret",
    SECRET,
    "--partner",
    "Visio Hôpital Nord=https://visio-nord.example/r/{room};fr",
    "--partner",
    "Jitsi Meet=https://meet.example/{room}",
];

const SECRET: &str = "screens-test-secret";

/// Turns the redirection of new rooms to partners on or off.
async fn redirect(base: &str, on: bool) {
    let status = parloir::net::http_client(None)
        .expect("an HTTP client")
        .put(format!("{base}/api/admission"))
        .bearer_auth(SECRET)
        .json(&json!({ "redirect": on }))
        .send()
        .await
        .expect("the operators' API")
        .status();
    assert!(status.is_success(), "PUT /api/admission: {status}");
}

/// Name, width, height, mobile.
pub const SIZES: [(&str, u32, u32, bool); 2] =
    [("phone", 390, 844, true), ("laptop", 1280, 800, false)];

const WAIT: Duration = Duration::from_secs(30);

/// One screen shown, at one size.
pub struct Shown<'a, 'b> {
    pub tab: &'a Tab<'b>,
    pub lang: &'a str,
    pub screen: &'a str,
    pub size: &'a str,
    /// Videos of others play in it (a call not interrupted).
    pub live: bool,
}

/// What is done with each screen.
#[allow(async_fn_in_trait)] // test code: no Send bound needed
pub trait Visit {
    async fn visit(&mut self, shown: Shown<'_, '_>);
}

/// Shows `screen` at every size to `v`.
async fn each_size(v: &mut impl Visit, tab: &Tab<'_>, lang: &str, screen: &str, live: bool) {
    for (size, width, height, mobile) in SIZES {
        tab.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
        tab.cdp("Page.bringToFront", json!({})).await;
        v.visit(Shown {
            tab,
            lang,
            screen,
            size,
            live,
        })
        .await;
    }
}

/// Walks every screen in a browser asking for `lang` (`en`, `fr`).
pub async fn walk(server: &mut Server, lang: &str, v: &mut impl Visit) {
    let browser = Browser::launch_in(None, &[format!("--accept-lang={lang}")]).await;
    let base = server.http.clone();
    let shown = |id: &str| format!("window.parloir.screen() === '{id}'");

    let home = browser.open(&format!("{base}/")).await;
    until(&home, "the home screen", &shown("home"), WAIT).await;
    each_size(v, &home, lang, "home", false).await;
    home.close().await;

    let invalid = browser.open(&format!("{base}/r/x!")).await;
    let said = "!document.getElementById('home-error').hidden";
    until(&invalid, "the invalid link said", said, WAIT).await;
    each_size(v, &invalid, lang, "invalid-link", false).await;
    invalid.close().await;

    let room = if lang == "fr" {
        "chambre-12"
    } else {
        "room-12"
    };
    let prejoin = browser.open(&format!("{base}/r/{room}")).await;
    let preview = format!(
        "{} && document.getElementById('preview').readyState >= 2",
        shown("prejoin")
    );
    until(
        &prejoin,
        "the pre-join screen and its preview",
        &preview,
        WAIT,
    )
    .await;
    each_size(v, &prejoin, lang, "prejoin", false).await;
    prejoin.close().await;

    // Alone in the call: the link to send, shown.
    let mut tabs = vec![join(&browser, &base, room, "Ana").await];
    let alone = "!document.getElementById('alone-invite').hidden \
                 && window.parloir.state().media === 'connected'";
    until(&tabs[0].0, "Ana alone, with the link to send", alone, WAIT).await;
    each_size(v, &tabs[0].0, lang, "call-alone", false).await;
    // Names as families write them.
    tabs.push(join(&browser, &base, room, "Mamie%20Jos%C3%A9e").await);
    wait_full_mesh("a call of two", &tabs, WAIT).await;
    let indicators =
        "window.parloir.state().link !== null && window.parloir.tiles().every((t) => t.link)";
    until(&tabs[0].0, "the connection indicators", indicators, WAIT).await;
    each_size(v, &tabs[0].0, lang, "call-2", true).await;

    let (ana, mamie) = (&tabs[0].0, &tabs[1].0);
    ana.eval("document.getElementById('open-chat').click()")
        .await;
    let hello = if lang == "fr" {
        "Bonjour ma chérie ! Tu m'entends bien ?"
    } else {
        "Hello darling! Can you hear me?"
    };
    mamie
        .eval(&format!(
            "document.getElementById('chat-input').value = {}; \
             document.getElementById('chat-form').requestSubmit()",
            serde_json::to_string(hello).expect("a string")
        ))
        .await;
    until(
        ana,
        "the message read",
        "document.querySelectorAll('#chat-log li').length > 0",
        WAIT,
    )
    .await;
    each_size(v, ana, lang, "call-chat", true).await;

    mamie
        .eval("document.getElementById('raise-hand').click()")
        .await;
    ana.eval("document.getElementById('open-people').click()")
        .await;
    until(
        ana,
        "the hand raised",
        "window.parloir.tiles().some((t) => t.hand)",
        WAIT,
    )
    .await;
    each_size(v, ana, lang, "call-people", true).await;

    // Ana, first in, moderates: she locks the room and turns the lobby on.
    ana.eval(
        "document.getElementById('lobby-toggle').click(); \
         document.getElementById('lock-password').value = 'tulipe'; \
         document.getElementById('lock-form').requestSubmit()",
    )
    .await;
    let door = "window.parloir.state().locked && window.parloir.state().lobby";
    until(ana, "the room locked, the lobby on", door, WAIT).await;
    ana.eval("document.getElementById('close-panel').click()")
        .await;
    let knocker = browser
        .open(&format!("{base}/r/{room}?name=Zo%C3%A9&join=1"))
        .await;
    until(&knocker, "the password asked", &shown("password"), WAIT).await;
    each_size(v, &knocker, lang, "password", false).await;
    knocker
        .eval(
            "document.getElementById('room-password').value = 'tulipe'; \
             document.getElementById('password-form').requestSubmit()",
        )
        .await;
    until(&knocker, "waiting in the lobby", &shown("lobby"), WAIT).await;
    each_size(v, &knocker, lang, "lobby", false).await;
    let knock = "!document.getElementById('knocks').hidden";
    until(ana, "the knock shown", knock, WAIT).await;
    each_size(v, ana, lang, "call-knock", true).await;
    ana.eval("document.querySelector('#knocks .refuse').click()")
        .await;
    until(&knocker, "not let in", &shown("ended"), WAIT).await;
    each_size(v, &knocker, lang, "ended", false).await;
    knocker.close().await;
    // The door open again for the rest of the walk.
    ana.eval(
        "document.getElementById('open-people').click(); \
         document.getElementById('lobby-toggle').click(); \
         document.getElementById('unlock').click(); \
         document.getElementById('close-panel').click()",
    )
    .await;
    let open = "!window.parloir.state().locked && !window.parloir.state().lobby";
    until(ana, "the room open again", open, WAIT).await;

    tabs.push(join(&browser, &base, room, "Dr%20Ben%20Martin").await);
    wait_full_mesh("a call of three", &tabs, WAIT).await;
    until(&tabs[0].0, "the connection indicators", indicators, WAIT).await;
    each_size(v, &tabs[0].0, lang, "call-3", true).await;

    let late = browser
        .open(&format!("{base}/r/{room}?name=Zo%C3%A9&join=1"))
        .await;
    until(&late, "the room said full", &shown("full"), WAIT).await;
    each_size(v, &late, lang, "full", false).await;
    late.close().await;

    redirect(&base, true).await;
    let refused = browser
        .open(&format!("{base}/r/{room}-b?name=Zo%C3%A9&join=1"))
        .await;
    until(
        &refused,
        "a new room sent to partners",
        &shown("busy"),
        WAIT,
    )
    .await;
    each_size(v, &refused, lang, "busy", false).await;
    refused.close().await;
    redirect(&base, false).await;

    let ana = &tabs[0].0;
    server.stop();
    let interrupted = "!document.getElementById('status').hidden \
                       && !document.getElementById('retry-now').hidden";
    until(ana, "the call said interrupted", interrupted, WAIT).await;
    each_size(v, ana, lang, "call-interrupted", false).await;
    server.start_again();
    let all: Vec<&Tab> = tabs.iter().map(|(t, _)| t).collect();
    wait_full_mesh_rejoined("the call back", &all, WAIT).await;

    ana.eval("document.getElementById('leave').click()").await;
    until(ana, "the screen after leaving", &shown("left"), WAIT).await;
    each_size(v, ana, lang, "left", false).await;
}
