//! The web client, embedded in the binary so that a copied binary runs
//! alone. Plain ES modules, no build step.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;

const INDEX: &str = include_str!("../../client/index.html");
const APP_JS: &str = include_str!("../../client/app.js");
const CALL_JS: &str = include_str!("../../client/call.js");
const I18N_JS: &str = include_str!("../../client/i18n.js");
const QUALITY_JS: &str = include_str!("../../client/quality.js");
const DEVICES_JS: &str = include_str!("../../client/devices.js");
const STYLE: &str = include_str!("../../client/style.css");

fn page(body: &'static str, mime: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

pub fn routes() -> Router<AppState> {
    let html = || async { page(INDEX, "text/html; charset=utf-8") };
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
}
