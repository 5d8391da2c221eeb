//! A room's door in Chromium: its first participant, on a kiosk link (the
//! patient's tablet), moderates it.
//!
//! - Ana turns the lobby on and locks the room with a password, through
//!   the page's own controls.
//! - Ben is asked for the password; a wrong one is said to be wrong; with
//!   the right one he waits in the lobby, and Ana sees him knock under his
//!   name. She lets him in: they see and hear each other.
//! - Cléo gives the right password too; Ana refuses her: her page says she
//!   was not let in, and she does not retry.
//! - The server restarts (an update, a crash): Ana and Ben come back by
//!   themselves, Ana as moderator and Ben not, the room still locked with
//!   its lobby on; Dan, who never was in, is asked for the password.
//! - Ana removes Ben: his page says so, he does not come back by himself,
//!   and Ana's call goes on.

mod common;

use std::time::Duration;

use common::browser::{Browser, Tab};
use common::{join, lock_room, tiles, until, wait_for, wait_full_mesh, you, Server};
use serde_json::json;

const ROOM: &str = "chambre-104";
const PASSWORD: &str = "tulipe rouge";
const CALL: Duration = Duration::from_secs(20);
/// A page's way back after its server restarted: its reconnection's
/// backoff, a failed resume, a join.
const RESTART: Duration = Duration::from_secs(30);

async fn screen_is(tab: &Tab<'_>, what: &str, screen: &str) {
    let expr = format!("window.parloir.screen() === '{screen}'");
    until(tab, what, &expr, CALL).await;
}

/// Types `password` into the page's password screen and sends it.
async fn give_password(tab: &Tab<'_>, password: &str) {
    tab.eval(&format!(
        "(() => {{ document.querySelector('#room-password').value = {};
            document.querySelector('#password-form').requestSubmit(); return true; }})()",
        json!(password)
    ))
    .await;
}

/// Clicks the button `which` (`admit`, `refuse`) of `name`'s knock, once
/// the moderator's page shows it.
async fn answer_knock(tab: &Tab<'_>, name: &str, which: &str) {
    let knock = format!(
        "[...document.querySelectorAll('#knocks li')].find((li) => li.textContent.includes('gives the name “{name}” asks to join'))"
    );
    until(
        tab,
        &format!("{name}'s knock shown"),
        &format!("Boolean({knock}) && !document.querySelector('#knocks').hidden"),
        CALL,
    )
    .await;
    tab.eval(&format!("{knock}.querySelector('.{which}').click(), true"))
        .await;
}

