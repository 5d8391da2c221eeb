//! The web client, embedded in the binary so that a copied binary runs
//! alone. Plain ES modules, no build step.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::origin::Origin;
use super::AppState;

const INDEX: &str = include_str!("../../client/index.html");
const APP_JS: &str = include_str!("../../client/app.js");
const CALL_JS: &str = include_str!("../../client/call.js");
const I18N_JS: &str = include_str!("../../client/i18n.js");
const QUALITY_JS: &str = include_str!("../../client/quality.js");
const DEVICES_JS: &str = include_str!("../../client/devices.js");
const STYLE: &str = include_str!("../../client/style.css");
const FAVICON: &str = include_str!("../../client/favicon.svg");

fn page(body: &'static str, mime: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // A room's link is its key: it must not leave in a Referer.
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

/// The page's Content-Security-Policy: its own scripts, styles and
/// signalling only (no inline script, nothing from elsewhere, no plugin),
/// so an injected name or chat line can run nothing and send nothing
/// away; framed only by itself and the sites allowed to embed it.
pub fn content_security_policy(allowed_origins: &[Origin]) -> String {
    let ancestors: Vec<String> = std::iter::once("'self'".to_string())
        .chain(allowed_origins.iter().map(Origin::to_string))
        .collect();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors {}",
        ancestors.join(" ")
    )
}

async fn html(State(state): State<AppState>) -> Response {
    let csp = content_security_policy(&state.0.config.allowed_origins);
    let mut r = page(INDEX, "text/html; charset=utf-8").into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(html))
        .route("/r/{room}", get(html))
        .route("/app.js", get(|| async { page(APP_JS, "text/javascript") }))
        .route(
            "/call.js",
            get(|| async { page(CALL_JS, "text/javascript") }),
        )
        .route(
            "/i18n.js",
            get(|| async { page(I18N_JS, "text/javascript") }),
        )
        .route(
            "/quality.js",
            get(|| async { page(QUALITY_JS, "text/javascript") }),
        )
        .route(
            "/devices.js",
            get(|| async { page(DEVICES_JS, "text/javascript") }),
        )
        .route("/style.css", get(|| async { page(STYLE, "text/css") }))
        // A tab and a bookmark people can tell apart (browsers asked for
        // /favicon.ico and got 404).
        .route(
            "/favicon.svg",
            get(|| async { page(FAVICON, "image/svg+xml") }),
        )
}
