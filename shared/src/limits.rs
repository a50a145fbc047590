//! The documented limits, and the validation every inbound frame passes before the relay
//! acts on it. `docs/protocol.md` lists the same numbers.

use crate::PROTOCOL_VERSION;
use crate::error::ProtocolError;
use crate::frame::{ClientFrame, HelloAuth};

/// Largest WebSocket message the relay accepts, in bytes. A larger one closes the
/// connection with code 1009, because the relay will not buffer it to read its fields.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Largest message body, in bytes of UTF-8 (about 10,000 Chinese characters). A larger
/// body is refused with `too_large`; the connection stays open.
pub const MAX_BODY_BYTES: usize = 32 * 1024;

/// Longest `client_msg_id`, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 64;

/// Longest credential (widget key, customer token, agent token), in bytes.
pub const MAX_CREDENTIAL_BYTES: usize = 256;

/// Longest display name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Longest resolution code, in bytes.
pub const MAX_RESOLUTION_BYTES: usize = 64;

/// Longest rating comment, in bytes.
pub const MAX_COMMENT_BYTES: usize = 2000;

/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 10;

/// Largest attachment upload, in bytes.
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

/// Longest transfer note, in bytes.
pub const MAX_NOTE_BYTES: usize = 2000;

/// Longest group slug, in bytes.
pub const MAX_SLUG_BYTES: usize = 32;

/// Most resume points in one `hello`.
pub const MAX_RESUME_POINTS: usize = 1000;

/// Longest id of a customer on another system (the shop's customer id, a platform's
/// user id, an event id).
pub const MAX_EXTERNAL_ID_BYTES: usize = 128;

/// Decodes and validates one text frame from a client.
///
/// Size is checked before parsing so that an oversized frame costs nothing to refuse.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, ProtocolError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::too_large(format!("frame is {} bytes; the limit is {MAX_FRAME_BYTES}", text.len())));
    }
    let frame: ClientFrame = serde_json::from_str(text).map_err(|e| describe_json_error(text, e))?;
    validate(&frame)?;
    Ok(frame)
}

/// The `"type"` values of [`ClientFrame`], to tell an unknown type from a bad field.
pub const CLIENT_FRAME_TYPES: [&str; 15] = [
    "hello",
    "send",
    "typing",
    "read",
    "presence",
    "resolve",
    "close",
    "transfer",
    "pick",
    "leave_message",
    "rate",
    "supervise",
    "observe",
    "take_over",
    "ping",
];

