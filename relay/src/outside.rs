//! Calls the bot makes to other systems: an OpenAI-compatible language model that phrases
//! answers from the knowledge base, and automations (a shop's own endpoints that answer
//! an intent, such as order status). Every call has a timeout and a clear fallback; the
//! model sits behind a circuit breaker so a failing endpoint costs nothing for a while.
//! Requests to automations are signed with HMAC-SHA256 so the shop can trust them.

use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use kefu_proto::UnixMillis;

/// The header carrying a signature: `sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "x-kefu-signature";
/// The header carrying the Unix time (seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-kefu-timestamp";

/// Signs a request body for `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", hex::encode(bytes))
}

/// Whether `signature` is right for the body and timestamp (compared in constant time).
pub fn verify(secret: &str, timestamp: i64, body: &[u8], signature: &str) -> bool {
    let Some(digits) = signature.strip_prefix("sha256=") else { return false };
    // Lower-case hex only, as `sign` writes it: accepted signatures are remembered by their
    // text to refuse replays, and upper-case letters would make new texts of one signature.
    if !digits.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return false;
    }
    let Ok(given) = hex::decode(digits) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// A circuit breaker: after `threshold` failures in a row it opens for `open_ms`, during
/// which calls are skipped; then one call is let through to try again. Pure: the time is
/// passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    threshold: u32,
    open_ms: i64,
    failures: u32,
    open_until: Option<UnixMillis>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, open_ms: i64) -> Breaker {
        Breaker { threshold: threshold.max(1), open_ms, failures: 0, open_until: None }
    }

    /// Whether a call may be made now.
    pub fn allows(&self, now: UnixMillis) -> bool {
        self.open_until.is_none_or(|until| now >= until)
    }

    /// Records a call's outcome.
    pub fn record(&mut self, ok: bool, now: UnixMillis) {
        if ok {
            self.failures = 0;
            self.open_until = None;
        } else {
            self.failures += 1;
            if self.failures >= self.threshold {
                self.open_until = Some(now + self.open_ms);
            }
        }
    }
}

/// An OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// The chat-completions URL (e.g. `http://10.0.0.5:8000/v1/chat/completions`).
    pub url: String,
    /// The model name.
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set.
    #[serde(default)]
    pub api_key: Option<String>,
    /// How long an answer may take before the plain article is sent instead.
    #[serde(default = "default_llm_timeout")]
    pub timeout_ms: u64,
    /// Failures in a row before the model is skipped for `pause_secs`.
    #[serde(default = "default_failures")]
    pub failures_before_pause: u32,
    /// How long a failing model is skipped.
    #[serde(default = "default_pause")]
    pub pause_secs: u64,
}

fn default_llm_timeout() -> u64 {
    4000
}
fn default_failures() -> u32 {
    3
}
fn default_pause() -> u64 {
    30
}

/// An automation: the shop's endpoint that answers one intent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomationConfig {
    /// The intent it answers (e.g. `order_status`).
    pub intent: String,
    /// Where to POST the conversation's context.
    pub url: String,
    /// The HMAC-SHA256 key the request is signed with.
    pub secret: String,
    /// How long it may take before the conversation goes to a person.
    #[serde(default = "default_automation_timeout")]
    pub timeout_ms: u64,
}

fn default_automation_timeout() -> u64 {
    3000
}

/// What an automation is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutomationRequest {
    /// The workspace.
    pub workspace_id: i64,
    /// The conversation.
    pub conversation_id: i64,
    /// The customer.
    pub contact_id: i64,
    /// The intent that matched.
    pub intent: String,
    /// What the customer wrote.
    pub message: String,
    /// The customer's language (`zh`, `en`).
    pub language: String,
}

/// What an automation answers: a text for the customer, or a request for a person.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AutomationAnswer {
    /// Sent to the customer by the bot.
    #[serde(default)]
    pub answer: Option<String>,
    /// Hand the conversation to a person.
    #[serde(default)]
    pub handover: bool,
}

/// The outside services the bot may use.
pub struct Outside {
    http: reqwest::Client,
    llm: Option<(LlmConfig, Mutex<Breaker>)>,
    automations: Vec<AutomationConfig>,
}

impl Outside {
    /// The services as configured.
    pub fn new(llm: Option<LlmConfig>, automations: Vec<AutomationConfig>) -> Outside {
        let http = crate::tls::http_client().no_proxy().build().expect("an HTTP client builds");
        let llm = llm.map(|c| {
            let breaker = Breaker::new(c.failures_before_pause, c.pause_secs as i64 * 1000);
            (c, Mutex::new(breaker))
        });
        Outside { http, llm, automations }
    }

