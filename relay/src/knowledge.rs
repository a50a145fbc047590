//! The knowledge base as the relay serves it: articles in the database, their search
//! index, and the intent classifier, kept in step.
//!
//! Changes through the API update the index at once. Changes by another process (the
//! `kefu-relay kb` commands while the relay runs) are noticed by a cheap fingerprint
//! check (article count and latest change) every few seconds, which rebuilds the index.

use std::sync::Mutex;

use kefu_proto::api::{Article, NewArticle};
use kefu_proto::{ErrorCode, WorkspaceId};

use crate::error::{Error, Result};
use crate::intent::{Classifier, IntentDef, language_of};
use crate::kb::{Hit, IndexedArticle, KnowledgeBase};
use crate::store::Store;

/// Longest article body, in bytes.
pub const MAX_ARTICLE_BYTES: usize = 64 * 1024;

/// Articles, index and classifier.
pub struct Knowledge {
    /// The search index.
    pub index: KnowledgeBase,
    /// The intent classifier.
    pub classifier: Classifier,
    /// The database's article count and latest change when the index was last built.
    fingerprint: Mutex<(i64, i64)>,
}

impl Knowledge {
    /// Builds the index from every article in the database.
    pub async fn load(store: &Store, intents: Vec<IntentDef>) -> Result<Knowledge> {
        let knowledge = Knowledge {
            index: KnowledgeBase::new()?,
            classifier: Classifier::new(intents),
            fingerprint: Mutex::new((-1, -1)),
        };
        knowledge.rebuild(store).await?;
        Ok(knowledge)
    }

    /// Rebuilds the index from the database.
    async fn rebuild(&self, store: &Store) -> Result<()> {
        let fingerprint = store.articles_fingerprint().await?;
        let articles = store.all_articles().await?;
        let indexed: Vec<IndexedArticle> = articles.iter().map(|(w, a)| indexed(*w, a)).collect();
        self.index.clear()?;
        self.index.upsert(&indexed)?;
        *self.fingerprint.lock().expect("fingerprint lock") = fingerprint;
        tracing::debug!(articles = articles.len(), "knowledge base indexed");
        Ok(())
    }

    /// Rebuilds the index if another process changed the articles.
    pub async fn refresh_if_changed(&self, store: &Store) -> Result<()> {
        let now = store.articles_fingerprint().await?;
        if now != *self.fingerprint.lock().expect("fingerprint lock") {
            self.rebuild(store).await?;
        }
        Ok(())
    }

    /// Creates or replaces (by slug) an article, and indexes it.
    pub async fn save(&self, store: &Store, workspace: WorkspaceId, new: &NewArticle) -> Result<Article> {
        let slug = check_article(new)?;
        let article = store.save_article(workspace, &slug, new).await?;
        self.index.upsert(&[indexed(workspace, &article)])?;
        self.note_change(store).await;
        Ok(article)
    }

    /// Replaces an existing article by id (its slug may change).
    pub async fn replace(&self, store: &Store, workspace: WorkspaceId, id: i64, new: &NewArticle) -> Result<Article> {
        let Some(old) = store.article(workspace, id).await? else {
            return Err(Error::refused(ErrorCode::NotFound, format!("no article {id}")));
        };
        let slug = check_article(new)?;
        if slug != old.slug {
            store.delete_article(workspace, id).await?;
            self.index.remove(id)?;
        }
        self.save(store, workspace, &NewArticle { slug: Some(slug), ..new.clone() }).await
    }

    /// Removes an article from the database and from search.
    pub async fn delete(&self, store: &Store, workspace: WorkspaceId, id: i64) -> Result<()> {
        if !store.delete_article(workspace, id).await? {
            return Err(Error::refused(ErrorCode::NotFound, format!("no article {id}")));
        }
        self.index.remove(id)?;
        self.note_change(store).await;
        Ok(())
    }

    /// Records the fingerprint after a change made here, so it is not rebuilt again.
    async fn note_change(&self, store: &Store) {
        if let Ok(fingerprint) = store.articles_fingerprint().await {
            *self.fingerprint.lock().expect("fingerprint lock") = fingerprint;
        }
    }