/// Turns a serde error into a message that says what was wrong with the frame. Only the
/// error path looks at the frame a second time.
fn describe_json_error(text: &str, e: serde_json::Error) -> ProtocolError {
    use serde_json::error::Category;
    if matches!(e.classify(), Category::Syntax | Category::Eof | Category::Io) {
        return ProtocolError::bad_request(format!("invalid JSON: {e}"));
    }
    #[derive(serde::Deserialize)]
    struct FrameType {
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    match serde_json::from_str::<FrameType>(text).ok().and_then(|f| f.kind) {
        None => ProtocolError::bad_request("frame has no \"type\" field (or is not an object)"),
        Some(serde_json::Value::String(kind)) if !CLIENT_FRAME_TYPES.contains(&kind.as_str()) => {
            ProtocolError::bad_request(format!("unknown frame type \"{kind}\""))
        }
        Some(serde_json::Value::String(kind)) => ProtocolError::bad_request(format!("invalid \"{kind}\" frame: {e}")),
        Some(_) => ProtocolError::bad_request("\"type\" must be a string"),
    }
}

/// Checks the fields of a decoded frame against the limits and rules.
pub fn validate(frame: &ClientFrame) -> Result<(), ProtocolError> {
    match frame {
        ClientFrame::Hello(hello) => {
            if hello.protocol != PROTOCOL_VERSION {
                return Err(ProtocolError::bad_request(format!(
                    "protocol version {} is not supported; this relay speaks {PROTOCOL_VERSION}",
                    hello.protocol
                )));
            }
            if hello.resume.len() > MAX_RESUME_POINTS {
                return Err(ProtocolError::too_large(format!(
                    "{} resume points; the limit is {MAX_RESUME_POINTS}",
                    hello.resume.len()
                )));
            }
            match &hello.auth {
                HelloAuth::Customer { widget_key, customer_token, name, group, customer_id, customer_signature } => {
                    match (customer_id, customer_signature) {
                        (Some(id), Some(signature)) => {
                            check_external_id("customer_id", id)?;
                            check_credential("customer_signature", signature)?;
                        }
                        (None, None) => {}
                        _ => {
                            return Err(ProtocolError::bad_request("customer_id and customer_signature come together"));
                        }
                    }
                    if let Some(group) = group {
                        check_slug(group)?;
                    }
                    check_credential("widget_key", widget_key)?;
                    if let Some(token) = customer_token {
                        check_credential("customer_token", token)?;
                    }
                    if let Some(name) = name {
                        check_name(name)?;
                    }
                }
                HelloAuth::Agent { token } => check_credential("token", token)?,
            }
        }
        ClientFrame::Send(send) => {
            check_client_msg_id(&send.client_msg_id)?;
            if send.attachments.len() > MAX_ATTACHMENTS {
                return Err(ProtocolError::too_large(format!(
                    "{} attachments; the limit is {MAX_ATTACHMENTS}",
                    send.attachments.len()
                )));
            }
            if send.attachments.iter().any(|id| id.is_empty() || id.len() > MAX_CLIENT_MSG_ID_BYTES) {
                return Err(ProtocolError::bad_request("attachment ids must be 1 to 64 bytes"));
            }
            if send.attachments.is_empty() || !send.body.is_empty() {
                check_body(&send.body)?;
            }
        }
        ClientFrame::Resolve(resolve) => {
            if let Some(code) = resolve.resolution.as_ref().filter(|c| c.len() > MAX_RESOLUTION_BYTES) {
                return Err(ProtocolError::too_large(format!(
                    "resolution is {} bytes; the limit is {MAX_RESOLUTION_BYTES}",
                    code.len()
                )));
            }
        }
        ClientFrame::Transfer(transfer) => {
            if let Some(note) = transfer.note.as_ref().filter(|n| n.len() > MAX_NOTE_BYTES) {
                return Err(ProtocolError::too_large(format!(
                    "note is {} bytes; the limit is {MAX_NOTE_BYTES}",
                    note.len()
                )));
            }
            if let crate::frame::TransferTarget::Group { group: Some(group) } = &transfer.to {
                check_slug(group)?;
            }
        }
        ClientFrame::Close(close) => {
            if let Some(code) = close.resolution.as_ref().filter(|c| c.len() > MAX_RESOLUTION_BYTES) {
                return Err(ProtocolError::too_large(format!(
                    "resolution is {} bytes; the limit is {MAX_RESOLUTION_BYTES}",
                    code.len()
                )));
            }
        }
        ClientFrame::Rate(rate) => {
            if !(1..=5).contains(&rate.score) {
                return Err(ProtocolError::bad_request("score must be 1 to 5"));
            }
            if let Some(comment) = &rate.comment {
                if comment.len() > MAX_COMMENT_BYTES {
                    return Err(ProtocolError::too_large(format!(
                        "comment is {} bytes; the limit is {MAX_COMMENT_BYTES}",
                        comment.len()
                    )));
                }
                if comment.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
                    return Err(ProtocolError::bad_request("comment contains control characters"));
                }
            }
        }
        ClientFrame::LeaveMessage(leave) => {
            check_body(&leave.body)?;
            if let Some(info) = &leave.contact_info {
                check_name(info)?;
            }
        }
        ClientFrame::Pick(_)
        | ClientFrame::Supervise(_)
        | ClientFrame::Observe(_)
        | ClientFrame::TakeOver(_)
        | ClientFrame::Typing(_)
        | ClientFrame::Read(_)
        | ClientFrame::Presence(_)
        | ClientFrame::Ping(_) => {}
    }
    Ok(())
}

