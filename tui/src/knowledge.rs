//! The knowledge-base pane's state: a query searched as the agent types, debounced by
//! time passing ([`crate::app::Action::Tick`]) rather than by sleeping; the results with
//! their snippets; the selected article, fetched for the preview; and the three things it
//! can put into the composer (the snippet, the whole article, or a short link line).
//!
//! Pure: the app feeds it edits, ticks and answers and performs the requests it returns.
//! Answers to a query the agent has typed past are dropped, so results never flicker back
//! to an older search.

use std::collections::HashMap;

use kefu_proto::UnixMillis;
use kefu_proto::api::{Article, SearchHit};

use crate::api::ApiRequest;
use crate::app::Fetched;

/// How long the query must rest before it is searched: typing "退货运费" searches once,
/// not four times.
pub const SEARCH_DEBOUNCE_MS: i64 = 250;

/// What the knowledge-base pane holds; it survives closing the pane, so reopening shows
/// the last search.
#[derive(Debug, Default)]
pub struct KnowledgePane {
    /// What was typed.
    pub query: String,
    /// When the query last changed, while it waits to be searched.
    edited_at: Option<UnixMillis>,
    /// The query last sent (trimmed): the only one whose answer is taken.
    pub searched: Option<String>,
    /// Results of `searched`; `None` before any search (or after clearing the query).
    pub results: Option<Fetched<Vec<SearchHit>>>,
    /// The search for `searched` is not answered yet (earlier results may still show).
    in_flight: bool,
    /// The highlighted result.
    pub selected: usize,
    /// Articles fetched for the preview, by id.
    pub articles: HashMap<i64, Fetched<Article>>,
    /// Rows the preview is scrolled down.
    pub preview_scroll: usize,
    /// The article to highlight when the next results come (one just saved).
    select_when_found: Option<i64>,
}

/// What to put into the composer from the selected result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// The line of the article that matched.
    Snippet,
    /// The article's whole body (Markdown).
    Article,
    /// "title (kb:slug)".
    Link,
}

impl KnowledgePane {
    /// The query changed at `now`: search it once it rests.
    pub fn edited(&mut self, now: UnixMillis) {
        self.edited_at = Some(now);
    }

    /// When the app wants a tick to search the resting query, if it does.
    pub fn wake_at(&self) -> Option<UnixMillis> {
        self.edited_at.map(|at| at + SEARCH_DEBOUNCE_MS)
    }

    /// Time passed: the search to run, once the query has rested long enough and differs
    /// from the last one searched.
    pub fn on_tick(&mut self, now: UnixMillis) -> Option<ApiRequest> {
        let due = self.wake_at().is_some_and(|at| at <= now);
        if !due {
            return None;
        }
        self.edited_at = None;
        let query = self.query.trim().to_string();
        if query.is_empty() {
            self.searched = None;
            self.results = None;
            self.in_flight = false;
            self.selected = 0;
            return None;
        }
        if self.searched.as_deref() == Some(query.as_str()) {
            return None;
        }
        self.searched = Some(query.clone());
        self.in_flight = true;
        // Earlier results stay on screen while the new ones load.
        if !matches!(self.results, Some(Fetched::Ready(_))) {
            self.results = Some(Fetched::Loading);
        }
        Some(ApiRequest::KbSearch { query })
    }

    /// Whether a search is waiting to be sent or answered.
    pub fn searching(&self) -> bool {
        self.edited_at.is_some() || self.in_flight
    }

    /// The relay answered the search for `query`; returns the article to fetch for the
    /// preview, if any.
    pub fn on_results(&mut self, query: &str, result: Result<Vec<SearchHit>, String>) -> Option<ApiRequest> {
        if self.searched.as_deref() != Some(query) {
            return None; // typed past it
        }
        self.in_flight = false;
        self.results = Some(match result {
            Ok(hits) => Fetched::Ready(hits),
            Err(why) => Fetched::Failed(why),
        });
        self.selected = 0;
        if let Some(id) = self.select_when_found.take() {
            self.selected = self.hits().iter().position(|h| h.id == id).unwrap_or(0);
        }
        self.preview_scroll = 0;
        self.article_wanted()
    }

