//! The status page: one HTML document, its script and style, and the vendored uPlot
//! charting library, all embedded in the binary. `GET /` serves the document linking
//! its assets under `/assets/`; [`report_html`] inlines the same assets and the data into
//! one self-contained file for `vastwatch report`.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

const DOCUMENT: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");
const UPLOT_SCRIPT: &str = include_str!("vendor/uPlot.iife.min.js");
const UPLOT_STYLE: &str = include_str!("vendor/uPlot.min.css");

/// Where the document takes its assets: links when served, inline in a report.
const ASSETS_MARKER: &str = "<!-- assets -->";

/// (name under `/assets/`, content type, body)
const ASSETS: [(&str, &str, &str); 4] = [
    ("uPlot.min.css", "text/css; charset=utf-8", UPLOT_STYLE),
    ("page.css", "text/css; charset=utf-8", STYLE),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        UPLOT_SCRIPT,
    ),
    ("page.js", "text/javascript; charset=utf-8", SCRIPT),
];

/// Appended to asset links: browsers cache assets for an hour, and a new binary must not
/// meet an old script.
const ASSET_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-", env!("VASTWATCH_BUILD"));

/// The served document. Links are relative, so the page also works behind a proxy that
/// mounts the API under a path prefix.
static SERVED: LazyLock<String> = LazyLock::new(|| {
    // The build id holds spaces (commit, profile, target).
    let version = ASSET_VERSION.replace(' ', "-");
    let links: String = ASSETS
        .iter()
        .map(|(name, content_type, _)| {
            if content_type.starts_with("text/css") {
                format!("<link rel=\"stylesheet\" href=\"assets/{name}?v={version}\">\n")
            } else {
                format!("<script src=\"assets/{name}?v={version}\" defer></script>\n")
            }
        })
        .collect();
    DOCUMENT.replace(ASSETS_MARKER, &links)
});

/// `GET /`: the status page.
pub async fn index() -> Html<&'static str> {
    Html(SERVED.as_str())
}

/// `GET /assets/{file}`: one embedded asset.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                // Assets change only with the binary; an hour keeps reloads cheap.
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// The status page with its assets and `data` (what [`super::report_data`] returns)
/// inlined: one file that needs no server or network.
pub fn report_html(data: &Value) -> String {
    let mut inline = String::new();
    for (_, content_type, body) in ASSETS {
        if content_type.starts_with("text/css") {
            inline.push_str(&format!("<style>\n{body}\n</style>\n"));
        } else if body == SCRIPT {
            inline.push_str(&format!(
                "<script>window.VASTWATCH_REPORT = {};</script>\n<script>\n{body}\n</script>\n",
                script_json(data)
            ));
        } else {
            inline.push_str(&format!("<script>\n{body}\n</script>\n"));
        }
    }
    DOCUMENT.replace(ASSETS_MARKER, &inline)
}

/// JSON safe inside a `<script>` element: `</script>` or `<!--` in a string (an alert
/// annotation, say) must not end or confuse the element, so every `<` is escaped.
fn script_json(data: &Value) -> String {
    data.to_string().replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_report_inlines_every_asset_and_escapes_markup_in_its_data() {
        let html = report_html(&json!({"note": "</script><script>alert(1)</script>"}));
        assert!(!html.contains(ASSETS_MARKER));
        assert!(!html.contains("src=\"assets/"));
        assert!(html.contains("\\u003c/script>\\u003cscript>alert(1)"));
        assert_eq!(html.matches("</script>").count(), 3, "uPlot, data, page");
        for (_, _, body) in ASSETS {
            assert!(html.contains(body));
        }
    }

    #[test]
    fn the_served_page_links_every_asset() {
        for (name, _, _) in ASSETS {
            assert!(SERVED.contains(&format!("assets/{name}")), "{name}");
        }
    }
}
