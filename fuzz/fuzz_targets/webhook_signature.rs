//! Inbound webhook signatures (`x-kefu-timestamp`, `x-kefu-signature` on `POST /hooks/{id}`):
//! any header values and body. Nothing may panic; what is accepted is exactly the
//! documented signature (`sha256=` and lower-case hex HMAC-SHA256 of
//! `"<timestamp>.<raw body>"` under the channel's secret, the timestamp as sent) with a
//! fresh timestamp, since the relay remembers accepted signatures by their text to refuse
//! replays; a correctly signed body is accepted, and the same signature over a body with
//! one byte changed, or under another secret, is refused.
#![no_main]

use hmac::Mac;
use kefu_relay::channels::{SignatureRefusal, check_signature};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// What a platform sends, as `tests/src/lib.rs` computes it.
fn webhook_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Header values: absent, anything, or a near miss of the right one.
struct Case {
    secret: String,
    now: i64,
    tolerance: u64,
    timestamp: Option<String>,
    signature: Option<String>,
    body: Vec<u8>,
    /// Which byte of the body the tampered copy changes.
    flip: usize,
}

fn case(u: &mut Unstructured) -> Result<Case> {
    let secret: String = u.arbitrary()?;
    // Clocks near today, or anywhere.
    let now = if u.arbitrary()? { 1_800_000_000 + i64::from(u.arbitrary::<i32>()?) } else { u.arbitrary()? };
    let tolerance = if u.arbitrary()? { 300 } else { u.arbitrary()? };
    let timestamp = match u.choose_index(4)? {
        0 => None,
        1 => Some(u.arbitrary::<String>()?),
        2 => Some(now.saturating_add(i64::from(u.arbitrary::<i16>()?)).to_string()),
        // Written another way: padded, signed, with leading zeros.
        _ => {
            let ts = now.saturating_add(i64::from(u.arbitrary::<i16>()?));
            let decorations = ["+{}", "0{}", " {} ", "{}\t", "00{}"];
            Some(decorations[u.choose_index(decorations.len())?].replace("{}", &ts.to_string()))
        }
    };
    let body_len = u.arbitrary_len::<u8>()?;
    let body = u.bytes(body_len)?.to_vec();
    let signature = match u.choose_index(3)? {
        0 => None,
        1 => Some(u.arbitrary::<String>()?),
        _ => {
            // The right signature over the timestamp as sent (or as the relay reads it),
            // then changed a little.
            let over = match (&timestamp, u.arbitrary()?) {
                (Some(ts), true) => ts.clone(),
                (Some(ts), false) => ts.trim().trim_start_matches('+').trim_start_matches('0').to_string(),
                (None, _) => now.to_string(),
            };
            let mut signature = webhook_signature(&secret, &over, &body).into_bytes();
            for _ in 0..u.choose_index(3)? {
                let i = u.choose_index(signature.len())?;
                match u.choose_index(4)? {
                    0 => signature[i] = signature[i].to_ascii_uppercase(),
                    1 => signature[i] = u.arbitrary()?,
                    2 => signature.insert(i, b' '),
                    _ => signature.truncate(i),
                }
            }
            Some(String::from_utf8_lossy(&signature).into_owned())
        }
    };
    let flip = u.arbitrary()?;
    Ok(Case { secret, now, tolerance, timestamp, signature, body, flip })
}

fuzz_target!(|data: &[u8]| {
    let Ok(c) = case(&mut Unstructured::new(data)) else { return };
    let verdict =
        check_signature(&c.secret, c.timestamp.as_deref(), c.signature.as_deref(), &c.body, c.now, c.tolerance);
    if verdict.is_ok() {
        let timestamp = c.timestamp.as_deref().expect("accepted without a timestamp").trim();
        let signature = c.signature.as_deref().expect("accepted without a signature").trim();
        let sent: i64 = timestamp.parse().expect("accepted a timestamp that is not a number");
        assert!(sent.abs_diff(c.now) <= c.tolerance, "accepted a stale timestamp {timestamp}");
        assert_eq!(
            signature,
            webhook_signature(&c.secret, timestamp, &c.body),
            "accepted a signature other than the documented one (timestamp {timestamp:?})"
        );
    }

    // Signed right, now: accepted; a byte changed or another secret: refused.
    let now = c.now.to_string();
    let right = webhook_signature(&c.secret, &now, &c.body);
    let check = |secret: &str, body: &[u8]| check_signature(secret, Some(&now), Some(&right), body, c.now, c.tolerance);
    assert_eq!(check(&c.secret, &c.body), Ok(()), "a correctly signed body was refused");
    let mut changed = c.body.clone();
    if changed.is_empty() {
        changed.push(b'x');
    } else {
        let i = c.flip % changed.len();
        changed[i] = changed[i].wrapping_add(1);
    }
    assert_eq!(check(&c.secret, &changed), Err(SignatureRefusal::Mismatch));
    assert_eq!(check(&format!("{}x", c.secret), &c.body), Err(SignatureRefusal::Mismatch));
});
