//! Knowledge-base search: BM25 over articles in Chinese and English.
//!
//! Articles live in the database (`kb_articles`); this module keeps a search index of
//! them in memory, rebuilt from the database at start and updated on every change, so
//! the index can never disagree with the database after a crash, and erasing an article
//! erases it from search at once.
//!
//! Chinese has no spaces, so text is segmented with jieba (in search mode, which also
//! emits the shorter words inside long ones), then lower-cased and English words stemmed.
//! A query goes through the same analyzer and becomes a boolean query of optional terms
//! (title terms weigh more than body terms), never a phrase query: tantivy's own query
//! parser would turn unspaced Chinese such as "到账时间" into a phrase and find nothing.

use std::sync::Mutex;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TantivyDocument, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{Language, LowerCaser, RemoveLongFilter, Stemmer, TextAnalyzer, TokenStream};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term, doc};
use tantivy_jieba::JiebaTokenizer;

use crate::error::{Error, Result};

/// The analyzer's name in the index.
const ANALYZER: &str = "kefu_zh_en";

/// Memory the index writer may use before flushing (tantivy's minimum is 15 MB).
const WRITER_MEMORY: usize = 15_000_000;

/// Words that say nothing about what a customer needs: particles, pronouns, polite
/// filler, in both languages. Left out of queries so they do not dilute the ranking.
const STOPWORDS: &[&str] = &[
    "的",
    "了",
    "吗",
    "呢",
    "吧",
    "啊",
    "呀",
    "么",
    "嘛",
    "哦",
    "哈",
    "我",
    "你",
    "您",
    "他",
    "她",
    "它",
    "我们",
    "你们",
    "是",
    "在",
    "有",
    "和",
    "与",
    "就",
    "都",
    "也",
    "还",
    "要",
    "想",
    "能",
    "会",
    "可以",
    "请问",
    "请",
    "一下",
    "这个",
    "那个",
    "什么",
    "怎么",
    "怎么办",
    "为什么",
    "一个",
    "这",
    "那",
    "个",
    "吧",
    "呃",
    "嗯",
    "谢谢",
    "好的",
    "a",
    "an",
    "the",
    "i",
    "my",
    "me",
    "you",
    "your",
    "is",
    "are",
    "was",
    "be",
    "to",
    "of",
    "and",
    "or",
    "for",
    "in",
    "on",
    "it",
    "can",
    "do",
    "does",
    "did",
    "how",
    "what",
    "why",
    "when",
    "please",
    "hi",
    "hello",
    "thanks",
    "there",
    "this",
    "that",
    "with",
    "have",
    "has",
    "will",
    "would",
    "could",
    "should",
    "im",
    "i'm",
    "get",
    "got",
    "just",
];

/// One article as the index needs it.
pub struct IndexedArticle<'a> {
    /// The article's id.
    pub id: i64,
    /// Its workspace.
    pub workspace: i64,
    /// Its title.
    pub title: &'a str,
    /// Its body (Markdown).
    pub body: &'a str,
    /// Its tags.
    pub tags: &'a [String],
    /// Its language (`zh`, `en`, …).
    pub language: &'a str,
    /// The intents it answers.
    pub intents: &'a [String],
}

/// What the index keeps of each article beside its text, for ranking by intent.
struct ArticleMeta {
    workspace: i64,
    language: String,
    intents: Vec<String>,
}

/// How much a fully matching intent adds to a best BM25 match (which counts 1).
const INTENT_WEIGHT: f32 = 1.0;

/// A search result: an article and how well it matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The article's id.
    pub id: i64,
    /// BM25 score (higher is better; comparable only within one query).
    pub score: f32,
}

/// Hits beyond `limit` fetched so that articles in the asker's language can come first.
const LANGUAGE_SLACK: usize = 4;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    workspace: Field,
    title: Field,
    body: Field,
    tags: Field,
    /// Pairs of adjacent Chinese characters from title and body: catches what word
    /// segmentation splits differently in a colloquial question (and some typos).
    grams: Field,
    language: Field,
}

