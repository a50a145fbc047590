//! The bot's decisions: answer from the knowledge base, greet, take feedback, or hand over
//! to a person. Pure: the caller gives it the message, its classification, the best
//! article and what the bot remembers of the conversation; it answers with an action and
//! the new memory. No I/O, no clock.
//!
//! Rules:
//! - the customer can ask for a person at any time ("转人工", "human", …): hand over;
//! - after an answer the bot asks whether it helped; "yes" resolves the conversation, "no"
//!   counts as an unresolved turn;
//! - a greeting alone is greeted back;
//! - a question it is not confident about (or has no article for) goes to a person at
//!   once, and so does the conversation after `max_unresolved_turns` unhelpful answers.

use crate::intent::Classification;

/// What the bot remembers of one conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// Answers given.
    pub answers: u32,
    /// Answers that did not help (or turns it could not answer).
    pub unresolved: u32,
    /// Whether the bot waits to hear whether its last answer helped.
    pub awaiting_feedback: bool,
    /// The article of the last answer, if it came from one.
    pub last_article: Option<i64>,
    /// The intent it last detected.
    pub intent: Option<String>,
}

/// Limits the bot works within.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Below this confidence it hands over at once.
    pub min_confidence: f32,
    /// Unhelpful turns before it hands over.
    pub max_unresolved_turns: u32,
}

/// The article the bot may answer with.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The article's id.
    pub id: i64,
    /// Its title.
    pub title: &'a str,
    /// Its body (Markdown).
    pub body: &'a str,
}

/// Why the bot hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOver {
    /// The customer asked for a person.
    Asked,
    /// The bot was not confident it understood.
    NotConfident,
    /// Its answers did not help, too many times.
    Unresolved,
    /// The shop's automation for the intent asked for a person, or did not answer.
    Automation,
}

impl HandOver {
    /// As recorded in the event log.
    pub fn as_str(self) -> &'static str {
        match self {
            HandOver::Asked => "customer_asked",
            HandOver::NotConfident => "low_confidence",
            HandOver::Unresolved => "unresolved",
            HandOver::Automation => "automation",
        }
    }
}

/// What the bot does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Sends `text` and stays.
    Reply {
        /// What to send.
        text: String,
        /// The article it answered with, if any.
        article: Option<i64>,
    },
    /// Sends `text` and marks the conversation resolved (the answer helped).
    Resolve {
        /// What to send.
        text: String,
    },
    /// Sends `text` and hands the conversation to routing.
    HandOver {
        /// What to send.
        text: String,
        /// Why.
        why: HandOver,
    },
}

/// Whether a message says the last answer helped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// It helped.
    Helpful,
    /// It did not.
    NotHelpful,
    /// Neither: probably a new question.
    None,
}

const HELPFUL: &[&str] = &[
    "有用",
    "有帮助",
    "解决了",
    "明白了",
    "懂了",
    "知道了",
    "好的谢谢",
    "谢谢",
    "可以了",
    "ok",
    "okay",
    "yes",
    "yep",
    "thanks",
    "thank you",
    "that helps",
    "helpful",
    "solved",
    "got it",
    "perfect",
];
const NOT_HELPFUL: &[&str] = &[
    "没用",
    "没有用",
    "没帮助",
    "没解决",
    "不是这个",
    "不对",
    "不行",
    "no",
    "nope",
    "not helpful",
    "didn't help",
    "didnt help",
    "doesn't help",
    "doesnt help",
    "not what i",
    "wrong",
];

/// Reads feedback on the last answer. "Not helpful" is looked for first, because it
/// often contains "helpful" ("没有用" holds "有用").
pub fn feedback_of(message: &str) -> Feedback {
    let text = message.to_lowercase();
    let says = |phrases: &[&str]| phrases.iter().any(|p| crate::intent::says(&text, p));
    if says(NOT_HELPFUL) {
        Feedback::NotHelpful
    } else if says(HELPFUL) {
        Feedback::Helpful
    } else {
        Feedback::None
    }
}

/// Longest excerpt of an article the bot sends, in characters.
const EXCERPT_CHARS: usize = 600;