    /// The automation for an intent, if one is configured.
    pub fn automation(&self, intent: &str) -> Option<&AutomationConfig> {
        self.automations.iter().find(|a| a.intent == intent)
    }

    /// Calls an automation; `None` on any failure (the caller hands over to a person).
    pub async fn call_automation(
        &self,
        automation: &AutomationConfig,
        request: &AutomationRequest,
        now_secs: i64,
    ) -> Option<AutomationAnswer> {
        let body = serde_json::to_vec(request).ok()?;
        let signature = sign(&automation.secret, now_secs, &body);
        let response = self
            .http
            .post(&automation.url)
            .timeout(Duration::from_millis(automation.timeout_ms))
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, now_secs.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => match r.json::<AutomationAnswer>().await {
                Ok(answer) => Some(answer),
                Err(e) => {
                    tracing::warn!(url = %automation.url, error = %e, "automation answered something unreadable");
                    None
                }
            },
            Ok(r) => {
                tracing::warn!(url = %automation.url, status = %r.status(), "automation refused");
                None
            }
            Err(e) => {
                tracing::warn!(url = %automation.url, error = %e, "automation failed");
                None
            }
        }
    }

    /// Asks the model to phrase an answer from an article; `None` when there is no model,
    /// it is paused after failures, or it fails now (the caller sends the article).
    pub async fn phrase(
        &self,
        article_title: &str,
        article_body: &str,
        message: &str,
        language: &str,
        now: UnixMillis,
    ) -> Option<String> {
        let (config, breaker) = self.llm.as_ref()?;
        if !breaker.lock().expect("breaker lock").allows(now) {
            return None;
        }
        let reply_in = if language == "zh" { "Chinese" } else { "English" };
        let request = serde_json::json!({
            "model": config.model,
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": format!(
                    "You are the customer-service assistant of an online shop. Answer the customer's message using only \
                     the help-centre article given, in {reply_in}, in at most four short sentences, without greetings. \
                     If the article does not answer it, say that a colleague will help.")},
                {"role": "user", "content": format!("Article: {article_title}\n\n{article_body}\n\nCustomer: {message}")},
            ],
        });
        let mut call = self.http.post(&config.url).timeout(Duration::from_millis(config.timeout_ms)).json(&request);
        if let Some(key) = &config.api_key {
            call = call.bearer_auth(key);
        }
        let answer = async {
            let response = call.send().await.ok()?.error_for_status().ok()?;
            let body: serde_json::Value = response.json().await.ok()?;
            let text = body["choices"][0]["message"]["content"].as_str()?.trim().to_string();
            (!text.is_empty()).then_some(text)
        }
        .await;
        breaker.lock().expect("breaker lock").record(answer.is_some(), now);
        if answer.is_none() {
            tracing::warn!(url = %config.url, "language model failed; sending the article as it is");
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_same_secret_time_and_body() {
        let signature = sign("s3cret", 1_800_000_000, b"{\"a\":1}");
        assert!(signature.starts_with("sha256=") && signature.len() == 7 + 64);
        assert!(verify("s3cret", 1_800_000_000, b"{\"a\":1}", &signature));
        assert!(!verify("other", 1_800_000_000, b"{\"a\":1}", &signature));
        assert!(!verify("s3cret", 1_800_000_001, b"{\"a\":1}", &signature));
        assert!(!verify("s3cret", 1_800_000_000, b"{\"a\":2}", &signature));
        assert!(!verify("s3cret", 1_800_000_000, b"{\"a\":1}", "sha256=zz"));
        assert!(!verify("s3cret", 1_800_000_000, b"{\"a\":1}", "md5=00"));
        let shouted = format!("sha256={}", signature["sha256=".len()..].to_uppercase());
        assert!(!verify("s3cret", 1_800_000_000, b"{\"a\":1}", &shouted), "only lower-case hex, as signed");
    }

    #[test]
    fn the_breaker_opens_after_failures_and_tries_again_later() {
        let mut breaker = Breaker::new(3, 1000);
        for now in [0, 1] {
            breaker.record(false, now);
            assert!(breaker.allows(now));
        }
        breaker.record(false, 2);
        assert!(!breaker.allows(500));
        assert!(breaker.allows(1002), "half open: one call may try");
        breaker.record(false, 1002);
        assert!(!breaker.allows(1500), "still failing: open again");
        breaker.record(true, 2100);
        assert!(breaker.allows(2101));
    }
}
