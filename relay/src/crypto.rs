//! Encryption at rest: what customers write (message bodies, names, tickets, rating
//! comments) and the files they exchange are stored under AES-256-GCM.
//!
//! A [`Keyring`] holds named 256-bit keys; the last one listed is *active* and seals
//! everything written, the others only open what they sealed before, so keys can be
//! rotated while the relay serves (`kefu-relay keys rotate`, [`crate::rotation`]). Keys
//! come from a key file (`[encryption] key_file`) or the `KEFU_KEYS` environment variable,
//! never from the database. With neither, encryption is off and values are stored as
//! written.
//!
//! A sealed text value is `enc1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>` with a fresh
//! random 96-bit nonce per value and the column's name ([`Field::column`]) as associated
//! data, so a value copied into another column does not open. A value without the prefix
//! is plaintext: rows written before encryption was turned on, or while it is off. A
//! sealed value whose key is not in the keyring, or whose tag does not verify, is an
//! error, never text.
//!
//! An attachment file is `MAGIC ‖ key id length ‖ key id ‖ nonce ‖ ciphertext ‖ tag`, with
//! the attachment's id as associated data. Uploads can never begin with the magic (it
//! starts with a NUL byte, which no accepted type starts with), so a file without it is a
//! plaintext one.
//!
//! The keyring and the formats are pure; [`Keys`] is the shared, reloadable handle the
//! relay reads them through (SIGHUP, or a changed key file noticed by the upkeep task).

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::{RngCore, TryRngCore};

use crate::error::{Error, Result};

/// What every sealed text value starts with (the format's version is the `1`).
pub const SEALED_PREFIX: &str = "enc1:";

/// What a plaintext value that itself starts with [`SEALED_PREFIX`] (or with this) is
/// stored behind while encryption is off, so that it is never mistaken for a sealed one.
pub const ESCAPED_PREFIX: &str = "txt1:";

/// What every sealed attachment file starts with.
pub const FILE_MAGIC: &[u8] = b"\0kefu-enc1";

/// The environment variable that may carry the keys instead of a file.
pub const KEYS_VARIABLE: &str = "KEFU_KEYS";

/// The longest key id, in bytes.
pub const MAX_KEY_ID_BYTES: usize = 32;

/// Bytes of a key: AES-256.
pub const KEY_BYTES: usize = 32;

const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// A column whose values are sealed. Its name is the associated data of each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `messages.body`: every message, note and bot answer.
    MessageBody,
    /// `contacts.name`.
    ContactName,
    /// `tickets.subject`: the first line of what the customer left.
    TicketSubject,
    /// `tickets.description`: what the customer left, with their phone, e-mail or address.
    TicketDescription,
    /// `ticket_notes.body`.
    TicketNote,
    /// `ratings.comment`.
    RatingComment,
}

impl Field {
    /// Every sealed column.
    pub const ALL: [Field; 6] = [
        Field::MessageBody,
        Field::ContactName,
        Field::TicketSubject,
        Field::TicketDescription,
        Field::TicketNote,
        Field::RatingComment,
    ];

    /// `table.column`.
    pub fn column(self) -> &'static str {
        match self {
            Field::MessageBody => "messages.body",
            Field::ContactName => "contacts.name",
            Field::TicketSubject => "tickets.subject",
            Field::TicketDescription => "tickets.description",
            Field::TicketNote => "ticket_notes.body",
            Field::RatingComment => "ratings.comment",
        }
    }
}

/// One named key.
struct RingKey {
    id: String,
    cipher: Aes256Gcm,
}

/// Named keys, the last one active. Empty: encryption is off.
#[derive(Default)]
pub struct Keyring {
    keys: Vec<RingKey>,
}

impl fmt::Debug for Keyring {
    /// Key ids only: key material never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids().collect::<Vec<_>>()).finish()
    }
}

/// Keys as given in `KEFU_KEYS`: kept out of `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeyText(pub String);

impl fmt::Debug for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyText(redacted)")
    }
}

