//! Strangers at the door of a room whose name they know, on a real server
//! on loopback, through the signalling alone: four addresses with five
//! knocks each used to fill the lobby and turn the family away
//! (`lobby-full`), and one address knocking and leaving put 39 banners on
//! the patient's tablet in 20 s. And whoever joined a known empty room
//! first became its moderator and could lock its owner out.

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
    let join =
        json!({"type": "join", "v": 1, "room": ROOM, "name": name, "audio": false, "video": false});
    join_from(server, ip, join).await
}

async fn join_from(server: &Server, ip: &str, join: Value) -> (Ws, Value) {
    let mut ws = ws_from(server, ip).await.expect("a socket");
    send(&mut ws, join).await;
    let answer = next_of(&mut ws, &["welcome", "lobby", "error"]).await;
    (ws, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_can_neither_fill_a_lobby_nor_take_a_room() {
    let server = Server::start();
    lobby_flood(&server).await;
    owner_comes_back(&server).await;
}

async fn lobby_flood(server: &Server) {
    let (mut patient, welcome) = knock(server, "127.0.0.1", "Patient").await;
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
            let (ws, answer) = knock(server, ip, &format!("Dr. Martin {i}")).await;
            assert_eq!(answer["type"], "lobby", "{answer}");
            held.push(ws);
        }
    }
    // The family, from a fifth: waits too, and one stranger made way.
    let (_family, answer) = knock(server, "127.0.0.6", "Famille").await;
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
        let (ws, a) = knock(server, "127.0.0.7", &name).await;
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

/// Whether the room says `ws` moderates it, once it says so.
async fn moderates(ws: &mut Ws) -> bool {
    next_of(ws, &["room-settings"]).await["moderator"] == true
}

/// A room stays its creator's, whoever comes first.
async fn owner_comes_back(server: &Server) {
    let join = |name: &str, claim: &str, password: Option<&str>| {
        json!({"type": "join", "v": 1, "room": "salle-du-club", "name": name,
               "audio": false, "video": false, "claim": claim, "password": password})
    };
    const OWNER: &str = "owner-claim-0123456789abcdef";
    // The club's browser starts the room, with its claim, and leaves: the
    // room ends.
    let (mut owner, welcome) = join_from(server, "127.0.0.1", join("Club", OWNER, None)).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert!(moderates(&mut owner).await);
    send(&mut owner, json!({"type": "leave"})).await;
    drop(owner);

    // A stranger who knows the name comes first, with a claim of its own,
    // and shuts the room.
    let stranger_claim = "stranger-claim-0123456789ab";
    let (mut stranger, welcome) = loop {
        let (ws, w) = join_from(server, "127.0.0.8", join("Intrus", stranger_claim, None)).await;
        if w["type"] == "welcome" {
            break (ws, w);
        }
        // The owner's leave may not have reached the worker yet.
        assert_eq!(w["code"], "already-joined", "{w}");
    };
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert!(moderates(&mut stranger).await, "stands in meanwhile");
    send(
        &mut stranger,
        json!({"type": "set-password", "password": "verrou"}),
    )
    .await;
    send(&mut stranger, json!({"type": "set-lobby", "on": true})).await;
    loop {
        let s = next_of(&mut stranger, &["room-settings"]).await;
        if s["locked"] == true && s["lobby"] == true {
            break;
        }
    }
    // Someone else without the claim is asked for the password.
    let (_, refused) = join_from(
        server,
        "127.0.0.9",
        join("Autre", "another-claim-0123456789", None),
    )
    .await;
    assert_eq!(refused["code"], "password-required", "{refused}");

    // The club's browser comes back: in, past password and lobby, and
    // moderates; the stranger no longer does.
    let (mut owner, welcome) = join_from(server, "127.0.0.1", join("Club", OWNER, None)).await;
    assert_eq!(
        welcome["type"], "welcome",
        "the owner locked out: {welcome}"
    );
    assert!(moderates(&mut owner).await);
    loop {
        let s = next_of(&mut stranger, &["room-settings"]).await;
        if s["moderator"] == false {
            break;
        }
    }
}