async fn text_of(tab: &Tab<'_>, selector: &str) -> String {
    let v = tab
        .eval(&format!("document.querySelector('{selector}').textContent"))
        .await;
    v.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_locks_the_room_lets_in_refuses_and_removes() {
    let mut server = Server::start();
    let base = server.http.clone();
    let browser = Browser::launch().await;

    // The tablet's kiosk link: in at once, first, so moderator.
    let (ana, ana_id) = join(&browser, &base, ROOM, "Ana").await;
    until(
        &ana,
        "Ana moderates",
        "window.parloir.state().moderator",
        CALL,
    )
    .await;
    // She created the room: her browser keeps its owner's key.
    until(
        &ana,
        "Ana's browser keeps the room's key",
        &format!("(localStorage.getItem('parloir.owner.{ROOM}') || '').length === 22"),
        CALL,
    )
    .await;
    lock_room(&ana, PASSWORD).await;
    ana.eval("document.querySelector('#lobby-toggle').click(), true")
        .await;
    until(
        &ana,
        "the room locked, its lobby on",
        "window.parloir.state().locked && window.parloir.state().lobby",
        CALL,
    )
    .await;
    assert!(text_of(&ana, "#lock-state").await.contains("Locked"));

    // Ben: asked for the password, told a wrong one is wrong.
    let ben = browser
        .open(&format!("{base}/r/{ROOM}?name=Ben&join=1"))
        .await;
    screen_is(&ben, "Ben asked for the password", "password").await;
    assert!(text_of(&ben, "#password-text")
        .await
        .contains("Give the call"));
    give_password(&ben, "tulipe").await;
    until(
        &ben,
        "a wrong password said to be wrong",
        "window.parloir.screen() === 'password' && document.querySelector('#password-text').textContent.includes('not the right one')",
        CALL,
    )
    .await;
    give_password(&ben, PASSWORD).await;
    screen_is(&ben, "Ben waits in the lobby", "lobby").await;
    assert_eq!(you(&ben).await, None, "not in the call while waiting");
    until(
        &ana,
        "Ana told Ben knocks",
        "JSON.stringify(window.parloir.state().knocks) === '[\"Ben\"]'",
        CALL,
    )
    .await;

    // Let in: they see and hear each other.
    answer_knock(&ana, "Ben", "admit").await;
    screen_is(&ben, "Ben in the call", "call").await;
    let ben_id = wait_for("Ben joined", CALL, || you(&ben)).await;
    let call = vec![(ana, ana_id), (ben, ben_id)];
    wait_full_mesh("Ana and Ben see and hear each other", &call, CALL).await;
    let [(ana, _), (ben, _)] = <[_; 2]>::try_from(call).ok().unwrap();
    until(
        &ana,
        "the knock gone",
        "document.querySelector('#knocks').hidden",
        CALL,
    )
    .await;

    // Cléo knows the password, but Ana refuses her.
    let cleo = browser
        .open(&format!("{base}/r/{ROOM}?name=Cleo&join=1"))
        .await;
    screen_is(&cleo, "Cléo asked for the password", "password").await;
    give_password(&cleo, PASSWORD).await;
    screen_is(&cleo, "Cléo waits in the lobby", "lobby").await;
    answer_knock(&ana, "Cleo", "refuse").await;
    screen_is(&cleo, "Cléo told she was not let in", "ended").await;
    assert!(text_of(&cleo, "#ended-title").await.contains("not let in"));
    assert!(tiles(&ana).await.len() == 1, "only Ben in Ana's call");
    cleo.close().await;

    // The server restarts: the door it kept on disk stays shut, and its
    // moderator is who it was, not whoever is back first.
    server.stop();
    server.start_again();
    let (old_ana, old_ben) = (ana_id, ben_id);
    let ben_id = wait_for("Ben back under a new id", RESTART, || async {
        you(&ben).await.filter(|id| *id != old_ben)
    })
    .await;
    let ana_id = wait_for("Ana back under a new id", RESTART, || async {
        you(&ana).await.filter(|id| *id != old_ana)
    })
    .await;
    let back = "window.parloir.screen() === 'call' && window.parloir.state().locked \
                && window.parloir.state().lobby";
    until(
        &ana,
        "Ana back as moderator",
        &format!("{back} && window.parloir.state().moderator"),
        CALL,
    )
    .await;
    until(
        &ben,
        "Ben back, not moderator",
        &format!("{back} && !window.parloir.state().moderator"),
        CALL,
    )
    .await;
    let call = vec![(ana, ana_id), (ben, ben_id)];
    wait_full_mesh("Ana and Ben see and hear each other again", &call, CALL).await;
    let [(ana, _), (ben, _)] = <[_; 2]>::try_from(call).ok().unwrap();
    let dan = browser
        .open(&format!("{base}/r/{ROOM}?name=Dan&join=1"))
        .await;
    screen_is(&dan, "Dan asked for the password", "password").await;
    dan.close().await;

    // Ana removes Ben from the people panel.
    ana.eval(&format!(
        "document.querySelector('#people li[data-id=\"{ben_id}\"] .remove').click(), \
         document.querySelector('#people li[data-id=\"{ben_id}\"] .confirm-remove').click(), true"
    ))
    .await;
    screen_is(&ben, "Ben told he was removed", "ended").await;
    assert!(text_of(&ben, "#ended-title").await.contains("removed"));
    wait_for("Ben gone from Ana's call", CALL, || async {
        tiles(&ana).await.is_empty().then_some(())
    })
    .await;
    // He does not come back by himself: his page stays where it is, with
    // no signalling socket, while Ana's call stays as it is.
    let back = "window.parloir.state().signalling || window.parloir.screen() !== 'ended'";
    for _ in 0..8 {
        assert_eq!(ben.eval(back).await, json!(false), "Ben came back");
        assert!(tiles(&ana).await.is_empty(), "Ben back in Ana's call");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(you(&ana).await, Some(ana_id), "Ana still in her call");
}
