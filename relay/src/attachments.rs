//! Files in conversations: what may be uploaded, how it is named and where it is kept.
//!
//! Uploads are accepted by content, not by the name or header the client gives: the
//! relay recognises a short allow-list of types from their leading bytes (an allow-list
//! of six signatures needs no sniffing library) and refuses everything else, so a file
//! is never served as a type it is not. Files live under `<data dir>/attachments/`,
//! named by a random id the relay makes, so no client string ever becomes a path. With
//! encryption on, a file holds its bytes sealed under the active key
//! ([`crate::crypto::Keyring::seal_file`]); [`read`] opens it.

use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::crypto::Keyring;
use crate::error::Result;

/// The types accepted, by their leading bytes.
const SIGNATURES: &[(&[u8], &str)] = &[
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
];

/// The media type of an upload, recognised from its content; `None` when it is not one
/// the relay accepts. Plain text is accepted when it is valid UTF-8 without control characters
/// (other than line breaks, tabs and form feeds).
pub fn sniff_content_type(bytes: &[u8]) -> Option<&'static str> {
    if let Some((_, kind)) = SIGNATURES.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return Some(kind);
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    let is_text = |text: &str| text.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\x0c'));
    if !bytes.is_empty() && std::str::from_utf8(bytes).is_ok_and(is_text) {
        return Some("text/plain; charset=utf-8");
    }
    None
}

/// A file name fit to show and to offer for download: the last path component, without
/// control characters or quotes, at most 128 bytes; "file" when nothing is left.
pub fn clean_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\'' | ';'))
        .collect::<String>()
        .trim()
        .to_string();
    while cleaned.len() > 128 {
        cleaned.pop();
    }
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." { "file".into() } else { cleaned }
}

/// A new attachment id.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("att_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Where an attachment's bytes live. Ids are the relay's own (checked by the caller to
/// have the `att_` form), never a client's path.
pub fn path_of(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("attachments").join(id)
}

/// Whether a string has the form of an id this module makes.
pub fn is_id(id: &str) -> bool {
    id.len() == 26
        && id.starts_with("att_")
        && id[4..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Writes the bytes (sealed when `keyring` is on) durably (fsync'd) before the upload is
/// acknowledged; returns the SHA-256 of the file as written, so the database holds no
/// digest of a sealed file's content.
pub async fn store(data_dir: &Path, id: &str, bytes: &[u8], keyring: &Keyring) -> Result<Vec<u8>> {
    let path = path_of(data_dir, id);
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let stored = keyring.seal_file(id, bytes);
    let mut file = tokio::fs::File::create(&path).await?;
    file.write_all(&stored).await?;
    file.sync_all().await?;
    Ok(Sha256::digest(&stored).to_vec())
}

/// An attachment's bytes as uploaded (opened when sealed).
pub async fn read(data_dir: &Path, id: &str, keyring: &Keyring) -> Result<Vec<u8>> {
    let stored = tokio::fs::read(path_of(data_dir, id)).await?;
    keyring.open_file(id, stored)
}

/// Replaces an attachment file's stored bytes whole (key rotation): written beside it,
/// fsync'd, then renamed over it, so a reader sees the old file or the new one, never a
/// part. Returns the SHA-256 of the new file.
pub async fn replace(data_dir: &Path, id: &str, stored: &[u8]) -> Result<Vec<u8>> {
    let path = path_of(data_dir, id);
    let staged = path.with_extension("rekeying");
    let mut file = tokio::fs::File::create(&staged).await?;
    file.write_all(stored).await?;
    file.sync_all().await?;
    tokio::fs::rename(&staged, &path).await?;
    if let Some(dir) = path.parent() {
        tokio::fs::File::open(dir).await?.sync_all().await?;
    }
    Ok(Sha256::digest(stored).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_recognised_by_content() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"\x89PNG\r\n\x1a\n....", Some("image/png")),
            (b"\xff\xd8\xff\xe0JFIF", Some("image/jpeg")),
            (b"GIF89a...", Some("image/gif")),
            (b"RIFF\x00\x00\x00\x00WEBPVP8 ", Some("image/webp")),
            (b"%PDF-1.7", Some("application/pdf")),
            ("订单号 12345，尺码 XL".as_bytes(), Some("text/plain; charset=utf-8")),
            (b"<html><script>alert(1)</script>", Some("text/plain; charset=utf-8")),
            (b"MZ\x90\x00\x03\x00\x00\x00", None),
            (b"PK\x03\x04", None),
            (b"\xff\xfe\x00\x00", None),
            (b"", None),
        ];
        for (bytes, expected) in cases {
            assert_eq!(sniff_content_type(bytes), *expected, "{bytes:?}");
        }
    }

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\发票.pdf"), "发票.pdf");
        assert_eq!(clean_name("a\u{0}b\"c;.png"), "abc.png");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(""), "file");
        assert!(clean_name(&"长".repeat(100)).len() <= 128);
    }

    #[test]
    fn ids_are_recognised_and_only_ids_make_paths() {
        let id = new_id();
        assert!(is_id(&id), "{id}");
        assert!(!is_id("att_../../../../etc/passw"));
        assert!(!is_id("../att_aaaaaaaaaaaaaaaaaaaaaa"));
    }
}
