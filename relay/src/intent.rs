//! Intent classification: what a customer's message is about (`order_status`,
//! `return_policy`, `human`, …), with a confidence and the reason, deterministic and with
//! no network. Pure: the caller passes the knowledge-base hits it found for the message.
//!
//! Three kinds of evidence are added up per intent:
//! - **keywords** from the intent's definition, found in the message (whole words for
//!   Latin-script keywords, substrings for Chinese ones), longer keywords weighing more;
//! - **examples**: the share of the message's search terms that an example shares;
//! - **the knowledge base**: the intents of the best-matching articles, by rank.
//!
//! The intent with the most evidence wins; its confidence is its share of all the
//! evidence, so a message that fits two intents equally gets a low confidence.

use serde::{Deserialize, Serialize};

use crate::kb::KnowledgeBase;

/// An intent as configured (see `relay/kb/intents.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentDef {
    /// Its name (`order_status`).
    pub name: String,
    /// The skill group that handles it, when the bot hands over.
    #[serde(default)]
    pub group: Option<String>,
    /// Words and phrases that signal it.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Messages that mean it.
    #[serde(default)]
    pub examples: Vec<String>,
}

/// The intents shipped with kefu, for shops that have not written their own.
pub const DEFAULT_INTENTS: &str = include_str!("../kb/intents.json");

/// An intent with its keywords prepared for matching.
struct Prepared {
    def: IntentDef,
    /// Lower-cased keywords, with whether to match them as whole words.
    keywords: Vec<(String, bool)>,
    /// The search terms of each example.
    examples: Vec<Vec<String>>,
}

/// What a message is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// The intent; `None` when nothing points anywhere.
    pub intent: Option<String>,
    /// Its share of all the evidence, 0 to 1.
    pub confidence: f32,
    /// The evidence, for people: which keywords, examples and articles counted.
    pub reason: String,
}

/// A knowledge-base hit as the classifier sees it: the article's intents and its rank.
pub struct ArticleEvidence<'a> {
    /// The article's intents.
    pub intents: &'a [String],
    /// Its BM25 score.
    pub score: f32,
}

/// Classifies messages against a set of intents.
pub struct Classifier {
    intents: Vec<Prepared>,
    /// How telling each example term is: terms found in the examples of many intents
    /// ("order", "多久") say less than terms found in one ("voucher", "发票").
    term_weight: std::collections::HashMap<String, f32>,
}

/// Weights of the evidence kinds.
const KEYWORD_WEIGHT: f32 = 1.0;
const EXAMPLE_WEIGHT: f32 = 2.0;
const ARTICLE_WEIGHTS: [f32; 3] = [1.5, 0.75, 0.35];

impl Classifier {
    /// A classifier for these intents.
    pub fn new(intents: Vec<IntentDef>) -> Classifier {
        let intents = intents
            .into_iter()
            .map(|def| Prepared {
                keywords: def
                    .keywords
                    .iter()
                    .map(|k| k.trim().to_lowercase())
                    .filter(|k| !k.is_empty())
                    .map(|k| {
                        let whole_word = k.is_ascii();
                        (k, whole_word)
                    })
                    .collect(),
                examples: def.examples.iter().map(|e| KnowledgeBase::terms(e)).filter(|t| !t.is_empty()).collect(),
                def,
            })
            .collect::<Vec<Prepared>>();
        let mut intents_with: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for intent in &intents {
            let mut seen: Vec<&String> = intent.examples.iter().flatten().collect();
            seen.sort();
            seen.dedup();
            for term in seen {
                *intents_with.entry(term.clone()).or_default() += 1;
            }
        }
        let n = intents.len().max(1) as f32;
        let term_weight = intents_with.into_iter().map(|(t, k)| (t, (1.0 + n / (1.0 + k as f32)).ln())).collect();
        Classifier { intents, term_weight }
    }

    /// The weight of a message term for example matching: unseen terms weigh as much
    /// as the rarest example terms.
    fn weight(&self, term: &str) -> f32 {
        let n = self.intents.len().max(1) as f32;
        self.term_weight.get(term).copied().unwrap_or_else(|| (1.0 + n).ln())
    }

    /// The configured intents.
    pub fn intents(&self) -> impl Iterator<Item = &IntentDef> {
        self.intents.iter().map(|p| &p.def)
    }

    /// The intent's definition.
    pub fn intent(&self, name: &str) -> Option<&IntentDef> {
        self.intents().find(|i| i.name == name)
    }

    /// The intents a message shows by keywords and examples alone, each with its
    /// strength relative to the strongest (1.0), strongest first: what the knowledge base
    /// uses to rank articles by the intents they answer.
    pub fn signals(&self, message: &str) -> Vec<(String, f32)> {
        let classification = self.score(message, &[]);
        let best = classification.first().map_or(1.0, |s| s.0).max(f32::EPSILON);
        classification.into_iter().map(|(score, name, _)| (name.to_string(), score / best)).collect()
    }