fn check_credential(field: &str, value: &str) -> Result<(), ProtocolError> {
    if value.is_empty() {
        return Err(ProtocolError::bad_request(format!("{field} is empty")));
    }
    if value.len() > MAX_CREDENTIAL_BYTES {
        return Err(ProtocolError::too_large(format!(
            "{field} is {} bytes; the limit is {MAX_CREDENTIAL_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// The credential of an `Authorization: Bearer <credential>` header value: the scheme
/// case-insensitive (RFC 7235), the credential trimmed, 1 to [`MAX_CREDENTIAL_BYTES`]
/// bytes of visible ASCII. `None` for anything else: every bearer header the relay reads
/// goes through here.
pub fn bearer_credential(header: &str) -> Option<&str> {
    let (scheme, credential) = header.trim_start().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let credential = credential.trim();
    let visible = credential.bytes().all(|b| b.is_ascii_graphic());
    (!credential.is_empty() && credential.len() <= MAX_CREDENTIAL_BYTES && visible).then_some(credential)
}

/// A group slug: 1 to 32 bytes of lower-case ASCII letters, digits, `-` and `_`.
pub fn check_slug(slug: &str) -> Result<(), ProtocolError> {
    if slug.is_empty() || slug.len() > MAX_SLUG_BYTES {
        return Err(ProtocolError::bad_request(format!("group must be 1 to {MAX_SLUG_BYTES} bytes")));
    }
    if !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
        return Err(ProtocolError::bad_request(format!("group '{slug}' may hold only a-z, 0-9, '-' and '_'")));
    }
    Ok(())
}

/// A display name: non-blank, bounded, no control characters.
pub fn check_name(name: &str) -> Result<(), ProtocolError> {
    if name.trim().is_empty() {
        return Err(ProtocolError::bad_request("name is blank"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(ProtocolError::too_large(format!("name is {} bytes; the limit is {MAX_NAME_BYTES}", name.len())));
    }
    if name.chars().any(char::is_control) {
        return Err(ProtocolError::bad_request("name contains control characters"));
    }
    Ok(())
}

/// An id on another system (`what` names it in the error): 1 to
/// [`MAX_EXTERNAL_ID_BYTES`] bytes, no control characters, not blank.
pub fn check_external_id(what: &str, id: &str) -> Result<(), ProtocolError> {
    if id.trim().is_empty() {
        return Err(ProtocolError::bad_request(format!("{what} is blank")));
    }
    if id.len() > MAX_EXTERNAL_ID_BYTES {
        return Err(ProtocolError::too_large(format!(
            "{what} is {} bytes; the limit is {MAX_EXTERNAL_ID_BYTES}",
            id.len()
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(ProtocolError::bad_request(format!("{what} contains control characters")));
    }
    Ok(())
}

/// A client message id: 1 to 64 bytes of printable ASCII without spaces, so that it
/// can be logged and compared without surprises.
pub fn check_client_msg_id(id: &str) -> Result<(), ProtocolError> {
    if id.is_empty() {
        return Err(ProtocolError::bad_request("client_msg_id is empty"));
    }
    if id.len() > MAX_CLIENT_MSG_ID_BYTES {
        return Err(ProtocolError::too_large(format!(
            "client_msg_id is {} bytes; the limit is {MAX_CLIENT_MSG_ID_BYTES}",
            id.len()
        )));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ProtocolError::bad_request("client_msg_id must be printable ASCII without spaces"));
    }
    Ok(())
}

/// A message body: not blank, within [`MAX_BODY_BYTES`], no NUL or other control
/// characters except tab, newline and carriage return.
pub fn check_body(body: &str) -> Result<(), ProtocolError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ProtocolError::too_large(format!("body is {} bytes; the limit is {MAX_BODY_BYTES}", body.len())));
    }
    if body.trim().is_empty() {
        return Err(ProtocolError::bad_request("body is blank"));
    }
    if body.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
        return Err(ProtocolError::bad_request("body contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_headers_yield_their_credential_or_nothing() {
        let long = format!("Bearer {}", "k".repeat(MAX_CREDENTIAL_BYTES + 1));
        let longest = format!("Bearer {}", "k".repeat(MAX_CREDENTIAL_BYTES));
        let cases: &[(&str, Option<&str>)] = &[
            ("Bearer kfa_abc", Some("kfa_abc")),
            ("bearer kfa_abc", Some("kfa_abc")),
            ("BEARER   kfa_abc  ", Some("kfa_abc")),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearer kfa abc", None),
            ("Basic a2ZhOmFiYw==", None),
            ("Bearerkfa_abc", None),
            ("Bearer kfa_\u{7f}", None),
            ("Bearer 令牌", None),
            ("", None),
            (long.as_str(), None),
        ];
        for (header, expected) in cases {
            assert_eq!(bearer_credential(header), *expected, "{header:?}");
        }
        assert_eq!(bearer_credential(&longest).map(str::len), Some(MAX_CREDENTIAL_BYTES));
    }
    use crate::ErrorCode;

    /// Decodes `input` and returns the error code, or None when it is accepted.
    fn check(input: &str) -> Option<ErrorCode> {
        decode_client_frame(input).err().map(|e| e.code)
    }

    #[test]
    fn accepts_well_formed_frames() {
        let cases = [
            r#"{"type":"hello","protocol":1,"auth":{"kind":"customer","widget_key":"wk_x"}}"#,
            r#"{"type":"hello","protocol":1,"auth":{"kind":"agent","token":"t"},"resume":[{"conversation_id":3,"after_seq":7}]}"#,
            r#"{"type":"send","client_msg_id":"c-1","body":"你好，我的快递到哪了？"}"#,
            r#"{"type":"send","client_msg_id":"c-2","conversation_id":9,"body":"**ok**","format":"markdown"}"#,
            r#"{"type":"typing","active":true}"#,
            r#"{"type":"read","conversation_id":1,"seq":4}"#,
            r#"{"type":"presence","status":"away"}"#,
            r#"{"type":"resolve","conversation_id":1,"resolution":"answered"}"#,
            r#"{"type":"close","conversation_id":1}"#,
            r#"{"type":"transfer","conversation_id":1,"to":{"kind":"agent","agent_id":2},"note":"客户要退款"}"#,
            r#"{"type":"transfer","conversation_id":1,"to":{"kind":"group","group":"aftersales"}}"#,
            r#"{"type":"pick","conversation_id":1}"#,
            r#"{"type":"send","client_msg_id":"n1","conversation_id":3,"body":"客户是老顾客","internal":true}"#,
            r#"{"type":"send","client_msg_id":"f1","body":"","attachments":["att_1"]}"#,
            r#"{"type":"close","conversation_id":1,"resolution":"refunded"}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"ping","nonce":5,"future_field":true}"#,
        ];
        for case in cases {
            assert_eq!(check(case), None, "{case}");
        }
    }

    #[test]
    fn refuses_bad_frames_with_the_documented_codes() {
        let long_body =
            format!(r#"{{"type":"send","client_msg_id":"c","body":"{}"}}"#, "好".repeat(MAX_BODY_BYTES / 3 + 1));
        let huge_frame = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
        let long_id = format!(r#"{{"type":"send","client_msg_id":"{}","body":"b"}}"#, "i".repeat(65));
        let cases: Vec<(&str, ErrorCode)> = vec![
            ("not json", ErrorCode::BadRequest),
            ("{\"type\":\"send\"", ErrorCode::BadRequest),
            (r#"{"body":"no type"}"#, ErrorCode::BadRequest),
            (r#"{"type":"teleport"}"#, ErrorCode::BadRequest),
            (r#"{"type":"send","client_msg_id":"c"}"#, ErrorCode::BadRequest),
            (r#"{"type":"send","client_msg_id":"","body":"b"}"#, ErrorCode::BadRequest),
            (r#"{"type":"send","client_msg_id":"has space","body":"b"}"#, ErrorCode::BadRequest),
            (r#"{"type":"send","client_msg_id":"c","body":"   "}"#, ErrorCode::BadRequest),
            (r#"{"type":"send","client_msg_id":"c","body":"a\u0000b"}"#, ErrorCode::BadRequest),
            (&long_body, ErrorCode::TooLarge),
            (&huge_frame, ErrorCode::TooLarge),
            (&long_id, ErrorCode::TooLarge),
            (r#"{"type":"hello","protocol":2,"auth":{"kind":"agent","token":"t"}}"#, ErrorCode::BadRequest),
            (r#"{"type":"hello","protocol":1,"auth":{"kind":"robot"}}"#, ErrorCode::BadRequest),
            (r#"{"type":"hello","protocol":1,"auth":{"kind":"agent","token":""}}"#, ErrorCode::BadRequest),
            (r#"{"type":"presence","status":"sleeping"}"#, ErrorCode::BadRequest),
            (
                r#"{"type":"transfer","conversation_id":1,"to":{"kind":"group","group":"Pre Sales"}}"#,
                ErrorCode::BadRequest,
            ),
            (r#"{"type":"transfer","conversation_id":1}"#, ErrorCode::BadRequest),
            (r#"{"type":"rate","score":6}"#, ErrorCode::BadRequest),
            (r#"{"type":"rate","score":0}"#, ErrorCode::BadRequest),
            (r#"{"type":"send","client_msg_id":"c","body":"","attachments":[""]}"#, ErrorCode::BadRequest),
            (r#"{"type":"send","client_msg_id":"c","body":""}"#, ErrorCode::BadRequest),
            (r#"{"type":"read","seq":-1}"#, ErrorCode::BadRequest),
        ];
        for (input, code) in cases {
            assert_eq!(check(input), Some(code), "{}", &input[..input.len().min(80)]);
        }
    }

    #[test]
    fn a_bad_field_is_named_for_every_frame_type() {
        let wrong = r#""protocol":"x","auth":1,"client_msg_id":1,"body":1,"active":"x","seq":"x","status":1,"conversation_id":"x","to":1,"score":"x","nonce":"x","contact_info":1"#;
        for kind in CLIENT_FRAME_TYPES {
            let err = decode_client_frame(&format!(r#"{{"type":"{kind}",{wrong}}}"#)).unwrap_err();
            assert!(err.message.starts_with(&format!("invalid \"{kind}\" frame: ")), "{kind}: {}", err.message);
        }
    }

    #[test]
    fn unknown_type_is_named_in_the_message() {
        let err = decode_client_frame(r#"{"type":"teleport"}"#).unwrap_err();
        assert!(err.message.contains("unknown frame type"), "{}", err.message);
        assert!(err.message.contains("teleport"), "{}", err.message);
    }

    #[test]
    fn a_body_at_the_limit_is_accepted() {
        let body = "x".repeat(MAX_BODY_BYTES);
        let frame = format!(r#"{{"type":"send","client_msg_id":"c","body":"{body}"}}"#);
        assert_eq!(check(&frame), None);
    }

    #[test]
    fn server_frames_round_trip() {
        use crate::frame::*;
        use crate::ids::*;
        let frames = vec![
            ServerFrame::Ack(Ack {
                client_msg_id: "c1".into(),
                conversation_id: ConversationId(1),
                seq: 3,
                at: 1,
                duplicate: false,
            }),
            ServerFrame::Message(MessageFrame {
                conversation_id: ConversationId(1),
                seq: 4,
                author: Author { kind: AuthorKind::Agent, id: Some(2), name: Some("小王".into()) },
                body: "您好".into(),
                format: BodyFormat::Text,
                client_msg_id: None,
                at: 2,
                internal: false,
                attachments: vec![AttachmentRef {
                    id: "att_1".into(),
                    name: "发票.pdf".into(),
                    size: 1024,
                    content_type: "application/pdf".into(),
                }],
                via: Some(crate::frame::MessageVia {
                    channel: ChannelKind::Social,
                    name: "抖音".into(),
                    source: Some(crate::api::SocialKind::Live),
                }),
                masked: false,
            }),
            ServerFrame::Error(ErrorFrame {
                code: crate::ErrorCode::TooLarge,
                message: "m".into(),
                client_msg_id: Some("c".into()),
                conversation_id: Some(ConversationId(7)),
            }),
        ];
        for frame in frames {
            let text = serde_json::to_string(&frame).unwrap();
            let back: ServerFrame = serde_json::from_str(&text).unwrap();
            assert_eq!(back, frame);
        }
        let text = serde_json::to_string(&ServerFrame::Pong(Ping { nonce: 1 })).unwrap();
        assert_eq!(text, r#"{"type":"pong","nonce":1}"#);
    }
}
