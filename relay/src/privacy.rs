//! Personal data in free text: finding and masking mobile numbers, ID-card numbers, bank
//! cards and e-mail addresses. Pure. Used for logs (always), for erasing a contact (what
//! agents wrote about them), and wherever text must not carry what it quotes.
//!
//! Masks keep enough to recognise, not to use: a mobile number keeps its first three and
//! last four digits (`138****5678`), an ID card its first six and last four, a bank card
//! its last four, an e-mail its first character and domain (`z***@example.com`).

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::{Captures, Regex};

/// E-mail addresses, and runs of digits with spaces or dashes (read whole, so a card
/// number is never taken for a phone number inside it). Spaces are written `\x20`:
/// verbose mode ignores plain spaces, in classes too.
fn patterns() -> &'static Regex {
    static PATTERNS: OnceLock<Regex> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        Regex::new(
            r"(?x)
            (?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)
            | (?P<digits>(?:\+?86[\x20-]?)?[0-9][0-9\x20-]{9,22}[0-9Xx])
            ",
        )
        .expect("the patterns compile")
    })
}

/// `text` with every mobile number, ID-card number, bank card and e-mail masked;
/// borrowed when there is nothing to mask.
pub fn mask(text: &str) -> Cow<'_, str> {
    patterns().replace_all(text, |caps: &Captures<'_>| {
        if let Some(email) = caps.name("email") {
            return mask_email(email.as_str());
        }
        let Some(run) = caps.name("digits") else { return String::new() };
        if inside_a_token(text, run.start(), run.end()) {
            return run.as_str().to_string();
        }
        mask_digits(run.as_str()).unwrap_or_else(|| run.as_str().to_string())
    })
}

/// Whether the run at `start..end` of `text` touches a Latin letter or digit: then it is
/// part of a longer token (a hash, a hex id, an API key: a certificate's fingerprint in a
/// log line once had sixteen digits in a row that passed the Luhn check), not a number
/// someone wrote. Chinese text puts no space around numbers, so only ASCII letters and
/// digits count as glue.
fn inside_a_token(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    before.into_iter().chain(after).any(|c| c.is_ascii_alphanumeric())
}

/// A message as a reader whose role sees personal data masked receives it: the body
/// masked and `masked` set when anything was (unchanged otherwise).
pub fn mask_message(mut message: kefu_proto::frame::MessageFrame) -> kefu_proto::frame::MessageFrame {
    if let Cow::Owned(masked) = mask(&message.body) {
        message.body = masked;
        message.masked = true;
    }
    message
}

/// Whether `text` holds anything [`mask`] would mask.
pub fn has_pii(text: &str) -> bool {
    matches!(mask(text), Cow::Owned(ref masked) if masked != text)
}

fn mask_email(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let first: String = local.chars().take(1).collect();
    format!("{first}***@{domain}")
}

/// A run of digits (with spaces or dashes) masked if it is a mobile number, an ID-card
/// number or a bank card; `None` when it is none of them (an order number, a price).
fn mask_digits(run: &str) -> Option<String> {
    let compact: String = run.chars().filter(|c| c.is_ascii_digit() || *c == 'X' || *c == 'x').collect();
    let national =
        compact.strip_prefix("86").filter(|_| run.trim_start().starts_with(['+', '8']) && compact.len() == 13);
    let number = national.unwrap_or(&compact);
    let all_digits = number.bytes().all(|b| b.is_ascii_digit());
    if number.len() == 11 && all_digits && number.starts_with('1') && (b'3'..=b'9').contains(&number.as_bytes()[1]) {
        return Some(format!("{}****{}", &number[..3], &number[7..]));
    }
    if number.len() == 18 && is_id_card(number) {
        return Some(format!("{}********{}", &number[..6], &number[14..]));
    }
    if (13..=19).contains(&number.len()) && all_digits && luhn(number) {
        return Some(format!("**** **** **** {}", &number[number.len() - 4..]));
    }
    None
}

/// A mainland resident ID number: 17 digits and a check character (ISO 7064 MOD 11-2).
fn is_id_card(number: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let bytes = number.as_bytes();
    if !bytes[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = bytes[..17].iter().zip(WEIGHTS).map(|(b, w)| (b - b'0') as u32 * w).sum();
    bytes[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

/// The Luhn check every bank card number passes.
fn luhn(number: &str) -> bool {
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = (b - b'0') as u32;
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A log writer that masks personal data in every line before it reaches `inner`: logs
/// are masked always, whatever a log call carries (an e-mail at a refused login, a
/// message quoted in an error).
pub struct MaskedLog<W>(pub W);

impl<W: std::io::Write> std::io::Write for MaskedLog<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing-subscriber writes each event whole, in one call.
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(mask(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_numbers_and_addresses_are_masked_and_the_rest_kept() {
        let cases = [
            ("我的手机号是13812345678，谢谢", "我的手机号是138****5678，谢谢"),
            ("call +86 138 1234 5678 please", "call 138****5678 please"),
            ("身份证 11010519491231002X 已上传", "身份证 110105********002X 已上传"),
            ("卡号 6222 0212 3456 7894 退款", "卡号 **** **** **** 7894 退款"),
            ("mail zhang.san@example.com.cn now", "mail z***@example.com.cn now"),
            // Not personal: an order number, a price, a date, a short code, a failing card.
            ("订单号 20251120-8841", "订单号 20251120-8841"),
            ("total 1299.00 yuan on 2026-11-21", "total 1299.00 yuan on 2026-11-21"),
            ("code 123456", "code 123456"),
            ("card 6222 0212 3456 7890", "card 6222 0212 3456 7890"),
            ("phone 12812345678 is not mobile", "phone 12812345678 is not mobile"),
            // Digits inside a longer token: a fingerprint, a hex id, a key.
            ("sha256=0d4111111111111111ab77", "sha256=0d4111111111111111ab77"),
            ("id a13812345678 and 13812345678b", "id a13812345678 and 13812345678b"),
            ("key=4111111111111111Z", "key=4111111111111111Z"),
            // Chinese around a number is not a token.
            ("手机13812345678请回电", "手机138****5678请回电"),
            ("(13812345678)", "(138****5678)"),
        ];
        for (text, masked) in cases {
            assert_eq!(mask(text), masked, "{text}");
        }
        assert!(matches!(mask("nothing to see"), Cow::Borrowed(_)));
        assert!(has_pii("ring 13812345678") && !has_pii("order 20251120-8841"));
    }

    #[test]
    fn log_lines_are_masked_on_their_way_out() {
        use std::io::Write;
        let mut out = MaskedLog(Vec::new());
        out.write_all(b"INFO login refused email=zhang.san@example.com phone=13812345678\n").unwrap();
        assert_eq!(String::from_utf8(out.0).unwrap(), "INFO login refused email=z***@example.com phone=138****5678\n");
    }

    #[test]
    fn checks_of_id_cards_and_cards() {
        assert!(is_id_card("11010519491231002X"));
        assert!(!is_id_card("110105194912310021"));
        assert!(luhn("6222021234567894") && !luhn("6222021234567890"));
    }
}