    /// Classifies a message, given the knowledge-base articles it matched (best first).
    pub fn classify(&self, message: &str, articles: &[ArticleEvidence]) -> Classification {
        let scored = self.score(message, articles);
        let total: f32 = scored.iter().map(|s| s.0).sum();
        match scored.first() {
            None => Classification { intent: None, confidence: 0.0, reason: "nothing matched".into() },
            Some((score, name, why)) => {
                Classification { intent: Some(name.to_string()), confidence: score / total, reason: why.join(", ") }
            }
        }
    }

    /// Evidence per intent, most first: (score, intent, what counted).
    fn score(&self, message: &str, articles: &[ArticleEvidence]) -> Vec<(f32, &str, Vec<String>)> {
        let text = message.to_lowercase();
        let terms = KnowledgeBase::terms(message);
        let best_article = articles.first().map_or(0.0, |a| a.score).max(f32::EPSILON);
        let mut scored: Vec<(f32, &str, Vec<String>)> = Vec::new();
        for intent in &self.intents {
            let mut score = 0.0;
            let mut why = Vec::new();
            for (keyword, whole_word) in &intent.keywords {
                let found = if *whole_word { contains_word(&text, keyword) } else { text.contains(keyword.as_str()) };
                if found {
                    // Longer phrases are more specific than short words.
                    score += KEYWORD_WEIGHT * (1.0 + keyword.chars().count().min(8) as f32 / 4.0);
                    why.push(format!("keyword “{keyword}”"));
                }
            }
            if !terms.is_empty() {
                let total: f32 = terms.iter().map(|t| self.weight(t)).sum();
                let best_example = intent
                    .examples
                    .iter()
                    .map(|example| {
                        terms.iter().filter(|t| example.contains(t)).map(|t| self.weight(t)).sum::<f32>() / total
                    })
                    .fold(0.0, f32::max);
                if best_example > 0.0 {
                    score += EXAMPLE_WEIGHT * best_example;
                    why.push(format!("{:.0}% like an example", best_example * 100.0));
                }
            }
            for (rank, article) in articles.iter().take(ARTICLE_WEIGHTS.len()).enumerate() {
                if article.intents.contains(&intent.def.name) {
                    score += ARTICLE_WEIGHTS[rank] * (article.score / best_article);
                    why.push(format!("article #{}", rank + 1));
                }
            }
            if score > 0.0 {
                scored.push((score, &intent.def.name, why));
            }
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        scored
    }
}

/// Whether lower-cased `text` says `phrase`: as whole words for Latin script, anywhere
/// for Chinese (which has no spaces between words).
pub fn says(text: &str, phrase: &str) -> bool {
    if phrase.is_ascii() { contains_word(text, phrase) } else { text.contains(phrase) }
}

/// Whether `word` stands in `text` as a whole word (not inside a longer Latin word).
fn contains_word(text: &str, word: &str) -> bool {
    let is_word_char = |c: char| c.is_ascii_alphanumeric();
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
    })
}

/// The language of a message: `zh` when it holds Chinese characters, else `en`.
pub fn language_of(text: &str) -> &'static str {
    if text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c)) {
        "zh"
    } else {
        "en"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier() -> Classifier {
        Classifier::new(serde_json::from_str(DEFAULT_INTENTS).unwrap())
    }

    fn check(message: &str) -> Option<String> {
        classifier().classify(message, &[]).intent
    }

    #[test]
    fn keywords_in_both_languages() {
        assert_eq!(check("我要转人工").as_deref(), Some("human"));
        assert_eq!(check("can I talk to a real person").as_deref(), Some("human"));
        assert_eq!(check("我的快递到哪了").as_deref(), Some("order_status"));
        assert_eq!(check("where is my package").as_deref(), Some("order_status"));
    }

    #[test]
    fn latin_keywords_match_whole_words_only() {
        assert!(contains_word("hi there", "hi"));
        assert!(!contains_word("this shirt", "hi"));
        assert!(contains_word("我想 return 一下", "return"));
        assert!(!contains_word("returned", "return"));
    }

    #[test]
    fn articles_lend_their_intents() {
        let intents = vec!["warranty".to_string()];
        let c = classifier().classify("这个坏掉了", &[ArticleEvidence { intents: &intents, score: 3.0 }]);
        assert!(c.reason.contains("article #1"), "{c:?}");
    }

    #[test]
    fn nothing_to_go_on_means_no_intent() {
        let c = classifier().classify("？？", &[]);
        assert_eq!((c.intent, c.confidence), (None, 0.0));
    }

    #[test]
    fn language_is_told_by_chinese_characters() {
        assert_eq!(language_of("这个 coupon 怎么用不了"), "zh");
        assert_eq!(language_of("where is my order"), "en");
    }
}
