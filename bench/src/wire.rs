//! Frames on the hot path: written into a reused buffer from a fixed template, and read
//! back by scanning for the few fields the load tool needs, without building a JSON tree.
//!
//! The relay writes frames with serde, so field order is stable: `"type"` first, then the
//! fields in declaration order. The scanners below only rely on a field's `"name":`
//! appearing once in the frames they are used on; anything they do not recognise is
//! handed to serde by the caller.
//!
//! Every measured message carries its own probe: the intended send time (nanoseconds
//! since the run's origin), the conversation's index in the run and the message's number
//! in it, in the body (`t=… c=… k=…`, read by the receiver) and in the `client_msg_id`
//! (`b<c>-<k>-<t>`, echoed in the ack).

use std::fmt::Write as _;

/// What a measured message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Intended send time, nanoseconds since the run's origin.
    pub t_ns: u64,
    /// The conversation's index in the run.
    pub conv: usize,
    /// The message's number in its conversation (0 is the warm-up message).
    pub k: u64,
}

/// Writes a `send` frame carrying `probe` into `buf`, padding the body to `body_bytes`.
pub fn write_send(buf: &mut String, probe: Probe, body_bytes: usize) {
    let mut num = itoa::Buffer::new();
    buf.clear();
    buf.push_str(r#"{"type":"send","client_msg_id":"b"#);
    buf.push_str(num.format(probe.conv));
    buf.push('-');
    buf.push_str(num.format(probe.k));
    buf.push('-');
    buf.push_str(num.format(probe.t_ns));
    buf.push_str(r#"","body":""#);
    let body_start = buf.len();
    buf.push_str("t=");
    buf.push_str(num.format(probe.t_ns));
    buf.push_str(" c=");
    buf.push_str(num.format(probe.conv));
    buf.push_str(" k=");
    buf.push_str(num.format(probe.k));
    buf.push(' ');
    let written = buf.len() - body_start;
    for _ in written..body_bytes {
        buf.push('x');
    }
    buf.push_str(r#""}"#);
}

/// A `typing` frame (customers name no conversation).
pub fn typing_frame(active: bool) -> &'static str {
    if active { r#"{"type":"typing","active":true}"# } else { r#"{"type":"typing","active":false}"# }
}

/// An agent's `close` frame for `conversation`.
pub fn close_frame(conversation: i64) -> String {
    let mut s = String::with_capacity(48);
    let _ = write!(s, r#"{{"type":"close","conversation_id":{conversation}}}"#);
    s
}

/// The frame's `"type"`, when the frame starts the way serde writes it.
pub fn frame_type(text: &str) -> &str {
    const PREFIX: &str = r#"{"type":""#;
    let Some(rest) = text.strip_prefix(PREFIX) else { return "" };
    match rest.find('"') {
        Some(end) => &rest[..end],
        None => "",
    }
}

/// The unsigned integer at the start of `s`, and the rest.
fn leading_u64(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    Some((s[..digits].parse().ok()?, &s[digits..]))
}

/// The integer value of the first `"name":` field in `text`.
pub fn int_field(text: &str, name: &str) -> Option<i64> {
    let at = find_field(text, name)?;
    let rest = &text[at..];
    let (negative, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (v, _) = leading_u64(rest)?;
    let v = i64::try_from(v).ok()?;
    Some(if negative { -v } else { v })
}

/// Where the value of the first `"name":` field starts.
fn find_field(text: &str, name: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(name) {
        let start = from + i;
        let end = start + name.len();
        if start > 0 && bytes[start - 1] == b'"' && text[end..].starts_with("\":") {
            return Some(end + 2);
        }
        from = end;
    }
    None
}

/// The probe in a message body (`"body":"t=… c=… k=…`).
pub fn body_probe(text: &str) -> Option<Probe> {
    let at = find_field(text, "body")?;
    let rest = text[at..].strip_prefix("\"t=")?;
    let (t_ns, rest) = leading_u64(rest)?;
    let rest = rest.strip_prefix(" c=")?;
    let (conv, rest) = leading_u64(rest)?;
    let rest = rest.strip_prefix(" k=")?;
    let (k, _) = leading_u64(rest)?;
    Some(Probe { t_ns, conv: usize::try_from(conv).ok()?, k })
}

/// The probe in a `client_msg_id` (`"client_msg_id":"b<c>-<k>-<t>"`).
pub fn id_probe(text: &str) -> Option<Probe> {
    let at = find_field(text, "client_msg_id")?;
    let rest = text[at..].strip_prefix("\"b")?;
    let (conv, rest) = leading_u64(rest)?;
    let (k, rest) = leading_u64(rest.strip_prefix('-')?)?;
    let (t_ns, _) = leading_u64(rest.strip_prefix('-')?)?;
    Some(Probe { t_ns, conv: usize::try_from(conv).ok()?, k })
}

/// Whether an ack says `duplicate: true`.
pub fn is_duplicate_ack(text: &str) -> bool {
    text.contains(r#""duplicate":true"#)
}

/// The `change` of a `conversation` frame and the conversation's id.
pub fn conversation_change(text: &str) -> Option<(&str, i64)> {
    let at = find_field(text, "change")?;
    let rest = text[at..].strip_prefix('"')?;
    let change = &rest[..rest.find('"')?];
    let id = int_field(text, "id")?;
    Some((change, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_proto::ClientFrame;
    use kefu_proto::frame::ServerFrame;

    #[test]
    fn a_send_frame_is_valid_and_carries_its_probe_both_ways() {
        let probe = Probe { t_ns: 123_456_789, conv: 42, k: 7 };
        let mut buf = String::new();
        write_send(&mut buf, probe, 64);
        let ClientFrame::Send(send) = kefu_proto::limits::decode_client_frame(&buf).unwrap() else { panic!() };
        assert_eq!(send.body.len(), 64);
        assert_eq!(send.client_msg_id, "b42-7-123456789");

        // As the relay sends it back: the message to the agent, the ack to the customer
        // (through the protocol types, so the field order is serde's).
        let relay_writes = |value: serde_json::Value| {
            let frame: ServerFrame = serde_json::from_value(value).unwrap();
            serde_json::to_string(&frame).unwrap()
        };
        let text = relay_writes(serde_json::json!({
            "type": "message", "conversation_id": 9, "seq": 3,
            "author": { "kind": "customer", "id": 5 },
            "body": send.body, "format": "text", "client_msg_id": send.client_msg_id, "at": 1,
        }));
        assert_eq!(frame_type(&text), "message");
        assert_eq!(body_probe(&text), Some(probe));
        let text = relay_writes(serde_json::json!({
            "type": "ack", "client_msg_id": send.client_msg_id, "conversation_id": 9, "seq": 3, "at": 1,
        }));
        assert_eq!(frame_type(&text), "ack");
        assert_eq!(id_probe(&text), Some(probe));
        assert_eq!(int_field(&text, "conversation_id"), Some(9));
        assert!(!is_duplicate_ack(&text));
        // The forwarder passes the send frame through unchanged.
        assert_eq!(body_probe(&buf), Some(probe));
    }

    #[test]
    fn fixed_frames_are_valid() {
        for text in [typing_frame(true), typing_frame(false), &close_frame(12)] {
            kefu_proto::limits::decode_client_frame(text).unwrap();
        }
    }

    #[test]
    fn scanners_refuse_what_they_do_not_know() {
        assert_eq!(frame_type("[1]"), "");
        assert_eq!(body_probe(r#"{"type":"message","body":"hello"}"#), None);
        assert_eq!(id_probe(r#"{"type":"ack","client_msg_id":"c-1"}"#), None);
        assert_eq!(int_field(r#"{"xid":3,"id":-4}"#, "id"), Some(-4));
        let text = r#"{"type":"conversation","change":"assigned","conversation":{"id":17,"state":"assigned"}}"#;
        assert_eq!(conversation_change(text), Some(("assigned", 17)));
    }
}
