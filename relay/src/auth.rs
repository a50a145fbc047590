//! Credentials: password hashing (Argon2id), bearer and customer tokens (random, stored
//! only as SHA-256), widget keys, and the login rate limiter.

use std::net::IpAddr;
use std::num::NonZeroU32;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Shortest password accepted for an agent.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Hashes a password with Argon2id and a random salt, as a PHC string. Slow on purpose:
/// call it from a blocking thread.
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// True when `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// Refuses passwords too short to resist guessing.
pub fn check_password_policy(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::refused(
            kefu_proto::ErrorCode::BadRequest,
            format!("password must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// 32 random bytes as URL-safe base64 after a prefix that says what the secret is.
fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A new agent bearer token.
pub fn new_agent_token() -> String {
    random_secret("kfa_")
}

/// A new customer resume token.
pub fn new_customer_token() -> String {
    random_secret("kfc_")
}

/// A new channel secret (the API bearer secret and HMAC key of an app or social channel).
pub fn new_channel_secret() -> String {
    random_secret("kfs_")
}

/// A new public widget key.
pub fn new_widget_key() -> String {
    random_secret("wk_")
}

/// A generated password for `agent add` without one.
pub fn new_password() -> String {
    random_secret("")[..20].to_string()
}

/// The form in which tokens are stored and looked up: their SHA-256. Tokens carry 256
/// bits of randomness, so a fast hash suffices (no salt or stretching needed).
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Limits login attempts per client address and per e-mail, so that neither one address
/// nor a distributed guesser can try passwords quickly.
pub struct LoginLimiter {
    /// Attempts per IP address.
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Attempts per (lower-cased) e-mail.
    by_email: DefaultKeyedRateLimiter<String>,
}

impl LoginLimiter {
    /// A limiter allowing the given attempts per minute.
    pub fn new(per_ip_per_minute: u32, per_email_per_minute: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("positive"));
        LoginLimiter {
            by_ip: RateLimiter::keyed(quota(per_ip_per_minute)),
            by_email: RateLimiter::keyed(quota(per_email_per_minute)),
        }
    }

    /// Counts one attempt; refuses it with `rate_limited` when over either limit.
    pub fn check(&self, ip: IpAddr, email: &str) -> Result<()> {
        let ip_ok = self.by_ip.check_key(&ip).is_ok();
        let email_ok = self.by_email.check_key(&email.to_lowercase()).is_ok();
        if ip_ok && email_ok {
            Ok(())
        } else {
            Err(Error::refused(
                kefu_proto::ErrorCode::RateLimited,
                "too many login attempts; wait a minute and try again",
            ))
        }
    }

    /// Drops idle keys so the limiter's memory stays bounded.
    pub fn shrink(&self) {
        self.by_ip.retain_recent();
        self.by_email.retain_recent();
        self.by_ip.shrink_to_fit();
        self.by_email.shrink_to_fit();
    }
}

/// Failed sign-ins per e-mail: after `after` failures in a row the e-mail is locked for
/// `first_ms`, and each failure after that (once the lock ends) locks it twice as long,
/// up to `max_ms`. A success clears it. Kept in memory: a restart forgives.
pub struct Lockout {
    after: u32,
    first_ms: i64,
    max_ms: i64,
    failures: std::sync::Mutex<std::collections::HashMap<String, Failures>>,
}

/// One e-mail's failures.
#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    /// In a row.
    count: u32,
    /// Locked until then.
    locked_until: i64,
    /// The last one.
    last_at: i64,
}

impl Lockout {
    /// Locks after `after` failures, first for `first_ms`, at most `max_ms`.
    pub fn new(after: u32, first_ms: i64, max_ms: i64) -> Lockout {
        Lockout { after: after.max(1), first_ms, max_ms, failures: Default::default() }
    }

    /// `Err(seconds)` while the e-mail is locked.
    pub fn check(&self, email: &str, now: i64) -> std::result::Result<(), u64> {
        let failures = self.failures.lock().expect("lockout lock");
        match failures.get(email) {
            Some(f) if f.locked_until > now => Err(((f.locked_until - now) as u64).div_ceil(1000)),
            _ => Ok(()),
        }
    }

    /// Counts a failure; returns the lock it starts, in seconds, if it starts one.
    pub fn failed(&self, email: &str, now: i64) -> Option<u64> {
        let mut failures = self.failures.lock().expect("lockout lock");
        let f = failures.entry(email.to_string()).or_default();
        f.count += 1;
        f.last_at = now;
        let over = f.count.checked_sub(self.after)?;
        let lock_ms = self.first_ms.saturating_mul(1i64 << over.min(30)).min(self.max_ms);
        f.locked_until = now + lock_ms;
        Some((lock_ms as u64).div_ceil(1000))
    }

    /// A success: the e-mail starts afresh.
    pub fn succeeded(&self, email: &str) {
        self.failures.lock().expect("lockout lock").remove(email);
    }

    /// Forgets e-mails with no failure for the longest lock, so memory stays bounded.
    pub fn shrink(&self, now: i64) {
        let max_ms = self.max_ms;
        self.failures.lock().expect("lockout lock").retain(|_, f| now - f.last_at < max_ms || f.locked_until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery!", &hash));
        assert!(!verify_password("anything", "not a phc string"));
    }

    #[test]
    fn tokens_are_distinct_and_prefixed() {
        let a = new_agent_token();
        let b = new_agent_token();
        assert_ne!(a, b);
        assert!(a.starts_with("kfa_") && a.len() > 40);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(new_widget_key().starts_with("wk_"));
    }

    #[test]
    fn login_limiter_refuses_after_the_quota() {
        let limiter = LoginLimiter::new(100, 3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            limiter.check(ip, "a@example.com").unwrap();
        }
        assert!(limiter.check(ip, "A@example.com").is_err());
        limiter.check(ip, "b@example.com").unwrap();
    }

    #[test]
    fn failures_lock_an_email_out_with_a_doubling_back_off_and_a_success_clears_it() {
        let lockout = Lockout::new(3, 60_000, 300_000);
        let email = "chen@shop.example";
        assert_eq!(lockout.failed(email, 0), None);
        assert_eq!(lockout.failed(email, 1_000), None);
        assert_eq!(lockout.check(email, 1_500), Ok(()));
        assert_eq!(lockout.failed(email, 2_000), Some(60), "the third failure locks for a minute");
        assert_eq!(lockout.check(email, 2_001), Err(60));
        assert_eq!(lockout.check(email, 61_999), Err(1));
        assert_eq!(lockout.check(email, 62_000), Ok(()));
        assert_eq!(lockout.failed(email, 62_000), Some(120), "then twice as long");
        assert_eq!(lockout.failed(email, 200_000), Some(240));
        assert_eq!(lockout.failed(email, 500_000), Some(300), "up to the most");
        assert_eq!(lockout.check("wang@shop.example", 500_001), Ok(()), "other e-mails are not affected");
        lockout.succeeded(email);
        assert_eq!(lockout.check(email, 500_001), Ok(()));
        assert_eq!(lockout.failed(email, 500_002), None, "counting starts again");
        lockout.shrink(500_002 + 300_000);
        assert!(lockout.failures.lock().unwrap().is_empty());
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy("long enough pw").is_ok());
    }
}
