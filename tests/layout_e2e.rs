//! Layout that keeps faces whole: in a two-person call the other person
//! fills the screen and your own picture is small in a corner; pictures
//! are shown whole (letterboxed), never cropped to fill a tile.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{join, wait_full_mesh, Server};

/// Width and height of the tile of `selector` in the tab.
const TILE_BOX: &str =
    "((sel) => { const r = document.querySelector(sel).getBoundingClientRect(); \
                        return [r.width, r.height]; })";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_person_is_large_and_whole_and_you_are_small() {
    let server = Server::start();
    let browser = Browser::launch().await;
    let room = "layout-e2e";
    let tabs = [
        join(&browser, &server.http, room, "Ana").await,
        join(&browser, &server.http, room, "Ben").await,
    ];
    wait_full_mesh("Ana and Ben in a call", &tabs, Duration::from_secs(30)).await;
    let ana = &tabs[0].0;
    let other = ana
        .eval(&format!("{TILE_BOX}('#grid .tile:not(.self)')"))
        .await;
    let me = ana.eval(&format!("{TILE_BOX}('#grid .tile.self')")).await;
    let area = |v: &serde_json::Value| v[0].as_f64().unwrap() * v[1].as_f64().unwrap();
    eprintln!("the other's tile {other}, mine {me}");
    assert!(
        area(&other) > 8.0 * area(&me),
        "the person called is far larger than oneself: {other} against {me}"
    );
    let fit = ana
        .eval("getComputedStyle(document.querySelector('#grid .tile:not(.self) video')).objectFit")
        .await;
    assert_eq!(fit, "contain", "whole pictures, not cropped");
    ana.screenshot("/tmp/parloir-layout-two.png").await;
}