/// The in-memory search index of every workspace's articles.
pub struct KnowledgeBase {
    /// Per article: workspace, language and intents.
    meta: std::sync::RwLock<std::collections::HashMap<i64, ArticleMeta>>,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(JiebaTokenizer::new())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

fn index_error(e: tantivy::TantivyError) -> Error {
    Error::Internal(format!("search index: {e}"))
}

impl KnowledgeBase {
    /// An empty index.
    pub fn new() -> Result<KnowledgeBase> {
        let mut schema = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields = Fields {
            id: schema.add_i64_field("id", INDEXED | STORED),
            workspace: schema.add_i64_field("workspace", INDEXED),
            title: schema.add_text_field("title", text.clone()),
            body: schema.add_text_field("body", text.clone()),
            tags: schema.add_text_field("tags", text),
            grams: schema.add_text_field(
                "grams",
                TextOptions::default().set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("whitespace")
                        .set_index_option(IndexRecordOption::WithFreqs),
                ),
            ),
            language: schema.add_text_field("language", STRING | STORED),
        };
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(ANALYZER, analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY).map_err(index_error)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(index_error)?;
        Ok(KnowledgeBase { meta: Default::default(), reader, writer: Mutex::new(writer), fields })
    }

    /// Adds or replaces articles, then makes them searchable.
    pub fn upsert(&self, articles: &[IndexedArticle]) -> Result<()> {
        let f = self.fields;
        let mut writer = self.writer.lock().expect("index writer lock");
        for a in articles {
            writer.delete_term(Term::from_field_i64(f.id, a.id));
            writer
                .add_document(doc!(
                    f.id => a.id,
                    f.workspace => a.workspace,
                    f.title => a.title,
                    f.body => a.body,
                    f.tags => a.tags.join(" "),
                    f.grams => cjk_bigrams(&format!("{} {}", a.title, a.body)).join(" "),
                    f.language => a.language,
                ))
                .map_err(index_error)?;
        }
        writer.commit().map_err(index_error)?;
        let mut meta = self.meta.write().expect("kb meta lock");
        for a in articles {
            let entry =
                ArticleMeta { workspace: a.workspace, language: a.language.to_string(), intents: a.intents.to_vec() };
            meta.insert(a.id, entry);
        }
        self.reader.reload().map_err(index_error)
    }

    /// Whether a workspace has any article (the bot answers only where it has some).
    pub fn has_articles(&self, workspace: i64) -> bool {
        self.meta.read().expect("kb meta lock").values().any(|a| a.workspace == workspace)
    }

