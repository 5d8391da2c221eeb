//! Screenshots of every screen of the web client (those of
//! `common::screens::walk`, the same the accessibility audit checks), in
//! English and in French, on a phone (390×844) and on a laptop
//! (1280×800): what scripts/screens.sh runs to make docs/screens/. Not a
//! test (it checks nothing about the client beyond the screens being
//! shown): ignored unless asked for with `--ignored`.
//!
//! Files: `{en,fr}-{phone,laptop}-SCREEN.png` in `PARLOIR_SCREENS_DIR`
//! (default docs/screens). Before every shot of a call, each video shown
//! plays real frames of the fake camera.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::browser::Tab;
use common::screens::{self, Shown, Visit};
use common::{frames_decoded, until, wait_for, Server};

fn out_dir() -> PathBuf {
    let dir = std::env::var_os("PARLOIR_SCREENS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screens"));
    std::fs::create_dir_all(&dir).expect("screenshots directory");
    dir
}

/// Every video the tab shows (in a tile with its camera on and forwarded,
/// or the pre-join preview) has a picture.
const VIDEOS_PLAY: &str = "[...document.querySelectorAll('video')] \
    .filter((v) => v.offsetParent !== null && getComputedStyle(v).visibility !== 'hidden' \
                   && !v.closest('.cam-off, .not-forwarded')) \
    .every((v) => v.readyState >= 2 && v.videoWidth > 0)";

/// Waits until the tab decodes `more` frames of every other participant
/// than it had: the pictures move.
async fn frames_flow(tab: &Tab<'_>, more: u64) {
    let before = frames_decoded(tab).await;
    wait_for("frames decoded", Duration::from_secs(20), || async {
        let now = frames_decoded(tab).await;
        let moving = now
            .iter()
            .all(|(id, n)| *n >= before.get(id).copied().unwrap_or(0) + more);
        (moving && tab.eval(VIDEOS_PLAY).await == true).then_some(())
    })
    .await;
}

/// Takes each screen shown as `LANG-SIZE-SCREEN.png`.
struct Camera(PathBuf);

impl Visit for Camera {
    async fn visit(&mut self, shown: Shown<'_, '_>) {
        let tab = shown.tab;
        // The layout settles, the tiles' new sizes are told to the server,
        // and the pictures follow.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        if shown.live {
            frames_flow(tab, 25).await;
        }
        until(
            tab,
            "every video shown to play",
            VIDEOS_PLAY,
            Duration::from_secs(30),
        )
        .await;
        let path = self.0.join(format!(
            "{}-{}-{}.png",
            shown.lang, shown.size, shown.screen
        ));
        let _ = std::fs::remove_file(&path);
        tab.screenshot(path.to_str().expect("a UTF-8 path")).await;
        let bytes = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{} written: {e}", path.display()))
            .len();
        eprintln!("{} ({} kB)", path.display(), bytes / 1000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "makes docs/screens: run by scripts/screens.sh"]
async fn screenshots_of_every_screen() {
    let mut server = Server::start_args(screens::SERVER_ARGS);
    let mut camera = Camera(out_dir());
    for lang in ["en", "fr"] {
        screens::walk(&mut server, lang, &mut camera).await;
    }
}
