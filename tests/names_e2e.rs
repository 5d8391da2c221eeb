//! Names as families write them: a kiosk link with a blank name asks for
//! one instead of hanging on "Connecting…"; accented names, names with
//! spaces and emoji join and are shown as written (the avatar of "👵 Mamie"
//! is the emoji, not half of it, and one's own is one's initials, not
//! "F("); markup in a name is shown as text. A room's name typed as
//! people write it ("Réunion équipe") becomes a link's; the tab's title
//! names the room; someone who does not moderate never sees the door's
//! controls.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{join, wait_for, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_asked_for_and_shown_as_written() {
    let server = Server::start();
    let browser = Browser::launch().await;
    let room = "names-e2e";

    // A kiosk link whose name is blank: the pre-join screen asks for it.
    let blank = browser
        .open(&format!("{}/r/{room}?name=%20&join=1", server.http))
        .await;
    wait_for("the pre-join screen", Duration::from_secs(10), || async {
        let shown = blank
            .eval("!document.getElementById('prejoin').hidden && document.getElementById('call').hidden")
            .await;
        (shown == true).then_some(())
    })
    .await;
    assert_eq!(
        blank.eval("document.getElementById('name').value").await,
        ""
    );

    let (dupre, _) = join(&browser, &server.http, room, "Famille%20Dupr%C3%A9").await;
    let (mamie_tab, _) = join(&browser, &server.http, room, "%F0%9F%91%B5%20Mamie").await;
    let (_markup, _) = join(&browser, &server.http, room, "%3Cb%3EBen%3C%2Fb%3E").await;
    let tiles = wait_for("the others' tiles", Duration::from_secs(10), || async {
        let tiles = dupre
            .eval(
                "[...document.querySelectorAll('#grid .tile:not(.self)')].map((el) => ({ \
                 name: el.querySelector('.name').textContent, \
                 avatar: el.querySelector('.avatar').textContent, \
                 markup: el.querySelector('b') !== null }))",
            )
            .await;
        (tiles.as_array()?.len() == 2).then_some(tiles)
    })
    .await;
    let tiles = tiles.as_array().unwrap();
    let mamie = tiles
        .iter()
        .find(|t| t["name"] == "👵 Mamie")
        .expect("👵 Mamie");
    // Initials of the first and last words, whole characters: the emoji
    // is not cut in half.
    assert_eq!(mamie["avatar"], "👵M");
    let ben = tiles
        .iter()
        .find(|t| t["name"] == "<b>Ben</b>")
        .expect("the markup, as text");
    assert_eq!(ben["markup"], false, "no element made from a name");
    let me = dupre.eval("window.parloir.state().you").await;
    assert!(me.is_u64(), "Famille Dupré joined");
    // One's own tile reads "Famille Dupré (you)"; its avatar is the
    // name's initials, not "F(".
    assert_eq!(
        dupre
            .eval("document.querySelector('#grid .tile.self .avatar').textContent")
            .await,
        "FD"
    );
    // The tab says which call it holds, and shows the service's icon.
    assert_eq!(dupre.eval("document.title").await, "names-e2e – Parloir");
    let icon = dupre
        .eval(
            "fetch(document.querySelector('link[rel=icon]').href)\
             .then(async (r) => [r.status, r.headers.get('content-type'), (await r.text()).startsWith('<svg')])",
        )
        .await;
    assert_eq!(icon, serde_json::json!([200, "image/svg+xml", true]));
    // Who does not moderate never sees the door's controls (a flex box
    // used to show them though hidden).
    assert_eq!(
        mamie_tab
            .eval("[window.parloir.state().moderator, getComputedStyle(document.getElementById('room-controls')).display]")
            .await,
        serde_json::json!([false, "none"])
    );

    // A room's name typed as people write it is made into a link's.
    let home = browser.open(&format!("{}/", server.http)).await;
    let typed = |name: &str| {
        format!(
            "(() => {{ const i = document.getElementById('join-room'); i.value = {name:?}; \
             i.dispatchEvent(new Event('input')); document.getElementById('join-form').requestSubmit(); return i.validationMessage; }})()"
        )
    };
    wait_for("the home page", Duration::from_secs(10), || async {
        (home.eval("!document.getElementById('home').hidden").await == true).then_some(())
    })
    .await;
    assert_eq!(
        home.eval(&typed("é !")).await,
        "A room name needs at least 3 letters or digits.",
        "too short once made a link's: said so, in words"
    );
    home.eval(&typed("Réunion équipe")).await;
    wait_for(
        "the room of the typed name",
        Duration::from_secs(10),
        || async { (home.eval("location.pathname").await == "/r/reunion-equipe").then_some(()) },
    )
    .await;
}
