//! The HTTP side: logging in and checking a relay's health.

use kefu_proto::api::{ApiErrorBody, Health, LoginRequest, LoginResponse};

use crate::error::{Error, Result};

/// An HTTP client; proxies are skipped for loopback relays (tests, the demo).
pub(crate) fn client(relay: &str) -> Result<reqwest::Client> {
    let loopback = ["://127.", "://localhost", "://[::1]"].iter().any(|p| relay.contains(p));
    let builder = reqwest::Client::builder();
    let builder = if loopback { builder.no_proxy() } else { builder };
    builder.build().map_err(|e| Error::Relay(format!("cannot make an HTTP client: {e}")))
}

fn url(relay: &str, path: &str) -> String {
    format!("{}{path}", relay.trim_end_matches('/'))
}

/// `POST /api/v1/login`.
pub async fn login(relay: &str, email: &str, password: &str, workspace: Option<String>) -> Result<LoginResponse> {
    let request = LoginRequest { email: email.to_string(), password: password.to_string(), workspace };
    let response = client(relay)?
        .post(url(relay, "/api/v1/login"))
        .json(&request)
        .send()
        .await
        .map_err(|e| Error::Relay(format!("cannot reach the relay at {relay}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        let message = match response.json::<ApiErrorBody>().await {
            Ok(body) => format!("{} ({})", body.error.message, body.error.code),
            Err(_) => status.to_string(),
        };
        return Err(Error::Relay(format!("login refused: {message}")));
    }
    response.json().await.map_err(|e| Error::Relay(format!("the relay's answer is not a login: {e}")))
}

/// `POST /api/v1/logout` with `token`.
pub async fn logout(relay: &str, token: &str) -> Result<()> {
    let response = client(relay)?
        .post(url(relay, "/api/v1/logout"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| Error::Relay(format!("cannot reach the relay at {relay}: {e}")))?;
    if response.status().is_success() || response.status() == reqwest::StatusCode::UNAUTHORIZED {
        Ok(())
    } else {
        Err(Error::Relay(format!("logout refused: {}", response.status())))
    }
}

/// `GET /healthz`.
pub async fn health(relay: &str) -> Result<Health> {
    client(relay)?
        .get(url(relay, "/healthz"))
        .send()
        .await
        .map_err(|e| Error::Relay(format!("cannot reach the relay at {relay}: {e}")))?
        .json()
        .await
        .map_err(|e| Error::Relay(format!("the relay's answer is not a health report: {e}")))
}
