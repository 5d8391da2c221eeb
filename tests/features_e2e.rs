//! What people expect of a call, in headless Chromium against the real
//! server: chat that reaches everyone as typed (never as markup), a raised
//! hand the others see, a shared screen the others decode at its full
//! size and see large, and a camera switched mid-call while the others
//! keep their picture.

mod common;

use std::time::Duration;

use common::browser::{Browser, Tab};
use common::{frames_decoded, join, still_decoding, wait_for, wait_full_mesh, Server};
use serde_json::Value;

const CALL: Duration = Duration::from_secs(30);

async fn click(tab: &Tab<'_>, id: &str) {
    tab.eval(&format!("document.getElementById('{id}').click()"))
        .await;
}

/// The tile of `key` ("7", "7-screen") as `tab` shows it.
async fn tile(tab: &Tab<'_>, key: &str) -> Option<Value> {
    let tiles = tab.eval("window.parloir.tiles()").await;
    tiles.as_array()?.iter().find(|t| t["key"] == key).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_hand_screen_share_and_device_switch() {
    let server = Server::start();
    // Fake cameras to switch between: Chromium's second one is a depth
    // camera (Y16) that no encoder takes, its third a colour one (MJPEG).
    let browser = Browser::launch_in(
        None,
        &["--use-fake-device-for-media-stream=device-count=3".to_string()],
    )
    .await;
    let room = "features-e2e";
    let tabs = [
        join(&browser, &server.http, room, "Ana").await,
        join(&browser, &server.http, room, "Ben").await,
        join(&browser, &server.http, room, "Cléo").await,
    ];
    wait_full_mesh("three in a call", &tabs, CALL).await;
    let [(ana, a), (ben, _), (cleo, c)] = &tabs;
    let a = *a;

    // Chat: Ben writes markup; everyone, Ben included, reads it as text.
    let typed = r#"<img src=x onerror="window.pwned=1">Bonjour & « ça va » ?"#;
    ben.eval(&format!(
        "document.getElementById('open-chat').click(); \
         document.getElementById('chat-input').value = {}; \
         document.getElementById('chat-form').requestSubmit()",
        serde_json::to_string(typed).unwrap()
    ))
    .await;
    for (tab, who) in [(ana, "Ana"), (ben, "Ben"), (cleo, "Cléo")] {
        let last = wait_for(&format!("{who} to read Ben's message"), CALL, || async {
            let v = tab
                .eval(
                    "(() => { const p = [...document.querySelectorAll('#chat-log li p')].pop(); \
                     return p ? p.textContent : null; })()",
                )
                .await;
            v.as_str().map(str::to_string)
        })
        .await;
        assert_eq!(last, typed, "{who} reads exactly what was typed");
        let markup = tab
            .eval("[document.querySelectorAll('#chat-log img').length, window.pwned === undefined]")
            .await;
        assert_eq!(markup, serde_json::json!([0, true]), "{who}: no markup ran");
    }
    // Ana, chat closed, sees that a message waits.
    let label = ana
        .eval("document.getElementById('open-chat').textContent")
        .await;
    assert!(label.as_str().unwrap().contains("(1)"), "unread: {label}");

    // Raise hand: Cléo's hand shows on her tile for the others, and goes.
    click(cleo, "raise-hand").await;
    for tab in [ana, ben] {
        wait_for("Cléo's hand up", CALL, || async {
            (tile(tab, &c.to_string()).await?["hand"] == true).then_some(())
        })
        .await;
    }
    // Drawn in blue, apart from the yellow ring of who speaks, and drawn
    // rather than an emoji a device may have no font for.
    let marks = ana
        .eval(&format!(
            "(() => {{ const el = document.querySelector('#grid .tile[data-id=\"{c}\"]'); \
             return [getComputedStyle(el).boxShadow, \
             getComputedStyle(el.querySelector('.hand-icon'), '::before').backgroundImage, \
             getComputedStyle(el.querySelector('.hand-icon'), '::before').content]; }})()"
        ))
        .await;
    assert!(
        marks[0].as_str().unwrap().contains("rgb(77, 163, 255)")
            && marks[1]
                .as_str()
                .unwrap()
                .starts_with("url(\"data:image/svg+xml")
            && marks[2] == "\"\"",
        "{marks}"
    );
    let people = ana
        .eval(
            "document.getElementById('open-people').click(); \
             document.getElementById('people').textContent",
        )
        .await;
    assert!(
        people.as_str().unwrap().contains("hand raised"),
        "the list says so: {people}"
    );
    click(cleo, "raise-hand").await;
    wait_for("Cléo's hand down", CALL, || async {
        (tile(ana, &c.to_string()).await?["hand"] == false).then_some(())
    })
    .await;

    // Screen share: Ana shares; Ben and Cléo decode it at the size it is
    // captured, in a tile of its own shown large.
    click(ana, "share-screen").await;
    let size = wait_for("Ana's screen captured", CALL, || async {
        let s = ana.eval("window.parloir.state().screen").await;
        Some((s["width"].as_u64()?, s["height"].as_u64()?)).filter(|(w, _)| *w > 0)
    })
    .await;
    eprintln!("Ana's screen is captured at {}x{}", size.0, size.1);
    let screen_key = format!("{a}-screen");
    for (tab, who) in [(ben, "Ben"), (cleo, "Cléo")] {
        let got = wait_for(
            &format!("{who} to decode Ana's screen at full size"),
            CALL,
            || async {
                let stats = tab.eval("window.parloir.stats()").await;
                let s = &stats[&screen_key];
                let w = s["frameWidth"].as_u64()?;
                let h = s["frameHeight"].as_u64()?;
                (s["framesDecoded"].as_u64()? > 0 && w == size.0 && h == size.1).then_some((w, h))
            },
        )
        .await;
        eprintln!("{who} decodes Ana's screen at {}x{}", got.0, got.1);
        let shown = tile(tab, &screen_key).await.expect("a tile for the screen");
        assert_eq!(shown["large"], true, "{who} sees the screen large");
    }
    // Ana's call starts over (a negotiation her browser refuses) while she
    // shares: her new join carries the screen, and the others decode it
    // again under her new id.
    common::refuse_next_negotiation(ana).await;
    let a = wait_for("Ana joined again", CALL, || async {
        common::you(ana).await.filter(|id| *id != a)
    })
    .await;
    let screen_key = format!("{a}-screen");
    wait_for("Ben to decode Ana's screen again", CALL, || async {
        let s = &ben.eval("window.parloir.stats()").await[&screen_key];
        (s["framesDecoded"].as_u64()? > 0 && s["frameWidth"].as_u64()? == size.0).then_some(())
    })
    .await;
    click(ana, "share-screen").await;
    wait_for("the screen tile to go", CALL, || async {
        tile(ben, &screen_key).await.is_none().then_some(())
    })
    .await;

    // Device switch: Ana picks her other camera; the others keep decoding
    // her, without a new negotiation.
    let before = ana.eval("window.parloir.devices().camera").await;
    ana.eval(
        "(() => { const s = document.getElementById('camera-select'); \
         const other = [...s.options].find((o) => o.textContent === 'fake_device_2'); \
         s.value = other.value; s.dispatchEvent(new Event('change')); })()",
    )
    .await;
    let after = wait_for("Ana's other camera", CALL, || async {
        let now = ana.eval("window.parloir.devices().camera").await;
        (now != before && !now.is_null()).then_some(now)
    })
    .await;
    eprintln!("Ana's camera: {before} → {after}");
    let frames_before = frames_decoded(ben).await[&a];
    still_decoding(&[ana, ben, cleo], CALL).await;
    assert!(frames_decoded(ben).await[&a] > frames_before);
}
