//! Headless Chromium with a fake camera and microphone, driven over the
//! Chrome DevTools Protocol on one WebSocket (flattened sessions).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::netns::NetNs;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Browser {
    child: Child,
    dir: PathBuf,
    ws: Mutex<(Ws, u64)>,
    /// The browser context of each tab: a tab is a person, with storage
    /// of its own (a room's owner key kept by one tab is not another's).
    contexts: std::sync::Mutex<Vec<String>>,
    /// Permissions set, given to each context made later too.
    permissions: std::sync::Mutex<Vec<Value>>,
}

pub struct Tab<'a> {
    browser: &'a Browser,
    session: String,
    pub target: String,
    /// Its browser context: the device it stands for.
    context: String,
}

fn chromium() -> &'static str {
    for p in [
        "/usr/lib/chromium/chromium",
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
    ] {
        if std::path::Path::new(p).exists() {
            return p;
        }
    }
    panic!("Chromium is not installed: run scripts/test.sh, which installs it");
}

impl Browser {
    pub async fn launch() -> Browser {
        Browser::launch_in(None, &[]).await
    }

    /// A Chromium on a host of its own (a network namespace), with more
    /// flags (`--unsafely-treat-insecure-origin-as-secure=...` for a page
    /// that is not on its loopback).
    pub async fn launch_in(ns: Option<&NetNs>, extra: &[String]) -> Browser {
        Browser::launch_with(ns, extra, true).await
    }

    /// A Chromium that grants the camera and microphone only as a person
    /// would: by what `set_permission` says (no prompt accepted for them).
    pub async fn launch_asking() -> Browser {
        Browser::launch_with(None, &[], false).await
    }

