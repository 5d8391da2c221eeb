//! Closed rooms: a server that lets people in on an invitation only (a
//! room token from the system that owns the rooms, `--closed-rooms`).
//!
//! - Without a token, Chromium is told the call is by invitation only.
//! - Two people with their tokens see and hear each other, each under the
//!   name their token gives, whatever they typed.
//! - A token for another room, an expired one and a forged one are each
//!   refused with their own code (the page says the invitation is not
//!   valid).

mod common;

use std::time::Duration;

use common::browser::{Browser, Tab};
use common::{signalling_join, until, wait_for, wait_full_mesh, you, Server};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "the-portal-and-parloir-share-this";
const ISSUER: &str = "portail-chu";
const ROOM: &str = "chambre-217";
const CALL: Duration = Duration::from_secs(20);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An invitation as the portal would mint it.
fn token(room: &str, name: &str, exp: u64, secret: &str) -> String {
    let claims = json!({
        "iss": ISSUER, "aud": "parloir", "room": room, "exp": exp,
        "name": name, "role": "participant",
    });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Opens the room's page as a person who typed `typed` and followed a
/// link carrying `jwt` (if any).
async fn open<'a>(
    browser: &'a Browser,
    base: &str,
    room: &str,
    typed: &str,
    jwt: Option<&str>,
) -> Tab<'a> {
    let fragment = jwt.map(|t| format!("#jwt={t}")).unwrap_or_default();
    browser
        .open(&format!("{base}/r/{room}?name={typed}&join=1{fragment}"))
        .await
}

async fn told(tab: &Tab<'_>, what: &str, words: &str) {
    let expr = format!("document.querySelector('#status').textContent.includes('{words}')");
    until(tab, what, &expr, CALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_rooms_let_in_invitations_only_under_their_names() {
    let server = Server::start_args(&[
        "--token-secret",
        SECRET,
        "--token-issuer",
        ISSUER,
        "--closed-rooms",
    ]);
    let base = server.http.clone();
    let browser = Browser::launch().await;

    let intruder = open(&browser, &base, ROOM, "Infirmiere", None).await;
    told(&intruder, "no invitation: refused", "by invitation only").await;

    let exp = now() + 3600;
    let marie = open(
        &browser,
        &base,
        ROOM,
        "X",
        Some(&token(ROOM, "Marie Dupont", exp, SECRET)),
    )
    .await;
    let paul = open(
        &browser,
        &base,
        ROOM,
        "Y",
        Some(&token(ROOM, "Paul Martin", exp, SECRET)),
    )
    .await;
    let mut call = Vec::new();
    for tab in [marie, paul] {
        let id = wait_for("joined on an invitation", CALL, || you(&tab)).await;
        call.push((tab, id));
    }
    wait_full_mesh("Marie and Paul see and hear each other", &call, CALL).await;
    let names = "window.parloir.tiles().map((t) => t.name)";
    assert_eq!(call[0].0.eval(names).await, json!(["Paul Martin"]));
    assert_eq!(call[1].0.eval(names).await, json!(["Marie Dupont"]));

    // Marie's invitation does not open the next room.
    let elsewhere = open(
        &browser,
        &base,
        "chambre-218",
        "Marie",
        Some(&token(ROOM, "Marie Dupont", exp, SECRET)),
    )
    .await;
    told(
        &elsewhere,
        "another room's token: refused",
        "not valid for this call",
    )
    .await;

    // Expired and forged, over signalling alone.
    let join = |jwt: String| json!({"type": "join", "v": 1, "room": ROOM, "name": "Z", "jwt": jwt});
    let (_ws, expired) = signalling_join(&base, &join(token(ROOM, "Z", now() - 120, SECRET))).await;
    assert_eq!(expired["code"], "token-expired", "{expired}");
    let (_ws, forged) = signalling_join(
        &base,
        &join(token(ROOM, "Z", exp, "a guess at the secret!")),
    )
    .await;
    assert_eq!(forged["code"], "token-invalid", "{forged}");
    let (_ws, none) = signalling_join(
        &base,
        &json!({"type": "join", "v": 1, "room": ROOM, "name": "Z"}),
    )
    .await;
    assert_eq!(none["code"], "token-required", "{none}");
}
