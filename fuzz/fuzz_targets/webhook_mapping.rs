//! Social webhooks: a channel's mapping comes from an admin (`POST /api/v1/channels`), the
//! event it reads from a platform (`POST /hooks/{id}`). The input is a mapping on its first
//! line and an event after it (or only an event, read by the mappings the docs and tests
//! use). Nothing may panic; a mapping the relay accepts must survive being stored (written
//! as JSON and read back); an event it accepts must hold only what the documented limits
//! allow; `read_path` must find every field of a document by its dotted path.
#![no_main]

use kefu_proto::api::{SocialKind, SocialMapping};
use kefu_proto::limits::{check_body, check_client_msg_id, check_external_id, check_name};
use kefu_relay::channels::{check_mapping, client_msg_id_of_event, map_event, read_path};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The mappings kefu knows: `docs/protocol.md`'s example (also the end-to-end test's), the
/// unit tests' with an array index, and the command-line test's minimal one.
const KNOWN: [&str; 3] = [
    r#"{"user_id": "sender.id", "display_name": "sender.nickname", "text": "message.content",
        "kind": "event", "event_id": "event_id",
        "kinds": {"im_message": "dm", "live_comment": "live", "item_comment": "comment"}}"#,
    r#"{"user_id": "sender.id", "display_name": "sender.name", "text": "entries.1.text", "kind": "type",
        "event_id": "id", "kinds": {"comment": "comment", "direct_message": "dm", "live_chat": "live"},
        "default_kind": "comment"}"#,
    r#"{"user_id": "sender.id", "text": "message.text"}"#,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (fuzzed, event) = match text.split_once('\n') {
        Some((head, rest)) => match serde_json::from_str::<SocialMapping>(head) {
            Ok(mapping) => (Some(mapping), rest),
            Err(_) => (None, text),
        },
        None => (None, text),
    };
    if let Some(mapping) = &fuzzed
        && check_mapping(mapping).is_ok()
    {
        // Channels keep their mapping as JSON and read it back on every load.
        let stored = serde_json::to_string(mapping).expect("a mapping serialises");
        let back: SocialMapping = serde_json::from_str(&stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
        assert_eq!(&back, mapping, "{stored}");
    }
    let Ok(doc) = serde_json::from_str::<Value>(event) else { return };
    let known = KNOWN.map(|m| serde_json::from_str::<SocialMapping>(m).expect("known mappings parse"));
    // Unchecked mappings too: map_event guards its own output whatever the paths.
    for mapping in fuzzed.iter().chain(&known) {
        check_event(mapping, &doc);
    }
    let mut paths = Vec::new();
    walk(&doc, None, &mut paths);
    for (path, value) in paths {
        let found = read_path(&doc, &path).unwrap_or_else(|| panic!("nothing at {path:?}"));
        assert!(std::ptr::eq(found, value), "{path:?} read another value");
    }
});

/// Maps the event and checks what an accepted one holds against the limits.
fn check_event(mapping: &SocialMapping, doc: &Value) {
    for path in [Some(&mapping.user_id), Some(&mapping.text), mapping.display_name.as_ref(), mapping.kind.as_ref()]
        .into_iter()
        .flatten()
        .chain(mapping.event_id.as_ref())
    {
        let _ = read_path(doc, path);
    }
    let Ok(event) = map_event(mapping, doc) else { return };
    assert!(check_external_id("user_id", &event.user_id).is_ok(), "{event:?}");
    assert_eq!(Some(&event.user_id), text_at(doc, &mapping.user_id).as_ref());
    assert!(check_body(&event.text).is_ok(), "{event:?}");
    assert_eq!(Some(&event.text), text_at(doc, &mapping.text).as_ref());
    if let Some(name) = &event.display_name {
        assert!(check_name(name).is_ok(), "{event:?}");
    }
    let kinds: Vec<SocialKind> = mapping.kinds.values().copied().collect();
    assert!(event.kind == mapping.default_kind || kinds.contains(&event.kind), "{event:?}");
    if let Some(id) = &event.event_id {
        assert!(check_external_id("event_id", id).is_ok(), "{event:?}");
        // A re-delivered event is found again by the client id it was stored under.
        let client_id = client_msg_id_of_event(id);
        assert!(check_client_msg_id(&client_id).is_ok(), "{id:?} → {client_id:?}");
        assert_eq!(client_id, client_msg_id_of_event(id));
    }
    // Social identities are `<channel id>:<user id>`; the outbox splits them at the first ':'.
    let identity = format!("7:{}", event.user_id);
    assert_eq!(identity.split_once(':').map(|(_, user)| user), Some(event.user_id.as_str()));
}

/// A field as the mapping reads it: strings as they are, numbers written out.
fn text_at(doc: &Value, path: &str) -> Option<String> {
    match read_path(doc, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Every value under `value` with the dotted path that names it, skipping keys a dotted
/// path cannot name (those with a '.'); a bounded number, since documents can be wide.
fn walk<'a>(value: &'a Value, prefix: Option<&str>, out: &mut Vec<(String, &'a Value)>) {
    if out.len() >= 256 {
        return;
    }
    // Not "is the prefix empty": a top-level key may be "" itself.
    let join = |part: &str| match prefix {
        None => part.to_string(),
        Some(prefix) => format!("{prefix}.{part}"),
    };
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter().filter(|(key, _)| !key.contains('.')) {
                let path = join(key);
                walk(child, Some(&path), out);
                out.push((path, child));
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let path = join(&i.to_string());
                walk(child, Some(&path), out);
                out.push((path, child));
            }
        }
        _ => {}
    }
}