    async fn launch_with(ns: Option<&NetNs>, extra: &[String], accept_prompts: bool) -> Browser {
        let dir = std::env::temp_dir().join(format!("parloir-chromium-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("profile dir");
        // PARLOIR_TEST_CHROMIUM_LOG=FILE keeps Chromium's own log (WebRTC
        // warnings included) for looking at by hand.
        let log = std::env::var("PARLOIR_TEST_CHROMIUM_LOG").ok();
        let stderr = match &log {
            Some(path) => std::fs::File::create(path)
                .map(Stdio::from)
                .unwrap_or(Stdio::null()),
            None => Stdio::null(),
        };
        let mut command = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name, chromium()]);
                c
            }
            None => Command::new(chromium()),
        };
        let child = command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-device-for-media-stream",
                "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--allow-loopback-in-peer-connection",
                // Background tabs must not be throttled: every tab is a user.
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--remote-debugging-port=0",
            ])
            .args(accept_prompts.then_some("--use-fake-ui-for-media-stream"))
            .args(extra)
            .arg(format!("--user-data-dir={}", dir.display()))
            .args(log.iter().map(|_| "--enable-logging=stderr"))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start chromium");
        let port_file = dir.join("DevToolsActivePort");
        let start = Instant::now();
        let (port, url) = loop {
            if let Ok(s) = std::fs::read_to_string(&port_file) {
                let mut lines = s.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    let port: u16 = port.parse().expect("DevTools port");
                    break (port, format!("ws://127.0.0.1:{port}{path}"));
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromium did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (ws, _) = match ns {
            // DevTools listens on the namespace's loopback.
            Some(ns) => {
                let tcp = ns.connect_loopback(port).expect("devtools port");
                tcp.set_nonblocking(true).expect("nonblocking");
                let tcp = TcpStream::from_std(tcp).expect("tokio socket");
                tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
                    .await
                    .expect("devtools websocket")
            }
            None => tokio_tungstenite::connect_async(url)
                .await
                .expect("devtools websocket"),
        };
        Browser {
            child,
            dir,
            ws: Mutex::new((ws, 0)),
            contexts: Default::default(),
            permissions: Default::default(),
        }
    }

    /// Sends one DevTools command and waits for its result.
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.try_call(session, method, params.clone())
            .await
            .unwrap_or_else(|e| panic!("devtools {method}: {e}"))
    }

    /// A DevTools call: its result, or the error it answered.
    async fn try_call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        let mut guard = self.ws.lock().await;
        let (ws, next) = &mut *guard;
        *next += 1;
        let id = *next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        ws.send(Message::Text(msg.to_string().into()))
            .await
            .expect("devtools send");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(60), ws.next())
                .await
                .expect("devtools answer in time")
                .expect("devtools open")
                .expect("devtools frame");
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(&text).expect("devtools json");
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    return Err(e.clone());
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// Grants or refuses a permission (`camera`, `microphone`) to pages of
    /// `origin`, as a person would in the browser's prompt or settings.
    pub async fn set_permission(&self, origin: &str, name: &str, setting: &str) {
        let params =
            json!({ "permission": { "name": name }, "setting": setting, "origin": origin });
        self.permissions.lock().unwrap().push(params.clone());
        let contexts = self.contexts.lock().unwrap().clone();
        for context in contexts {
            self.permit(&params, &context).await;
        }
    }

    async fn permit(&self, params: &Value, context: &str) {
        let mut params = params.clone();
        params["browserContextId"] = json!(context);
        self.call(None, "Browser.setPermission", params).await;
    }

    /// Opens a new tab at `url`, in a browser context of its own: each tab
    /// is another person, with its own storage, as on another device.
    pub async fn open(&self, url: &str) -> Tab<'_> {
        let context = self
            .call(None, "Target.createBrowserContext", json!({}))
            .await["browserContextId"]
            .as_str()
            .expect("browserContextId")
            .to_string();
        self.contexts.lock().unwrap().push(context.clone());
        let permissions = self.permissions.lock().unwrap().clone();
        for params in &permissions {
            self.permit(params, &context).await;
        }
        self.open_in(url, context).await
    }

    /// Opens a new tab at `url` on the device of `beside` (its browser
    /// context, its storage): the next person at a shared kiosk.
    pub async fn open_beside(&self, beside: &Tab<'_>, url: &str) -> Tab<'_> {
        self.open_in(url, beside.context.clone()).await
    }

    async fn open_in(&self, url: &str, context: String) -> Tab<'_> {
        let target = self
            .call(
                None,
                "Target.createTarget",
                json!({ "url": url, "browserContextId": context }),
            )
            .await["targetId"]
            .as_str()
            .expect("targetId")
            .to_string();
        let session = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        Tab {
            browser: self,
            session,
            target,
            context,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Tab<'_> {
    /// Evaluates an expression in the page (promises are awaited).
    /// A tab just opened, or navigating, has no page to evaluate in for a
    /// moment: that is waited out.
    pub async fn eval(&self, expr: &str) -> Value {
        // As if the user had just clicked: what needs a gesture (sharing the
        // screen) can be driven from a test.
        let params = json!({ "expression": expr, "awaitPromise": true, "returnByValue": true, "userGesture": true });
        let mut attempts = 0;
        let r = loop {
            match self
                .browser
                .try_call(Some(&self.session), "Runtime.evaluate", params.clone())
                .await
            {
                Ok(r) => break r,
                Err(e) if attempts < 100 && e.to_string().contains("execution context") => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("devtools Runtime.evaluate: {e}"),
            }
        };
        if let Some(e) = r.get("exceptionDetails") {
            return json!({ "exception": e });
        }
        r["result"]["value"].clone()
    }

    /// A PNG of what the tab shows, for looking at by hand.
    pub async fn screenshot(&self, path: &str) {
        use base64::Engine;
        let r = self
            .browser
            .call(
                Some(&self.session),
                "Page.captureScreenshot",
                json!({ "format": "png" }),
            )
            .await;
        if let Some(data) = r["data"].as_str() {
            if let Ok(png) = base64::engine::general_purpose::STANDARD.decode(data) {
                let _ = std::fs::write(path, png);
            }
        }
    }

    pub async fn close(self) {
        self.browser
            .call(
                None,
                "Target.closeTarget",
                json!({ "targetId": self.target }),
            )
            .await;
    }
}

impl Tab<'_> {
    /// Any other DevTools command on this tab (a screen size to emulate,
    /// `Page.navigate`, ...): its result.
    pub async fn cdp(&self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params).await
    }
}