    /// Removes every article (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        let mut writer = self.writer.lock().expect("index writer lock");
        writer.delete_all_documents().map_err(index_error)?;
        writer.commit().map_err(index_error)?;
        self.meta.write().expect("kb meta lock").clear();
        self.reader.reload().map_err(index_error)
    }

    /// The best articles for a customer's message: BM25 over the text, plus the weight
    /// of the intents the message shows (`signals`: intent name and strength 0 to 1,
    /// from the classifier's keywords and examples) for the articles that answer them.
    /// Articles in `language` come first.
    pub fn find(
        &self,
        workspace: i64,
        message: &str,
        limit: usize,
        language: Option<&str>,
        signals: &[(String, f32)],
    ) -> Result<Vec<Hit>> {
        let hits = self.search(workspace, message, limit.max(20), None)?;
        let best = hits.first().map_or(1.0, |h| h.score).max(f32::EPSILON);
        let mut scores: std::collections::HashMap<i64, f32> = hits.iter().map(|h| (h.id, h.score / best)).collect();
        let meta = self.meta.read().expect("kb meta lock");
        if !signals.is_empty() {
            for (id, article) in meta.iter().filter(|(_, a)| a.workspace == workspace) {
                let bonus: f32 = signals
                    .iter()
                    .filter(|(intent, _)| article.intents.contains(intent))
                    .map(|(_, weight)| *weight)
                    .sum();
                if bonus > 0.0 {
                    *scores.entry(*id).or_default() += INTENT_WEIGHT * bonus;
                }
            }
        }
        let mut ranked: Vec<(bool, Hit)> = scores
            .into_iter()
            .map(|(id, score)| {
                let other = language.is_some_and(|l| meta.get(&id).is_some_and(|a| a.language != l));
                (other, Hit { id, score })
            })
            .collect();
        ranked.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.score.total_cmp(&a.1.score)).then(a.1.id.cmp(&b.1.id)));
        Ok(ranked.into_iter().take(limit).map(|(_, hit)| hit).collect())
    }

    /// Removes an article from search.
    pub fn remove(&self, id: i64) -> Result<()> {
        let mut writer = self.writer.lock().expect("index writer lock");
        writer.delete_term(Term::from_field_i64(self.fields.id, id));
        writer.commit().map_err(index_error)?;
        self.meta.write().expect("kb meta lock").remove(&id);
        self.reader.reload().map_err(index_error)
    }

    /// The words a text is searched by: segmented, lower-cased, stemmed, without
    /// punctuation and stop words, each once, in order of appearance.
    pub fn terms(text: &str) -> Vec<String> {
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut terms: Vec<String> = Vec::new();
        while stream.advance() {
            let token = stream.token().text.trim();
            if token.is_empty() || token.chars().all(|c| !c.is_alphanumeric()) || STOPWORDS.contains(&token) {
                continue;
            }
            if !terms.iter().any(|t| t == token) {
                terms.push(token.to_string());
            }
        }
        terms
    }

    /// The best `limit` articles of a workspace for a query, best first; with a
    /// `language`, articles in that language come before the others (a customer is
    /// answered in their own language when the shop has the article in it).
    pub fn search(&self, workspace: i64, query: &str, limit: usize, language: Option<&str>) -> Result<Vec<Hit>> {
        let f = self.fields;
        let terms = Self::terms(query);
        if (terms.is_empty() && cjk_bigrams(query).is_empty()) || limit == 0 {
            return Ok(Vec::new());
        }
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for term in &terms {
            for (field, boost) in [(f.title, 2.0), (f.body, 1.0), (f.tags, 1.5)] {
                let query = TermQuery::new(Term::from_field_text(field, term), IndexRecordOption::WithFreqs);
                should.push((Occur::Should, Box::new(BoostQuery::new(Box::new(query), boost))));
            }
        }
        for gram in cjk_bigrams(query) {
            let query = TermQuery::new(Term::from_field_text(f.grams, &gram), IndexRecordOption::WithFreqs);
            should.push((Occur::Should, Box::new(BoostQuery::new(Box::new(query), GRAM_BOOST))));
        }
        let in_workspace = TermQuery::new(Term::from_field_i64(f.workspace, workspace), IndexRecordOption::Basic);
        let query = BooleanQuery::new(vec![
            (Occur::Must, Box::new(in_workspace) as Box<dyn Query>),
            (Occur::Must, Box::new(BooleanQuery::new(should))),
        ]);
        let searcher = self.reader.searcher();
        let fetch = if language.is_some() { limit * LANGUAGE_SLACK } else { limit };
        let top = searcher.search(&query, &TopDocs::with_limit(fetch).order_by_score()).map_err(index_error)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(index_error)?;
            let id = doc.get_first(f.id).and_then(|v| v.as_i64());
            let same_language = language.is_none_or(|l| doc.get_first(f.language).and_then(|v| v.as_str()) == Some(l));
            if let Some(id) = id {
                hits.push((!same_language, Hit { id, score }));
            }
        }
        // Stable: within each language, BM25 order stays.
        hits.sort_by_key(|(other_language, _)| *other_language);
        Ok(hits.into_iter().take(limit).map(|(_, hit)| hit).collect())
    }
}

/// Weight of a character-pair match against a word match.
const GRAM_BOOST: f32 = 0.4;

/// Whether a character is a Chinese ideograph.
fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c)
}

/// Each pair of adjacent Chinese characters in `text`, in order, each once.
pub fn cjk_bigrams(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut grams: Vec<String> = Vec::new();
    for pair in chars.windows(2) {
        if is_cjk(pair[0]) && is_cjk(pair[1]) {
            let gram: String = pair.iter().collect();
            if !grams.contains(&gram) {
                grams.push(gram);
            }
        }
    }
    grams
}