/// A key id: 1 to 32 letters, digits, `-`, `_` or `.` (no `:`, which ends it in a value).
fn check_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_BYTES).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Keyring {
    /// No keys: values are stored as written.
    pub fn off() -> Keyring {
        Keyring::default()
    }

    /// Parses `<key id> <base64 key>` entries, one per line or separated by `;`; blank
    /// entries and `#` comments are skipped; the last entry is the active key. Errors name
    /// the entry (counting from 1) and never show key material.
    pub fn parse(text: &str) -> Result<Keyring> {
        let mut keys: Vec<RingKey> = Vec::new();
        for (index, entry) in text.split(['\n', ';']).enumerate() {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let bad = |what: String| Error::Config(format!("encryption key entry {}: {what}", index + 1));
            let mut parts = entry.split_whitespace();
            let (Some(id), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("expected '<key id> <base64 key>'".into()));
            };
            if !check_key_id(id) {
                return Err(bad(format!(
                    "key id '{}' must be 1 to {MAX_KEY_ID_BYTES} letters, digits, '-', '_' or '.'",
                    id.chars().take(40).collect::<String>()
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(bad(format!("key id '{id}' appears twice")));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(key)
                .or_else(|_| STANDARD_NO_PAD.decode(key))
                .map_err(|_| bad(format!("the key of '{id}' is not base64")))?;
            if bytes.len() != KEY_BYTES {
                return Err(bad(format!(
                    "the key of '{id}' is {} bytes; AES-256 needs {KEY_BYTES} (kefu-relay keys generate makes one)",
                    bytes.len()
                )));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| bad("unusable key".into()))?;
            keys.push(RingKey { id: id.to_string(), cipher });
        }
        if keys.is_empty() {
            return Err(Error::Config("encryption: no keys given (kefu-relay keys generate makes one)".into()));
        }
        Ok(Keyring { keys })
    }

    /// Whether values are sealed when written.
    pub fn is_on(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The id of the key that seals what is written now.
    pub fn active_id(&self) -> Option<&str> {
        self.keys.last().map(|k| k.id.as_str())
    }

    /// Every key id, active last.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    fn key(&self, id: &str) -> Option<&Aes256Gcm> {
        self.keys.iter().find(|k| k.id == id).map(|k| &k.cipher)
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plain` under `cipher`, written after `out`'s
    /// current contents.
    fn seal_into(cipher: &Aes256Gcm, associated: &[u8], plain: &[u8], out: &mut Vec<u8>) {
        let mut nonce = Nonce::<Aes256Gcm>::default();
        rand::rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = cipher
            .encrypt_inout_detached(&nonce, associated, (&mut out[start..]).into())
            .expect("a value within AES-GCM's length limit");
        out.extend_from_slice(&tag);
    }

    /// The plaintext of `nonce ‖ ciphertext ‖ tag`, or `None` when it does not verify.
    fn open_bytes(cipher: &Aes256Gcm, associated: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_BYTES + TAG_BYTES {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_BYTES);
        let (body, tag) = rest.split_at(rest.len() - TAG_BYTES);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).ok()?;
        let tag = Tag::<Aes256Gcm>::try_from(tag).ok()?;
        let mut plain = body.to_vec();
        cipher.decrypt_inout_detached(&nonce, associated, plain.as_mut_slice().into(), &tag).ok()?;
        Some(plain)
    }

    /// What to store for `plain` in `field`: sealed under the active key, or, with
    /// encryption off, the text itself (escaped when it could pass for a sealed value).
    pub fn seal<'a>(&self, field: Field, plain: &'a str) -> Cow<'a, str> {
        let Some(active) = self.keys.last() else {
            if plain.starts_with(SEALED_PREFIX) || plain.starts_with(ESCAPED_PREFIX) {
                return Cow::Owned(format!("{ESCAPED_PREFIX}{plain}"));
            }
            return Cow::Borrowed(plain);
        };
        let mut sealed = Vec::with_capacity(NONCE_BYTES + plain.len() + TAG_BYTES);
        Self::seal_into(&active.cipher, field.column().as_bytes(), plain.as_bytes(), &mut sealed);
        let mut text = String::with_capacity(SEALED_PREFIX.len() + active.id.len() + 1 + sealed.len() * 4 / 3 + 4);
        text.push_str(SEALED_PREFIX);
        text.push_str(&active.id);
        text.push(':');
        STANDARD_NO_PAD.encode_string(&sealed, &mut text);
        Cow::Owned(text)
    }

    /// [`Keyring::seal`] of an optional value (NULL stays NULL).
    pub fn seal_opt<'a>(&self, field: Field, plain: Option<&'a str>) -> Option<Cow<'a, str>> {
        plain.map(|p| self.seal(field, p))
    }

    /// The text a stored value of `field` holds. Plaintext comes back as it is; a sealed
    /// value under a key this keyring lacks, or one that does not verify, is an error.
    pub fn open(&self, field: Field, stored: String) -> Result<String> {
        if let Some(escaped) = stored.strip_prefix(ESCAPED_PREFIX) {
            return Ok(escaped.to_string());
        }
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else { return Ok(stored) };
        let column = field.column();
        let (id, payload) = rest
            .split_once(':')
            .ok_or_else(|| Error::Encryption(format!("{column}: a sealed value without a key id")))?;
        let cipher = self.key(id).ok_or_else(|| {
            Error::Encryption(format!("{column}: a value is sealed under key '{id}', which is not in the keyring"))
        })?;
        let damaged =
            || Error::Encryption(format!("{column}: a value under key '{id}' does not open (damaged or moved)"));
        let sealed = STANDARD_NO_PAD.decode(payload).map_err(|_| damaged())?;
        let plain = Self::open_bytes(cipher, column.as_bytes(), &sealed).ok_or_else(damaged)?;
        String::from_utf8(plain).map_err(|_| damaged())
    }

    /// [`Keyring::open`] of an optional value.
    pub fn open_opt(&self, field: Field, stored: Option<String>) -> Result<Option<String>> {
        stored.map(|s| self.open(field, s)).transpose()
    }

    /// What to write to disk for an attachment's bytes: sealed under the active key with
    /// the attachment's id as associated data, or the bytes themselves when encryption is
    /// off.
    pub fn seal_file<'a>(&self, attachment_id: &str, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(active) = self.keys.last() else { return Cow::Borrowed(bytes) };
        let mut out =
            Vec::with_capacity(FILE_MAGIC.len() + 1 + active.id.len() + NONCE_BYTES + bytes.len() + TAG_BYTES);
        out.extend_from_slice(FILE_MAGIC);
        out.push(active.id.len() as u8);
        out.extend_from_slice(active.id.as_bytes());
        Self::seal_into(&active.cipher, file_associated(attachment_id).as_bytes(), bytes, &mut out);
        Cow::Owned(out)
    }

    /// The bytes of an attachment file as uploaded.
    pub fn open_file(&self, attachment_id: &str, stored: Vec<u8>) -> Result<Vec<u8>> {
        let Some(id) = file_key_id(&stored) else {
            if stored.starts_with(FILE_MAGIC) {
                return Err(Error::Encryption(format!("attachment {attachment_id}: a damaged header")));
            }
            return Ok(stored);
        };
        let cipher = self.key(id).ok_or_else(|| {
            Error::Encryption(format!(
                "attachment {attachment_id}: sealed under key '{id}', which is not in the keyring"
            ))
        })?;
        let sealed = &stored[FILE_MAGIC.len() + 1 + id.len()..];
        Self::open_bytes(cipher, file_associated(attachment_id).as_bytes(), sealed).ok_or_else(|| {
            Error::Encryption(format!("attachment {attachment_id}: does not open under key '{id}' (damaged or moved)"))
        })
    }
}

/// The associated data of an attachment file: its id, apart from every column name.
fn file_associated(attachment_id: &str) -> String {
    format!("attachments/{attachment_id}")
}

/// The key a stored text value is sealed under; `None` for plaintext.
pub fn key_id_of(stored: &str) -> Option<&str> {
    stored.strip_prefix(SEALED_PREFIX)?.split_once(':').map(|(id, _)| id)
}

/// The key an attachment file is sealed under; `None` for a plaintext file (or a header
/// too damaged to name one).
pub fn file_key_id(stored: &[u8]) -> Option<&str> {
    let rest = stored.strip_prefix(FILE_MAGIC)?;
    let (&length, rest) = rest.split_first()?;
    let id = std::str::from_utf8(rest.get(..length as usize)?).ok()?;
    check_key_id(id).then_some(id)
}

/// A new key line, `<id> <base64 key>`, from the operating system's random source.
pub fn generate_key_line(id: &str) -> Result<String> {
    if !check_key_id(id) {
        return Err(Error::Config(format!(
            "key id '{id}' must be 1 to {MAX_KEY_ID_BYTES} letters, digits, '-', '_' or '.'"
        )));
    }
    let mut key = [0u8; KEY_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| Error::Internal(format!("the system's random source failed: {e}")))?;
    Ok(format!("{id} {}", base64::engine::general_purpose::STANDARD.encode(key)))
}

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Nowhere: encryption is off.
    Off,
    /// A key file, re-read on reload.
    File(PathBuf),
    /// The `KEFU_KEYS` variable, fixed for the life of the process.
    Environment,
}

/// Reads a key file, refusing one that others than its owner may read or write.
pub fn read_key_file(path: &Path) -> Result<String> {
    let bad = |what: String| Error::Config(format!("encryption.key_file {}: {what}", path.display()));
    let metadata = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!("mode {mode:o} lets other users at the keys: chmod 600 it")));
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))
}

/// The relay's keys: shared by every task, swapped whole on reload.
#[derive(Clone)]
pub struct Keys {
    shared: Arc<KeysShared>,
}

struct KeysShared {
    current: RwLock<Arc<Keyring>>,
    source: KeySource,
    /// The key file's text as last loaded (or refused), so an unchanged file is not parsed
    /// again and a bad one is reported once.
    last_text: Mutex<Option<String>>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys").field("source", &self.shared.source).field("keyring", &self.current()).finish()
    }
}

impl Keys {
    fn new(keyring: Keyring, source: KeySource, text: Option<String>) -> Keys {
        Keys {
            shared: Arc::new(KeysShared {
                current: RwLock::new(Arc::new(keyring)),
                source,
                last_text: Mutex::new(text),
            }),
        }
    }

    /// Encryption off.
    pub fn off() -> Keys {
        Keys::new(Keyring::off(), KeySource::Off, None)
    }

    /// A fixed keyring (tests, tools).
    pub fn fixed(keyring: Keyring) -> Keys {
        Keys::new(keyring, KeySource::Environment, None)
    }

    /// The keys of `[encryption]`: from its key file, or from the text of `KEFU_KEYS`; off
    /// with neither, refused with both.
    pub fn load(key_file: Option<&Path>, from_environment: Option<&KeyText>) -> Result<Keys> {
        match (key_file, from_environment) {
            (Some(_), Some(_)) => Err(Error::Config(format!(
                "encryption keys come from encryption.key_file or {KEYS_VARIABLE}, not both"
            ))),
            (Some(path), None) => {
                let text = read_key_file(path)?;
                let keyring = Keyring::parse(&text)
                    .map_err(|e| Error::Config(format!("encryption.key_file {}: {e}", path.display())))?;
                Ok(Keys::new(keyring, KeySource::File(path.to_path_buf()), Some(text)))
            }
            (None, Some(text)) => {
                let keyring = Keyring::parse(&text.0).map_err(|e| Error::Config(format!("{KEYS_VARIABLE}: {e}")))?;
                Ok(Keys::new(keyring, KeySource::Environment, None))
            }
            (None, None) => Ok(Keys::off()),
        }
    }

    /// The keyring in force now (hold it for a batch rather than asking per value).
    pub fn current(&self) -> Arc<Keyring> {
        self.shared.current.read().expect("keyring lock").clone()
    }

    /// Where the keys come from.
    pub fn source(&self) -> &KeySource {
        &self.shared.source
    }

    /// Re-reads the key file; returns the new keyring when the file changed and loaded.
    /// A file that does not load is an error and leaves the keys in force as they were;
    /// the same bad text is reported once. Keys from the environment cannot change.
    pub fn reload(&self) -> Result<Option<Arc<Keyring>>> {
        let KeySource::File(path) = &self.shared.source else { return Ok(None) };
        let text = read_key_file(path)?;
        let mut last = self.shared.last_text.lock().expect("key text lock");
        if last.as_deref() == Some(text.as_str()) {
            return Ok(None);
        }
        let parsed = Keyring::parse(&text);
        *last = Some(text);
        let keyring =
            Arc::new(parsed.map_err(|e| Error::Config(format!("encryption.key_file {}: {e}", path.display())))?);
        *self.shared.current.write().expect("keyring lock") = keyring.clone();
        Ok(Some(keyring))
    }
}

/// Re-reads the key file and says what happened: which keys are in force after a change,
/// or why a changed file was refused (the keys in force stay).
pub fn reload_and_log(keys: &Keys, why: &str) {
    match keys.reload() {
        Ok(Some(keyring)) => tracing::info!(
            why,
            active_key = keyring.active_id().unwrap_or(""),
            keys = ?keyring.ids().collect::<Vec<_>>(),
            "encryption keys reloaded"
        ),
        Ok(None) => {}
        Err(e) => tracing::error!(why, error = %e, "encryption keys not reloaded; the previous keys stay in force"),
    }
}

/// Reloads the key file on each SIGHUP until the task is aborted.
#[cfg(unix)]
pub async fn reload_on_hangup(keys: Keys) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: the key file reloads only when it changes");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        reload_and_log(&keys, "SIGHUP");
    }
}

/// Without SIGHUP the key file reloads only when it changes.
#[cfg(not(unix))]
pub async fn reload_on_hangup(_keys: Keys) {
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[&str]) -> Keyring {
        let text: Vec<String> = ids.iter().map(|id| generate_key_line(id).unwrap()).collect();
        Keyring::parse(&text.join("\n")).unwrap()
    }

    /// The same key under the same id, in another keyring (another process).
    fn copy_of(text: &str) -> Keyring {
        Keyring::parse(text).unwrap()
    }

    #[test]
    fn values_round_trip_and_are_not_readable() {
        let keys = ring(&["k1"]);
        for plain in ["", "hello", "我的手机号是 13812345678，地址：上海市", &"长".repeat(5000)] {
            let sealed = keys.seal(Field::MessageBody, plain).into_owned();
            assert!(sealed.starts_with("enc1:k1:"), "{sealed}");
            assert_eq!(key_id_of(&sealed), Some("k1"));
            if !plain.is_empty() {
                assert!(!sealed.contains(plain));
            }
            assert_eq!(keys.open(Field::MessageBody, sealed).unwrap(), plain);
        }
    }

    #[test]
    fn each_value_has_its_own_nonce() {
        let keys = ring(&["k1"]);
        let a = keys.seal(Field::ContactName, "王小明").into_owned();
        let b = keys.seal(Field::ContactName, "王小明").into_owned();
        assert_ne!(a, b, "the same text seals differently each time");
    }

    #[test]
    fn a_missing_key_or_another_key_under_the_same_id_is_an_error() {
        let sealed = ring(&["k1"]).seal(Field::MessageBody, "secret").into_owned();
        let err = ring(&["k2"]).open(Field::MessageBody, sealed.clone()).unwrap_err().to_string();
        assert!(err.contains("'k1'") && err.contains("not in the keyring"), "{err}");
        let err = ring(&["k1"]).open(Field::MessageBody, sealed).unwrap_err().to_string();
        assert!(err.contains("does not open"), "{err}");
        assert!(ring(&["k1"]).open(Field::MessageBody, "enc1:nokeyid".into()).is_err());
    }

    #[test]
    fn tampered_values_do_not_open() {
        let keys = ring(&["k1"]);
        let sealed = keys.seal(Field::MessageBody, "refund 300 yuan").into_owned();
        let payload_at = "enc1:k1:".len();
        for position in [payload_at, payload_at + 20, sealed.len() - 1] {
            let mut bytes = sealed.clone().into_bytes();
            bytes[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            let err = keys.open(Field::MessageBody, tampered).unwrap_err();
            assert!(matches!(err, Error::Encryption(_)), "{err}");
        }
        let truncated = sealed[..sealed.len() - 4].to_string();
        assert!(keys.open(Field::MessageBody, truncated).is_err());
        assert!(keys.open(Field::MessageBody, "enc1:k1:!!not base64!!".into()).is_err());
    }

    #[test]
    fn a_value_moved_to_another_column_does_not_open() {
        let keys = ring(&["k1"]);
        let name = keys.seal(Field::ContactName, "王小明").into_owned();
        let err = keys.open(Field::MessageBody, name.clone()).unwrap_err().to_string();
        assert!(err.contains("messages.body") && err.contains("moved"), "{err}");
        assert_eq!(keys.open(Field::ContactName, name).unwrap(), "王小明");
    }

    #[test]
    fn plaintext_passes_through_and_is_never_mistaken_for_a_sealed_value() {
        let on = ring(&["k1"]);
        let off = Keyring::off();
        assert!(!off.is_on());
        assert_eq!(off.seal(Field::MessageBody, "hello"), Cow::Borrowed("hello"));
        assert_eq!(on.open(Field::MessageBody, "hello from before".into()).unwrap(), "hello from before");
        assert_eq!(off.open(Field::MessageBody, "hello".into()).unwrap(), "hello");
        // Text that looks like the format, written with encryption off, reads back as
        // written, by either keyring.
        for tricky in ["enc1:k1:AAAA", "txt1:x", "txt1:enc1:k1:AAAA"] {
            let stored = off.seal(Field::MessageBody, tricky).into_owned();
            assert_eq!(key_id_of(&stored), None, "{stored}");
            assert_eq!(off.open(Field::MessageBody, stored.clone()).unwrap(), tricky);
            assert_eq!(on.open(Field::MessageBody, stored).unwrap(), tricky);
            let sealed = on.seal(Field::MessageBody, tricky).into_owned();
            assert_eq!(on.open(Field::MessageBody, sealed).unwrap(), tricky);
        }
        assert_eq!(on.open_opt(Field::ContactName, None).unwrap(), None);
        assert!(on.seal_opt(Field::ContactName, None).is_none());
        // A sealed value needs a keyring that holds its key, even with encryption off.
        let sealed = on.seal(Field::MessageBody, "x").into_owned();
        assert!(off.open(Field::MessageBody, sealed).is_err());
    }

    #[test]
    fn the_last_key_seals_and_every_key_opens() {
        let old = generate_key_line("2025-01").unwrap();
        let new = generate_key_line("2026-06").unwrap();
        let before = copy_of(&old);
        let after = copy_of(&format!("{old}\n{new}"));
        assert_eq!(after.active_id(), Some("2026-06"));
        assert_eq!(after.ids().collect::<Vec<_>>(), ["2025-01", "2026-06"]);
        let sealed_before = before.seal(Field::TicketDescription, "电话 13812345678").into_owned();
        let sealed_after = after.seal(Field::TicketDescription, "电话 13812345678").into_owned();
        assert_eq!(key_id_of(&sealed_after), Some("2026-06"));
        assert_eq!(after.open(Field::TicketDescription, sealed_before).unwrap(), "电话 13812345678");
        assert!(before.open(Field::TicketDescription, sealed_after).is_err());
    }

    #[test]
    fn files_round_trip_bound_to_their_id() {
        let keys = ring(&["k1"]);
        let png = b"\x89PNG\r\n\x1a\nthe picture".to_vec();
        let sealed = keys.seal_file("att_1", &png).into_owned();
        assert!(sealed.starts_with(FILE_MAGIC));
        assert_eq!(file_key_id(&sealed), Some("k1"));
        assert!(!sealed.windows(11).any(|w| w == b"the picture"));
        assert_eq!(keys.open_file("att_1", sealed.clone()).unwrap(), png);
        assert!(keys.open_file("att_2", sealed.clone()).is_err(), "another attachment's id");
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(keys.open_file("att_1", tampered).is_err());
        assert!(ring(&["k2"]).open_file("att_1", sealed).is_err());
        // Plaintext files (written with encryption off, or before) pass through.
        assert_eq!(file_key_id(&png), None);
        assert_eq!(keys.open_file("att_1", png.clone()).unwrap(), png);
        assert_eq!(Keyring::off().seal_file("att_1", &png), Cow::Borrowed(&png[..]));
        assert!(keys.open_file("att_1", FILE_MAGIC.to_vec()).is_err(), "a header cut short");
    }

    #[test]
    fn keyring_errors_name_the_entry_and_never_the_key() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        let cases = [
            ("".to_string(), "no keys"),
            ("# only a comment\n\n".to_string(), "no keys"),
            (format!("k1 {key}\nk1 {key}"), "entry 2: key id 'k1' appears twice"),
            (format!("k1 {short}"), "entry 1: the key of 'k1' is 16 bytes; AES-256 needs 32"),
            ("k1 not-base64-at-all!".to_string(), "entry 1: the key of 'k1' is not base64"),
            (format!("k:1 {key}"), "entry 1: key id 'k:1' must be"),
            (key.clone(), "entry 1: expected '<key id> <base64 key>'"),
            (format!("k1 {key} extra"), "entry 1: expected"),
        ];
        for (text, expected) in cases {
            let err = Keyring::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains(&key) && !err.contains(&short), "{err}");
        }
        let ok = Keyring::parse(&format!("# rotated 2026-06\nold {key}; new {key}\n")).unwrap();
        assert_eq!(ok.active_id(), Some("new"));
        assert!(format!("{ok:?}").contains("old") && !format!("{ok:?}").contains(&key));
        assert!(!format!("{:?}", KeyText(key.clone())).contains(&key));
    }

    #[test]
    fn generated_lines_parse() {
        let line = generate_key_line("2026-06").unwrap();
        assert_eq!(Keyring::parse(&line).unwrap().active_id(), Some("2026-06"));
        assert!(generate_key_line("bad id").is_err());
        assert_ne!(generate_key_line("a").unwrap(), generate_key_line("a").unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn key_files_readable_by_others_are_refused_and_reloads_keep_the_old_keys_on_errors() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let first = generate_key_line("k1").unwrap();
        std::fs::write(&path, format!("{first}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keys::load(Some(&path), None).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let keys = Keys::load(Some(&path), None).unwrap();
        assert_eq!(keys.current().active_id(), Some("k1"));
        assert!(keys.reload().unwrap().is_none(), "unchanged");
        std::fs::write(&path, format!("{first}\nk2 broken\n")).unwrap();
        assert!(keys.reload().is_err());
        assert_eq!(keys.current().active_id(), Some("k1"), "a bad file leaves the keys as they were");
        std::fs::write(&path, format!("{first}\n{}\n", generate_key_line("k2").unwrap())).unwrap();
        assert_eq!(keys.reload().unwrap().unwrap().active_id(), Some("k2"));
        assert_eq!(keys.current().active_id(), Some("k2"));
        let both = Keys::load(Some(&path), Some(&KeyText(first))).unwrap_err().to_string();
        assert!(both.contains("not both"), "{both}");
        assert!(!Keys::load(None, None).unwrap().current().is_on());
    }
}