/// Decides what to do with a customer's message.
pub fn decide(
    message: &str,
    language: &str,
    classification: &Classification,
    best: Option<Candidate>,
    memory: &Memory,
    rules: Rules,
) -> (Action, Memory) {
    let zh = language == "zh";
    let mut next = memory.clone();
    // What the conversation is about: asking for a person or saying hello is not a topic.
    if classification.intent.as_deref().is_some_and(|i| i != "human" && i != "greeting") {
        next.intent.clone_from(&classification.intent);
    }
    let hand_over = |why: HandOver, mut next: Memory| {
        next.awaiting_feedback = false;
        (Action::HandOver { text: hand_over_text(why, language), why }, next)
    };
    if classification.intent.as_deref() == Some("human") {
        return hand_over(HandOver::Asked, next);
    }
    if memory.awaiting_feedback {
        match feedback_of(message) {
            Feedback::Helpful => {
                next.awaiting_feedback = false;
                let text = if zh {
                    "很高兴能帮到您！还有其他问题随时告诉我。"
                } else {
                    "Glad that helped! Ask any time if there's anything else."
                };
                return (Action::Resolve { text: text.into() }, next);
            }
            Feedback::NotHelpful => {
                next.awaiting_feedback = false;
                next.unresolved += 1;
                if next.unresolved >= rules.max_unresolved_turns {
                    return hand_over(HandOver::Unresolved, next);
                }
                // A bare "no" asks to try again; a "no" with a question is answered below.
                if classification.intent.is_none() || message.chars().count() <= 8 {
                    let text = if zh {
                        "抱歉没能帮上忙。能换个说法描述一下您的问题吗？也可以回复“人工”转人工客服。"
                    } else {
                        "Sorry that didn't help. Could you put it another way? Or reply \"human\" to talk to a person."
                    };
                    return (Action::Reply { text: text.into(), article: None }, next);
                }
            }
            Feedback::None => next.awaiting_feedback = false,
        }
    }
    if classification.intent.as_deref() == Some("greeting") && best.is_none_or(|_| message.chars().count() <= 8) {
        let text = if zh {
            "您好！我是智能客服，请问有什么可以帮您？需要人工服务请随时回复“人工”。"
        } else {
            "Hi! I'm the shop's assistant. How can I help? Reply \"human\" any time to talk to a person."
        };
        return (Action::Reply { text: text.into(), article: None }, next);
    }
    let Some(article) = best.filter(|_| classification.confidence >= rules.min_confidence) else {
        return hand_over(HandOver::NotConfident, next);
    };
    next.answers += 1;
    next.awaiting_feedback = true;
    next.last_article = Some(article.id);
    let text =
        format!("**{}**\n\n{}\n\n{}", article.title, excerpt(article.body, EXCERPT_CHARS), feedback_question(language));
    (Action::Reply { text, article: Some(article.id) }, next)
}

/// What the bot asks after an answer.
pub fn feedback_question(language: &str) -> &'static str {
    if language == "zh" {
        "这个回答有帮助吗？回复“有用”或“没用”；需要人工请回复“人工”。"
    } else {
        "Did this help? Reply \"yes\" or \"no\", or \"human\" to talk to a person."
    }
}

/// What the bot says when it hands over.
pub fn hand_over_text(why: HandOver, language: &str) -> String {
    let text = match (why, language == "zh") {
        (HandOver::NotConfident, true) => "这个问题我请人工客服来帮您，正在转接，请稍候。",
        (HandOver::NotConfident, false) => "Let me get a person to help you with that. Connecting you now.",
        (_, true) => "好的，正在为您转接人工客服，请稍候。",
        (_, false) => "OK, I'm connecting you with a person. One moment please.",
    };
    text.into()
}

/// An answer the bot did not take from an article (an automation's, or the model's
/// phrasing of one), with the feedback question after it.
pub fn answer_with_question(answer: &str, language: &str) -> String {
    format!("{}\n\n{}", answer.trim(), feedback_question(language))
}

