//! Strangers at the door of a room whose name they know, on a real server
//! on loopback, through the signalling alone: four addresses with five
//! knocks each used to fill the lobby and turn the family away
//! (`lobby-full`), and one address knocking and leaving put 39 banners on
//! the patient's tablet in 20 s.

mod common;

use std::time::Duration;

use common::{next_of, ws_from, Server};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const ROOM: &str = "chambre-301";

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// A join from `ip`: the socket and the answer (`welcome`, `lobby` or
/// `error`).
async fn knock(server: &Server, ip: &str, name: &str) -> (Ws, Value) {
    let mut ws = ws_from(server, ip).await.expect("a socket");
    let join =
        json!({"type": "join", "v": 1, "room": ROOM, "name": name, "audio": false, "video": false});
    send(&mut ws, join).await;
    let answer = next_of(&mut ws, &["welcome", "lobby", "error"]).await;
    (ws, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_neither_fill_the_lobby_nor_flood_the_moderator() {
    let server = Server::start();
    let (mut patient, welcome) = knock(&server, "127.0.0.1", "Patient").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    send(&mut patient, json!({"type": "set-lobby", "on": true})).await;
    loop {
        let s = next_of(&mut patient, &["room-settings"]).await;
        if s["lobby"] == true {
            break;
        }
    }

    // Four addresses, five knocks each: the lobby is full.
    let mut held = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        for i in 0..5 {
            let (ws, answer) = knock(&server, ip, &format!("Dr. Martin {i}")).await;
            assert_eq!(answer["type"], "lobby", "{answer}");
            held.push(ws);
        }
    }
    // The family, from a fifth: waits too, and one stranger made way.
    let (_family, answer) = knock(&server, "127.0.0.6", "Famille").await;
    assert_eq!(answer["type"], "lobby", "the family turned away: {answer}");
    let mut made_way = 0;
    for ws in &mut held {
        let told = tokio::time::timeout(Duration::from_millis(200), next_of(ws, &["error"])).await;
        if let Ok(e) = told {
            assert_eq!(e["code"], "lobby-refused", "{e}");
            made_way += 1;
        }
    }
    assert_eq!(made_way, 1, "one stranger made way");
    drop(held);

    // One address knocking and leaving: five banners, then refused.
    let mut banners = 0;
    let mut answer = Value::Null;
    for i in 0..8 {
        let name = format!("Dr. Martin bis {i}");
        let (ws, a) = knock(&server, "127.0.0.7", &name).await;
        answer = a;
        if answer["type"] != "lobby" {
            break;
        }
        banners += 1;
        let id = loop {
            let m = next_of(&mut patient, &["knocking"]).await;
            if m["name"] == name.as_str() {
                break m["id"].clone();
            }
        };
        drop(ws);
        // Gone from the lobby before the next knock.
        while next_of(&mut patient, &["knock-ended"]).await["id"] != id {}
    }
    eprintln!("one address knocking and leaving: {banners} knocks shown, then {answer}");
    assert_eq!(answer["code"], "rate-limited", "{answer}");
    assert!(banners <= 5, "{banners} banners");
}

/// The next `room-settings` on `ws`.
async fn settings(ws: &mut Ws) -> Value {
    next_of(ws, &["room-settings"]).await
}

/// A join from `ip` into `room`, showing `owner` if given: the socket and
/// the answer.
async fn join_as(
    server: &Server,
    ip: &str,
    room: &str,
    name: &str,
    owner: Option<&str>,
) -> (Ws, Value) {
    let mut ws = ws_from(server, ip).await.expect("a socket");
    let mut join =
        json!({"type": "join", "v": 1, "room": room, "name": name, "audio": false, "video": false});
    if let Some(key) = owner {
        join["owner"] = json!(key);
    }
    send(&mut ws, join).await;
    let answer = next_of(&mut ws, &["welcome", "lobby", "error"]).await;
    (ws, answer)
}

/// Whoever joins a known empty room first used to moderate it, and could
/// lock its owner out. Now the browser that created the room keeps a key
/// (`room-owner`): a stranger first into the empty room moderates
/// nothing, even after a restart of the server, and the owner's key makes
/// it the moderator again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_first_into_an_owned_room_cannot_lock_it() {
    const OWNED: &str = "chambre-302";
    let mut server = Server::start();
    let (mut ana, welcome) = join_as(&server, "127.0.0.1", OWNED, "Ana", None).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let key = next_of(&mut ana, &["room-owner"]).await["key"]
        .as_str()
        .expect("the owner's key")
        .to_string();
    assert_eq!(settings(&mut ana).await["moderator"], true);
    send(&mut ana, json!({"type": "leave"})).await;
    drop(ana);

    // Eve knows the name and comes first into the empty room: not a
    // moderator, and her lock is refused.
    let (mut eve, welcome) = join_as(&server, "127.0.0.2", OWNED, "Eve", None).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(settings(&mut eve).await["moderator"], false);
    send(
        &mut eve,
        json!({"type": "set-password", "password": "à moi"}),
    )
    .await;
    let refused = next_of(&mut eve, &["error"]).await;
    assert_eq!(refused["code"], "not-moderator", "{refused}");
    drop(eve);

    // The server restarts (an update, a power cut): the room is still
    // Ana's.
    server.stop();
    server.start_again();
    let (mut eve, welcome) = join_as(&server, "127.0.0.2", OWNED, "Eve", None).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(
        settings(&mut eve).await["moderator"],
        false,
        "after a restart"
    );

    // Ana comes back with her key: the moderator, and she locks it.
    let (mut ana, welcome) = join_as(&server, "127.0.0.1", OWNED, "Ana", Some(&key)).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(settings(&mut ana).await["moderator"], true);
    send(
        &mut ana,
        json!({"type": "set-password", "password": "tulipe"}),
    )
    .await;
    loop {
        if settings(&mut ana).await["locked"] == true {
            break;
        }
    }
    // A key she was not given is no key.
    let (_dan, welcome) = join_as(
        &server,
        "127.0.0.3",
        OWNED,
        "Dan",
        Some("AAAAAAAAAAAAAAAAAAAAAA"),
    )
    .await;
    assert_eq!(welcome["code"], "password-required", "{welcome}");
}