    /// The knowledge base changed (an article saved or deleted): searches the query again
    /// now, without waiting for it to rest, and highlights `select` when it is found.
    pub fn research(&mut self, select: Option<i64>) -> Option<ApiRequest> {
        self.edited_at = None;
        let query = self.query.trim().to_string();
        if query.is_empty() {
            self.searched = None;
            self.results = None;
            self.in_flight = false;
            self.selected = 0;
            return None;
        }
        self.searched = Some(query.clone());
        self.in_flight = true;
        self.select_when_found = select;
        Some(ApiRequest::KbSearch { query })
    }

    /// The results shown (none while loading or failed).
    pub fn hits(&self) -> &[SearchHit] {
        match &self.results {
            Some(Fetched::Ready(hits)) => hits,
            _ => &[],
        }
    }

    /// The highlighted result.
    pub fn selected_hit(&self) -> Option<&SearchHit> {
        self.hits().get(self.selected)
    }

    /// The highlighted result's article, once fetched.
    pub fn selected_article(&self) -> Option<&Fetched<Article>> {
        self.selected_hit().and_then(|hit| self.articles.get(&hit.id))
    }

    /// Moves the highlight by `delta` (wrapping); returns the article to fetch, if any.
    pub fn select(&mut self, delta: isize) -> Option<ApiRequest> {
        let count = self.hits().len();
        if count == 0 {
            return None;
        }
        self.selected = (self.selected as isize + delta).rem_euclid(count as isize) as usize;
        self.preview_scroll = 0;
        self.article_wanted()
    }

    /// The request for the highlighted article when it is not held (marked loading).
    pub fn article_wanted(&mut self) -> Option<ApiRequest> {
        let id = self.selected_hit()?.id;
        if self.articles.contains_key(&id) {
            return None;
        }
        self.articles.insert(id, Fetched::Loading);
        Some(ApiRequest::KbArticle(id))
    }

    /// The article arrived (or could not be fetched).
    pub fn on_article(&mut self, id: i64, result: Result<Article, String>) {
        let fetched = match result {
            Ok(article) => Fetched::Ready(article),
            Err(why) => Fetched::Failed(why),
        };
        self.articles.insert(id, fetched);
    }

    /// The text `what` puts into the composer, or why there is none yet.
    pub fn text_to_insert(&self, what: Insert) -> Result<String, String> {
        let Some(hit) = self.selected_hit() else {
            return Err(match &self.results {
                None => "type a question to search the knowledge base".into(),
                Some(Fetched::Loading) => "searching…".into(),
                Some(Fetched::Failed(why)) => format!("the search failed: {why}"),
                Some(Fetched::Ready(_)) => "nothing found: try other words".into(),
            });
        };
        match what {
            Insert::Snippet => Ok(hit.snippet.trim().to_string()),
            Insert::Link => Ok(link_line(&hit.title, &hit.slug)),
            Insert::Article => match self.articles.get(&hit.id) {
                Some(Fetched::Ready(article)) => Ok(article.body.trim().to_string()),
                Some(Fetched::Failed(why)) => Err(format!("cannot load the article: {why}")),
                None | Some(Fetched::Loading) => Err("the article is loading; try again in a moment".into()),
            },
        }
    }

    /// Scrolls the preview by `delta` rows.
    pub fn scroll_preview(&mut self, delta: isize) {
        self.preview_scroll = self.preview_scroll.saturating_add_signed(delta);
    }
}

