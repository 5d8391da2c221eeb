//! A moderator's tools in Chromium: the others are asked to mute (and
//! only they unmute), the role is handed on, and the call is ended for
//! everyone; someone who does not moderate is shown none of it and is
//! refused what its page sends anyway.

mod common;

use std::time::Duration;

use common::browser::{Browser, Tab};
use common::{join, until, Server};

const ROOM: &str = "moderation-e2e";
const CALL: Duration = Duration::from_secs(20);

async fn click(tab: &Tab<'_>, selector: &str) {
    tab.eval(&format!(
        "document.querySelector('{selector}').click(), true"
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_mutes_everyone_hands_the_role_on_and_ends_the_call() {
    let server = Server::start();
    let base = server.http.clone();
    let browser = Browser::launch().await;
    let (ana, _) = join(&browser, &base, ROOM, "Ana").await;
    let (ben, ben_id) = join(&browser, &base, ROOM, "Ben").await;
    let (cleo, _) = join(&browser, &base, ROOM, "Cleo").await;
    for tab in [&ana, &ben, &cleo] {
        until(
            tab,
            "everyone sees the two others, microphones on",
            "window.parloir.tiles().length === 2 && window.parloir.tiles().every((t) => t.audio)",
            CALL,
        )
        .await;
    }
    until(
        &ana,
        "Ana moderates",
        "window.parloir.state().moderator",
        CALL,
    )
    .await;

    // Ben does not moderate: no tools, and what his page sends anyway is
    // refused, said to him, and changes nothing for the others.
    let no_tools = "document.getElementById('moderator-tools').hidden \
                    && !document.querySelector('#people .actions')";
    ben.eval("document.getElementById('open-people').click(), true")
        .await;
    until(&ben, "Ben shown no moderator's tools", no_tools, CALL).await;
    ben.eval("window.parloir.send({type: 'mute-all'}), true")
        .await;
    until(
        &ben,
        "Ben told only a moderator can",
        "(window.parloir.state().status || '').includes('Only a moderator')",
        CALL,
    )
    .await;
    assert_eq!(ana.eval("window.parloir.state().audio").await, true);

    // Ana mutes everyone: Ben's and Cléo's microphones go off, each is
    // told why, and Ana sees them muted.
    ana.eval("document.getElementById('open-people').click(), true")
        .await;
    click(&ana, "#mute-all").await;
    for tab in [&ben, &cleo] {
        until(
            tab,
            "a muted microphone, and why",
            "window.parloir.state().audio === false \
             && !window.parloir.state().sending.includes('audio') \
             && (window.parloir.state().status || '').includes('A moderator muted')",
            CALL,
        )
        .await;
    }
    until(
        &ana,
        "Ana sees both muted",
        "window.parloir.tiles().every((t) => !t.audio)",
        CALL,
    )
    .await;
    assert_eq!(ana.eval("window.parloir.state().audio").await, true);

    // Ana makes Ben a moderator: he is shown the tools.
    click(
        &ana,
        &format!("#people li[data-id=\"{ben_id}\"] .make-moderator"),
    )
    .await;
    until(
        &ben,
        "Ben a moderator, with the tools",
        "window.parloir.state().moderator \
         && !document.getElementById('moderator-tools').hidden",
        CALL,
    )
    .await;

    // Ben ends the call (asked once more): everyone is out, told so.
    click(&ben, "#end-call").await;
    until(
        &ben,
        "asked once more",
        "!document.getElementById('end-call-confirm').hidden",
        CALL,
    )
    .await;
    assert_eq!(
        ana.eval("window.parloir.screen()").await,
        "call",
        "not ended before it is confirmed"
    );
    click(&ben, "#end-call-yes").await;
    for tab in [&ana, &ben, &cleo] {
        until(
            tab,
            "the call ended for everyone, said so",
            "window.parloir.screen() === 'ended' \
             && document.getElementById('ended-title').textContent === 'The call has ended'",
            CALL,
        )
        .await;
    }
}
