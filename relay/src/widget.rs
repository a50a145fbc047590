//! The embeddable web chat widget, served by the relay.
//!
//! A shop adds `<script src="https://RELAY/widget.js" data-key="WIDGET_KEY"></script>` to its
//! pages; the script (`relay/widget/widget.js`, plain JavaScript, no build step) finds the
//! relay from its own `src`, loads `widget.css` and speaks the customer WebSocket protocol.
//! Both files are compiled into the binary, so a relay always serves the widget that
//! matches its protocol.
//!
//! ## Routes
//! - `GET /widget.js`, `GET /widget.css`: the assets, with an `ETag` (a hash of the
//!   content; `If-None-Match` is answered `304`) and `Cache-Control: public, max-age=300`,
//!   so a new relay's widget reaches every page within five minutes.
//! - `GET /widget/demo?key=WIDGET_KEY[&group=SLUG][&name=NAME]`: a small page embedding the
//!   widget, to try it out (and for the browser test). It runs under a strict
//!   Content-Security-Policy: scripts, styles and connections only to the relay itself,
//!   images also from `blob:` (how the widget shows images sent in the chat).

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kefu_proto::ErrorCode;
use kefu_proto::limits::{MAX_CREDENTIAL_BYTES, check_name, check_slug};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::RelayState;
use crate::error::{Error, Result};

/// How long browsers and proxies may keep the assets without asking again.
const ASSET_CACHE_CONTROL: &str = "public, max-age=300";

/// The demo page's policy: nothing but the relay's own script, style, sockets and
/// requests; images from the relay or from blob URLs the widget made; no framing, no
/// forms, no `<base>`.
const DEMO_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
                        connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A file served from the binary.
struct Asset {
    /// The content.
    body: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// A strong validator: the first 16 bytes of the content's SHA-256, quoted.
    etag: String,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Asset {
        let digest = Sha256::digest(body.as_bytes());
        let hex = hex::encode(&digest[..16]);
        Asset { body, content_type, etag: format!("\"{hex}\"") }
    }

    /// `304` when the client's `If-None-Match` names this content, else the content.
    fn serve(&self, request: &HeaderMap) -> Response {
        let cached = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|tag| tag.trim())
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag);
        let headers = [
            (header::ETAG, HeaderValue::from_str(&self.etag).expect("hex in quotes is a valid header value")),
            (header::CACHE_CONTROL, HeaderValue::from_static(ASSET_CACHE_CONTROL)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ];
        if cached {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        (headers, [(header::CONTENT_TYPE, self.content_type)], self.body).into_response()
    }
}

static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("../widget/widget.js"), "application/javascript; charset=utf-8"));
static STYLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("../widget/widget.css"), "text/css; charset=utf-8"));

/// The widget's routes, merged into the relay's router.
pub fn routes() -> Router<Arc<RelayState>> {
    Router::new()
        .route("/widget.js", get(|headers: HeaderMap| async move { SCRIPT.serve(&headers) }))
        .route("/widget.css", get(|headers: HeaderMap| async move { STYLE.serve(&headers) }))
        .route("/widget/demo", get(demo))
}

/// What the demo page embeds the widget with.
#[derive(Debug, Deserialize)]
struct DemoParams {
    /// The workspace's widget key.
    key: Option<String>,
    /// A skill group's slug, passed on as `data-group`.
    group: Option<String>,
    /// A display name, passed on as `data-name`.
    name: Option<String>,
}

/// A shop page, as small as can be, with the widget on it.
async fn demo(Query(params): Query<DemoParams>) -> Result<Response> {
    let key = params.key.unwrap_or_default();
    let key_ok = !key.is_empty()
        && key.len() <= MAX_CREDENTIAL_BYTES
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !key_ok {
        return Err(Error::refused(
            ErrorCode::BadRequest,
            "give the workspace's widget key: /widget/demo?key=wk_… (see `kefu-relay workspace show`)",
        ));
    }
    let mut attributes = format!(" data-key=\"{key}\"");
    if let Some(group) = params.group.filter(|g| !g.is_empty()) {
        check_slug(&group)?;
        attributes.push_str(&format!(" data-group=\"{group}\""));
    }
    if let Some(name) = params.name.filter(|n| !n.is_empty()) {
        check_name(&name)?;
        attributes.push_str(&format!(" data-name=\"{}\"", escape_html(&name)));
    }
    let page = format!(
        "<!doctype html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>kefu widget demo</title>\n<script src=\"/widget.js\"{attributes}></script>\n</head>\n<body>\n\
         <h1>示例商店 · Demo shop</h1>\n\
         <p>The chat bubble in the corner is the kefu widget, embedded with one script tag:</p>\n\
         <pre>&lt;script src=\"https://RELAY/widget.js\" data-key=\"WIDGET_KEY\"&gt;&lt;/script&gt;</pre>\n\
         </body>\n</html>\n"
    );
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, DEMO_CSP),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (HeaderName::from_static("x-frame-options"), "DENY"),
    ];
    Ok((headers, page).into_response())
}

/// Text made safe for an HTML attribute or element.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_names_the_content_and_answers_304() {
        let asset = Asset::new("console.log(1)", "application/javascript; charset=utf-8");
        assert_eq!(asset.etag.len(), 34, "32 hex digits in quotes");
        assert_ne!(asset.etag, Asset::new("console.log(2)", "text/css").etag);

        let fresh = asset.serve(&HeaderMap::new());
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[header::ETAG], asset.etag.as_str());
        assert_eq!(fresh.headers()[header::CACHE_CONTROL], ASSET_CACHE_CONTROL);

        for held in [asset.etag.clone(), format!("W/{}", asset.etag), format!("\"other\", {}", asset.etag)] {
            let mut request = HeaderMap::new();
            request.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&held).unwrap());
            assert_eq!(asset.serve(&request).status(), StatusCode::NOT_MODIFIED, "{held}");
        }
        let mut stale = HeaderMap::new();
        stale.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(asset.serve(&stale).status(), StatusCode::OK);
    }

    #[test]
    fn names_are_escaped_for_the_page() {
        assert_eq!(escape_html(r#"李"><script>'&"#), "李&quot;&gt;&lt;script&gt;&#39;&amp;");
    }
}