/// The short reference to an article an agent may paste: "退货政策 (kb:return-policy-zh)".
pub fn link_line(title: &str, slug: &str) -> String {
    format!("{title} (kb:{slug})")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMillis = 1_000_000;

    fn hit(id: i64, title: &str, snippet: &str) -> SearchHit {
        SearchHit {
            id,
            slug: format!("a-{id}"),
            title: title.into(),
            snippet: snippet.into(),
            score: 1.0,
            language: "zh".into(),
        }
    }

    fn typed(pane: &mut KnowledgePane, text: &str, at: UnixMillis) {
        pane.query = text.into();
        pane.edited(at);
    }

    #[test]
    fn the_query_is_searched_once_it_rests() {
        let mut pane = KnowledgePane::default();
        typed(&mut pane, "退", T0);
        typed(&mut pane, "退货", T0 + 100);
        assert_eq!(pane.on_tick(T0 + 200), None, "still typing");
        assert_eq!(pane.wake_at(), Some(T0 + 100 + SEARCH_DEBOUNCE_MS));
        assert_eq!(pane.on_tick(T0 + 350), Some(ApiRequest::KbSearch { query: "退货".into() }));
        assert_eq!(pane.wake_at(), None);
        // The same words again (a space added) are not searched twice.
        typed(&mut pane, "退货 ", T0 + 400);
        assert_eq!(pane.on_tick(T0 + 700), None);
        // Clearing the query clears the results.
        typed(&mut pane, "", T0 + 800);
        assert_eq!(pane.on_tick(T0 + 1100), None);
        assert_eq!(pane.results, None);
    }

    #[test]
    fn answers_to_an_older_query_are_dropped() {
        let mut pane = KnowledgePane::default();
        typed(&mut pane, "refund", T0);
        pane.on_tick(T0 + SEARCH_DEBOUNCE_MS);
        typed(&mut pane, "refund shipping", T0 + 300);
        pane.on_tick(T0 + 300 + SEARCH_DEBOUNCE_MS);
        assert_eq!(pane.on_results("refund", Ok(vec![hit(1, "Refunds", "old")])), None);
        assert_eq!(pane.hits(), &[]);
        let wanted = pane.on_results("refund shipping", Ok(vec![hit(2, "Return shipping", "free"), hit(3, "B", "b")]));
        assert_eq!(wanted, Some(ApiRequest::KbArticle(2)));
        assert_eq!(pane.select(1), Some(ApiRequest::KbArticle(3)));
        assert_eq!(pane.select(1), None, "already asked for");
        assert_eq!(pane.selected, 0);
    }

    #[test]
    fn a_change_searches_again_at_once_and_highlights_the_saved_article() {
        let mut pane = KnowledgePane::default();
        assert_eq!(pane.research(Some(7)), None, "nothing to search");
        typed(&mut pane, "退货", T0);
        pane.on_tick(T0 + SEARCH_DEBOUNCE_MS);
        pane.on_results("退货", Ok(vec![hit(1, "退货政策", "a")]));
        assert_eq!(pane.research(Some(7)), Some(ApiRequest::KbSearch { query: "退货".into() }));
        assert!(pane.searching());
        pane.on_results("退货", Ok(vec![hit(1, "退货政策", "a"), hit(7, "退货运费", "b")]));
        assert_eq!(pane.selected_hit().map(|h| h.id), Some(7));
    }

    #[test]
    fn what_goes_into_the_composer() {
        let mut pane = KnowledgePane::default();
        assert!(pane.text_to_insert(Insert::Snippet).is_err());
        typed(&mut pane, "退货", T0);
        pane.on_tick(T0 + SEARCH_DEBOUNCE_MS);
        pane.on_results("退货", Ok(vec![hit(4, "退货政策", "  签收后七天内可无理由退货。 ")]));
        assert_eq!(pane.text_to_insert(Insert::Snippet).unwrap(), "签收后七天内可无理由退货。");
        assert_eq!(pane.text_to_insert(Insert::Link).unwrap(), "退货政策 (kb:a-4)");
        assert!(pane.text_to_insert(Insert::Article).unwrap_err().contains("loading"));
        let article = Article {
            id: 4,
            slug: "a-4".into(),
            title: "退货政策".into(),
            body: "# 退货政策\n\n签收后**七天**内可无理由退货。\n".into(),
            tags: vec![],
            intents: vec!["return_policy".into()],
            language: "zh".into(),
            updated_at: T0,
        };
        pane.on_article(4, Ok(article));
        assert_eq!(pane.text_to_insert(Insert::Article).unwrap(), "# 退货政策\n\n签收后**七天**内可无理由退货。");
    }
}
