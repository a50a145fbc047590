//! The HTTP side: logging in and checking a relay's health.

use kefu_proto::api::{ApiErrorBody, Health, LoginRequest, LoginResponse};

use crate::error::{Error, Result};
use crate::tls::{Trust, describe};

fn url(relay: &str, path: &str) -> String {
    format!("{}{path}", relay.trim_end_matches('/'))
}

/// The relay could not be reached (or its certificate is not trusted).
fn unreachable(relay: &str, e: reqwest::Error) -> Error {
    Error::Relay(format!("cannot reach the relay at {relay}: {}", describe(&e)))
}

/// `POST /api/v1/login`.
pub async fn login(
    relay: &str,
    trust: &Trust,
    email: &str,
    password: &str,
    workspace: Option<String>,
) -> Result<LoginResponse> {
    let request = LoginRequest { email: email.to_string(), password: password.to_string(), workspace };
    let response = trust
        .http_client(relay)?
        .post(url(relay, "/api/v1/login"))
        .json(&request)
        .send()
        .await
        .map_err(|e| unreachable(relay, e))?;
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
pub async fn logout(relay: &str, trust: &Trust, token: &str) -> Result<()> {
    let response = trust
        .http_client(relay)?
        .post(url(relay, "/api/v1/logout"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| unreachable(relay, e))?;
    if response.status().is_success() || response.status() == reqwest::StatusCode::UNAUTHORIZED {
        Ok(())
    } else {
        Err(Error::Relay(format!("logout refused: {}", response.status())))
    }
}

/// `GET /healthz`.
pub async fn health(relay: &str, trust: &Trust) -> Result<Health> {
    trust
        .http_client(relay)?
        .get(url(relay, "/healthz"))
        .send()
        .await
        .map_err(|e| unreachable(relay, e))?
        .json()
        .await
        .map_err(|e| Error::Relay(format!("the relay's answer is not a health report: {e}")))
}
