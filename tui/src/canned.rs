//! Canned replies in the composer: finding one by fuzzy search (nucleo) or by the
//! `/shortcut` typed at the start of the draft, and expanding its variables.
//!
//! Pure functions over the list the relay gave (`GET /api/v1/canned`).

use kefu_proto::api::CannedReply;

use crate::palette;

/// The fallback for `{customer.name}` when the customer gave no name, in the template's
/// language: "客户，您好" and "Hi there," read naturally.
const UNNAMED_CUSTOMER_ZH: &str = "客户";
/// The English fallback.
const UNNAMED_CUSTOMER_EN: &str = "there";

/// The word after `/` when the whole draft is a shortcut (`/refund`), else `None`.
pub fn shortcut_in(draft: &str) -> Option<&str> {
    let word = draft.trim_end().strip_prefix('/')?;
    let valid = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid.then_some(word)
}

/// The reply whose shortcut is exactly `word` (case does not matter).
pub fn exact<'a>(replies: &'a [CannedReply], word: &str) -> Option<&'a CannedReply> {
    replies.iter().find(|r| r.shortcut.eq_ignore_ascii_case(word))
}

/// Indices of the replies matching `query`, best first: shortcuts that start with it
/// first, then fuzzy matches on shortcut, title and body. All of them when empty.
pub fn matches(replies: &[CannedReply], query: &str) -> Vec<usize> {
    let query = query.trim().trim_start_matches('/');
    if query.is_empty() {
        return (0..replies.len()).collect();
    }
    let lower = query.to_lowercase();
    let mut prefixed: Vec<usize> = (0..replies.len()).filter(|&i| replies[i].shortcut.starts_with(&lower)).collect();
    let fuzzy = palette::rank(query, replies.iter().map(|r| format!("{} {} {}", r.shortcut, r.title, r.body)));
    prefixed.extend(fuzzy.into_iter().filter(|i| !replies[*i].shortcut.starts_with(&lower)));
    prefixed
}

/// The template with `{customer.name}` and `{agent.name}` filled in. A missing customer
/// name reads as "客户" in a Chinese template and "there" otherwise; unknown variables
/// stay as written.
pub fn expand(template: &str, customer_name: Option<&str>, agent_name: Option<&str>) -> String {
    let chinese = template.chars().any(is_cjk);
    let customer = customer_name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(if chinese {
        UNNAMED_CUSTOMER_ZH
    } else {
        UNNAMED_CUSTOMER_EN
    });
    let agent =
        agent_name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(if chinese { "客服" } else { "your agent" });
    template.replace("{customer.name}", customer).replace("{agent.name}", agent)
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{3000}'..='\u{303f}' | '\u{ff00}'..='\u{ffef}')
}

/// Splits the answer to "shortcut and title" (`refund 退款说明`) and checks the
/// shortcut as the relay will (1 to 32 of a-z, 0-9, `-`, `_`). The title defaults to the
/// shortcut.
pub fn parse_new(input: &str) -> Result<(String, String), String> {
    let input = input.trim();
    let (shortcut, title) = match input.split_once(char::is_whitespace) {
        Some((s, t)) => (s.trim_start_matches('/'), t.trim()),
        None => (input.trim_start_matches('/'), ""),
    };
    let shortcut = shortcut.to_lowercase();
    if shortcut.is_empty() || shortcut.len() > 32 {
        return Err("a shortcut has 1 to 32 characters, e.g. `refund 退款说明`".into());
    }
    if !shortcut.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        return Err(format!("/{shortcut}: a shortcut uses only a-z, 0-9, - and _"));
    }
    let title = if title.is_empty() { shortcut.clone() } else { title.to_string() };
    Ok((shortcut, title))
}

#[cfg(test)]
mod tests {
    use kefu_proto::api::CannedScope;

    use super::*;

    fn reply(id: i64, shortcut: &str, title: &str, body: &str) -> CannedReply {
        CannedReply {
            id,
            shortcut: shortcut.into(),
            title: title.into(),
            body: body.into(),
            scope: CannedScope::Workspace,
        }
    }

    fn replies() -> Vec<CannedReply> {
        vec![
            reply(1, "hi", "问候 Greeting", "{customer.name}，您好！我是{agent.name}，很高兴为您服务。"),
            reply(2, "return", "退货 Returns", "Hi {customer.name}, returns are free within 30 days."),
            reply(3, "invoice", "发票 Invoice", "发票会在订单完成后 3 个工作日内开具。"),
        ]
    }

    #[test]
    fn the_draft_is_a_shortcut_only_when_it_is_one_word_after_a_slash() {
        assert_eq!(shortcut_in("/hi"), Some("hi"));
        assert_eq!(shortcut_in("/re-turn "), Some("re-turn"));
        assert_eq!(shortcut_in("/hi there"), None);
        assert_eq!(shortcut_in("hi"), None);
        assert_eq!(shortcut_in("/"), None);
        assert_eq!(shortcut_in("/路径"), None);
    }

    #[test]
    fn variables_expand_with_fallbacks_by_language() {
        let t = "{customer.name}，您好！我是{agent.name}。";
        assert_eq!(expand(t, Some("李女士"), Some("小王")), "李女士，您好！我是小王。");
        assert_eq!(expand(t, None, Some("小王")), "客户，您好！我是小王。");
        assert_eq!(expand("Hi {customer.name}, {order.id}", Some(" "), None), "Hi there, {order.id}");
    }

    #[test]
    fn matching_puts_shortcut_prefixes_first_and_finds_chinese() {
        let replies = replies();
        assert_eq!(matches(&replies, "re")[0], 1);
        assert_eq!(matches(&replies, "/inv"), vec![2]);
        assert_eq!(matches(&replies, "发票")[0], 2);
        assert_eq!(matches(&replies, "").len(), 3);
        assert_eq!(exact(&replies, "HI").map(|r| r.id), Some(1));
    }

    #[test]
    fn new_replies_need_a_valid_shortcut() {
        assert_eq!(parse_new("refund 退款说明"), Ok(("refund".into(), "退款说明".into())));
        assert_eq!(parse_new("/Thanks"), Ok(("thanks".into(), "thanks".into())));
        assert!(parse_new("退款").is_err());
        assert!(parse_new("").is_err());
    }
}