    /// The best articles for a customer's message: BM25 and the intents it shows, in the
    /// message's language first.
    pub fn answers(&self, workspace: WorkspaceId, message: &str, limit: usize) -> Result<Vec<Hit>> {
        let signals = self.classifier.signals(message);
        self.index.find(workspace.0, message, limit, Some(language_of(message)), &signals)
    }
}

fn indexed(workspace: WorkspaceId, a: &Article) -> IndexedArticle<'_> {
    IndexedArticle {
        id: a.id,
        workspace: workspace.0,
        title: &a.title,
        body: &a.body,
        tags: &a.tags,
        language: &a.language,
        intents: &a.intents,
    }
}

/// Checks an article's fields; returns its slug (given, or made from the title).
pub fn check_article(new: &NewArticle) -> Result<String> {
    let bad = |m: String| Err(Error::refused(ErrorCode::BadRequest, m));
    let title = new.title.trim();
    if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
        return bad("title must be 1 to 200 characters without control characters".into());
    }
    if new.body.len() > MAX_ARTICLE_BYTES {
        return Err(Error::refused(ErrorCode::TooLarge, format!("body exceeds {MAX_ARTICLE_BYTES} bytes")));
    }
    if new.body.trim().is_empty() {
        return bad("body is blank".into());
    }
    let word = |s: &str| !s.is_empty() && s.len() <= 32 && !s.chars().any(char::is_control);
    if new.tags.len() > 20 || !new.tags.iter().all(|t| word(t)) {
        return bad("at most 20 tags of 1 to 32 bytes".into());
    }
    let name = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if new.intents.len() > 10 || !new.intents.iter().all(|i| name(i)) {
        return bad("at most 10 intents named with a-z, 0-9, '_' and '-'".into());
    }
    if !(2..=8).contains(&new.language.len()) || !new.language.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        return bad(format!("language '{}' is not a language code such as zh or en", new.language));
    }
    let slug = match &new.slug {
        Some(slug) if name(slug) => slug.clone(),
        Some(slug) => return bad(format!("slug '{slug}' may hold only a-z, 0-9, '_' and '-' (1 to 64)")),
        None => slug_from(title, &new.language),
    };
    Ok(slug)
}

/// A slug made from a title: its Latin letters and digits, joined by dashes; for a title
/// with none (Chinese), a short hash of it, so the same title gives the same slug.
fn slug_from(title: &str, language: &str) -> String {
    let words: Vec<String> = title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .take(8)
        .collect();
    if words.is_empty() {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(title.as_bytes());
        let hex = hex::encode(&digest[..5]);
        format!("article-{hex}-{language}")
    } else {
        format!("{}-{language}", words.join("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(title: &str, body: &str) -> NewArticle {
        NewArticle {
            slug: None,
            title: title.into(),
            body: body.into(),
            tags: vec![],
            intents: vec![],
            language: "zh".into(),
        }
    }

    #[test]
    fn slugs_come_from_latin_titles_or_a_hash() {
        assert_eq!(check_article(&article("Return Policy (7 days)", "b")).unwrap(), "return-policy-7-days-zh");
        let a = check_article(&article("退货政策", "b")).unwrap();
        assert!(a.starts_with("article-") && a.ends_with("-zh"), "{a}");
        assert_eq!(a, check_article(&article("退货政策", "other")).unwrap());
    }

    #[test]
    fn bad_articles_are_refused_with_the_field_named() {
        let cases = [
            (article("", "b"), "title"),
            (article("t", "  "), "blank"),
            (NewArticle { language: "Chinese".into(), ..article("t", "b") }, "language"),
            (NewArticle { slug: Some("Bad Slug".into()), ..article("t", "b") }, "slug"),
            (NewArticle { intents: vec!["Order Status".into()], ..article("t", "b") }, "intents"),
        ];
        for (new, field) in cases {
            let err = check_article(&new).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        let huge = article("t", &"字".repeat(MAX_ARTICLE_BYTES));
        assert!(check_article(&huge).unwrap_err().to_string().contains("exceeds"));
    }
}