/// The start of an article, cut at a line break before `max` characters when there is one.
fn excerpt(body: &str, max: usize) -> String {
    let body = body.trim();
    if body.chars().count() <= max {
        return body.to_string();
    }
    let cut: String = body.chars().take(max).collect();
    match cut.rfind('\n') {
        Some(at) if at > cut.len() / 2 => format!("{}\n…", cut[..at].trim_end()),
        _ => format!("{cut}…"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules { min_confidence: 0.3, max_unresolved_turns: 3 };

    fn class(intent: Option<&str>, confidence: f32) -> Classification {
        Classification { intent: intent.map(Into::into), confidence, reason: String::new() }
    }

    const ARTICLE: Candidate =
        Candidate { id: 7, title: "物流查询", body: "在“我的订单”里点“查看物流”。" };

    fn kind(action: &Action) -> &'static str {
        match action {
            Action::Reply { article: Some(_), .. } => "answer",
            Action::Reply { article: None, .. } => "reply",
            Action::Resolve { .. } => "resolve",
            Action::HandOver { why: HandOver::Asked, .. } => "handover:asked",
            Action::HandOver { why: HandOver::NotConfident, .. } => "handover:not_confident",
            Action::HandOver { why: HandOver::Unresolved, .. } => "handover:unresolved",
            Action::HandOver { why: HandOver::Automation, .. } => "handover:automation",
        }
    }

    /// Plays a conversation: each step is (message, intent, confidence, article found).
    fn check(steps: &[(&str, Option<&str>, f32, bool)]) -> Vec<&'static str> {
        let mut memory = Memory::default();
        let mut out = Vec::new();
        for (message, intent, confidence, found) in steps {
            let best = found.then_some(ARTICLE);
            let (action, next) = decide(message, "zh", &class(*intent, *confidence), best, &memory, RULES);
            out.push(kind(&action));
            memory = next;
        }
        out
    }

    #[test]
    fn conversations_play_out_by_the_rules() {
        /// A conversation's name, its steps, and the kinds of action expected.
        type Case = (&'static str, Vec<(&'static str, Option<&'static str>, f32, bool)>, Vec<&'static str>);
        let table: Vec<Case> = vec![
            (
                "answer, then helped",
                vec![("快递到哪了", Some("order_status"), 0.8, true), ("有用，谢谢", None, 0.0, false)],
                vec!["answer", "resolve"],
            ),
            ("asking for a person at once", vec![("转人工", Some("human"), 0.9, false)], vec!["handover:asked"]),
            (
                "asking for a person after an answer",
                vec![("快递到哪了", Some("order_status"), 0.8, true), ("人工", Some("human"), 0.9, false)],
                vec!["answer", "handover:asked"],
            ),
            ("not confident", vec![("嗯嗯那个东西", Some("gift"), 0.1, true)], vec!["handover:not_confident"]),
            ("no article", vec![("你们老板是谁", Some("authenticity"), 0.9, false)], vec!["handover:not_confident"]),
            ("a greeting", vec![("你好", Some("greeting"), 0.9, false)], vec!["reply"]),
            (
                "three unhelpful answers",
                vec![
                    ("快递到哪了", Some("order_status"), 0.8, true),
                    ("没用", None, 0.0, false),
                    ("物流一直不动", Some("order_status"), 0.8, true),
                    ("没用", None, 0.0, false),
                    ("还是没到", Some("order_status"), 0.8, true),
                    ("没有用", None, 0.0, false),
                ],
                vec!["answer", "reply", "answer", "reply", "answer", "handover:unresolved"],
            ),
            (
                "a new question instead of feedback is answered",
                vec![("快递到哪了", Some("order_status"), 0.8, true), ("能开发票吗", Some("invoice"), 0.7, true)],
                vec!["answer", "answer"],
            ),
        ];
        for (name, steps, expected) in table {
            assert_eq!(check(&steps), expected, "{name}");
        }
    }

    #[test]
    fn feedback_reads_no_before_yes() {
        assert_eq!(feedback_of("没有用"), Feedback::NotHelpful);
        assert_eq!(feedback_of("有用 谢谢"), Feedback::Helpful);
        assert_eq!(feedback_of("No, that's not it"), Feedback::NotHelpful);
        assert_eq!(feedback_of("yes thanks"), Feedback::Helpful);
        assert_eq!(feedback_of("know what, where is my parcel"), Feedback::None);
    }

    #[test]
    fn answers_quote_the_article_in_the_customer_s_language() {
        let (action, memory) =
            decide("where is it", "en", &class(Some("order_status"), 0.9), Some(ARTICLE), &Memory::default(), RULES);
        let Action::Reply { text, article } = action else { panic!() };
        assert_eq!(article, Some(7));
        assert!(text.starts_with("**物流查询**") && text.contains("Did this help?"), "{text}");
        assert_eq!((memory.answers, memory.awaiting_feedback, memory.last_article), (1, true, Some(7)));
        let long = "第一行\n".repeat(200);
        assert!(excerpt(&long, 100).ends_with('…') && excerpt(&long, 100).chars().count() <= 102);
    }
}