/// A short excerpt of `body` around the first line that holds one of `terms`, as plain
/// text, for result lists.
pub fn snippet(body: &str, terms: &[String], max_chars: usize) -> String {
    // Headings name a topic; the answer is in the lines under them.
    let text_lines: Vec<&str> =
        body.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()).collect();
    let lines: Vec<&str> =
        if text_lines.is_empty() { body.lines().filter(|l| !l.trim().is_empty()).collect() } else { text_lines };
    let lines: Vec<&str> = lines.iter().map(|l| l.trim_start_matches(['#', '-', '*', '>', ' ', '\t'])).collect();
    // The line holding the most of the query's terms (the first such line on a tie).
    let matches = |line: &str| {
        let line = line.to_lowercase();
        terms.iter().filter(|t| line.contains(String::as_str(t))).count()
    };
    let best = lines
        .iter()
        .enumerate()
        .max_by_key(|(i, line)| (matches(line), std::cmp::Reverse(*i)))
        .filter(|(_, line)| matches(line) > 0)
        .map_or(0, |(i, _)| i);
    let text = lines.get(best).copied().unwrap_or("").replace(['*', '`', '_'], "");
    let mut out: String = text.chars().take(max_chars).collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb(articles: &[(i64, i64, &str, &str)]) -> KnowledgeBase {
        let kb = KnowledgeBase::new().unwrap();
        let tags: Vec<String> = Vec::new();
        let indexed: Vec<IndexedArticle> = articles
            .iter()
            .map(|(id, ws, title, body)| IndexedArticle {
                id: *id,
                workspace: *ws,
                title,
                body,
                tags: &tags,
                language: crate::intent::language_of(title),
                intents: &[],
            })
            .collect();
        kb.upsert(&indexed).unwrap();
        kb
    }

    fn top(kb: &KnowledgeBase, workspace: i64, query: &str) -> Option<i64> {
        kb.search(workspace, query, 3, None).unwrap().first().map(|h| h.id)
    }

    #[test]
    fn unspaced_chinese_is_segmented_and_found() {
        let kb = kb(&[
            (1, 1, "退款多久到账", "退款审核通过后，原路退回，一般 1-3 个工作日到账。"),
            (2, 1, "发货时间", "下单后 48 小时内发货，偏远地区可能延迟。"),
            (3, 1, "Return policy", "You can return items within 7 days of delivery."),
        ]);
        assert_eq!(top(&kb, 1, "到账时间"), Some(1));
        assert_eq!(top(&kb, 1, "钱什么时候退回来"), Some(1));
        assert_eq!(top(&kb, 1, "什么时候发货呀"), Some(2));
        assert_eq!(top(&kb, 1, "how do I RETURN these shoes"), Some(3));
        assert_eq!(top(&kb, 1, "returning items"), Some(3), "stemmed: returning → return");
    }

    #[test]
    fn workspaces_do_not_see_each_other() {
        let kb = kb(&[(1, 1, "发票", "电子发票在订单完成后开具"), (2, 2, "发票", "我们只开纸质发票")]);
        assert_eq!(top(&kb, 1, "开发票"), Some(1));
        assert_eq!(top(&kb, 2, "开发票"), Some(2));
        assert_eq!(top(&kb, 3, "开发票"), None);
    }

    #[test]
    fn replaced_and_removed_articles_change_results_at_once() {
        let kb = kb(&[(1, 1, "优惠券", "满 200 减 30")]);
        assert_eq!(top(&kb, 1, "优惠券"), Some(1));
        let tags = vec!["售后".to_string()];
        let article = IndexedArticle {
            id: 1,
            workspace: 1,
            title: "保修",
            body: "电子产品保修一年",
            tags: &tags,
            language: "zh",
            intents: &[],
        };
        kb.upsert(&[article]).unwrap();
        assert_eq!(top(&kb, 1, "优惠券"), None);
        assert_eq!(top(&kb, 1, "保修多久"), Some(1));
        kb.remove(1).unwrap();
        assert_eq!(top(&kb, 1, "保修"), None);
    }

    #[test]
    fn queries_of_only_filler_find_nothing() {
        let kb = kb(&[(1, 1, "你好", "你好，请问有什么可以帮您")]);
        assert!(KnowledgeBase::terms("你好吗？？ the a").iter().all(|t| t != "的" && t != "the"));
        assert_eq!(kb.search(1, "？？ 的 了", 3, None).unwrap(), vec![]);
    }

    #[test]
    fn the_asker_s_language_comes_first() {
        let kb = kb(&[(1, 1, "退货 return", "return 退货 退货"), (2, 1, "Return policy", "return within 7 days")]);
        let ids =
            |language| kb.search(1, "return 退货", 2, Some(language)).unwrap().iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(ids("zh"), vec![1, 2]);
        assert_eq!(ids("en"), vec![2, 1]);
    }

    #[test]
    fn snippets_show_the_matching_line() {
        let body = "# 退货\n\n- 签收后 7 天内可无理由退货\n- 商品需保持**完好**，运费由您承担\n";
        assert_eq!(snippet(body, &["完好".into()], 40), "商品需保持完好，运费由您承担");
        assert_eq!(
            snippet(body, &["签收".into(), "运费".into(), "完好".into()], 40),
            "商品需保持完好，运费由您承担",
            "the line with most terms"
        );
        assert_eq!(snippet(body, &["退货".into(), "运费".into()], 40), "签收后 7 天内可无理由退货", "first on a tie");
        assert_eq!(snippet(body, &["nothing".into()], 4), "签收后 …", "headings are skipped");
        assert_eq!(snippet(body, &["7".into()], 6), "签收后 7 …");
        assert_eq!(snippet("# 只有标题", &[], 10), "只有标题");
    }
}
