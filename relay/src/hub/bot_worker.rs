//! The bot's I/O shell: takes a customer's message from a hub, looks up the knowledge
//! base and the article, lets [`crate::bot::decide`] choose, asks the shop's automation
//! when the intent has one, lets a language model phrase an article's answer when one is
//! configured, and hands the outcome back to the hub, which writes and delivers it. Each
//! message is handled in its own task; the hub sends a conversation's messages one at a
//! time.

use std::sync::Arc;

use kefu_proto::{ContactId, ConversationId, WorkspaceId};
use tokio::sync::mpsc;

use super::{HubCommand, Hubs};
use crate::bot::{self, Action, Candidate, HandOver, Memory, Rules};
use crate::clock::Clock;
use crate::intent::{ArticleEvidence, Classification, language_of};
use crate::knowledge::Knowledge;
use crate::outside::{AutomationRequest, Outside};
use crate::store::Store;

/// A customer's message for the bot.
#[derive(Debug)]
pub struct BotRequest {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The conversation.
    pub conversation: ConversationId,
    /// The customer.
    pub contact: ContactId,
    /// What the customer wrote.
    pub message: String,
    /// What the bot remembers of the conversation.
    pub memory: Memory,
}

/// What the bot decided.
#[derive(Debug)]
pub struct BotOutcome {
    /// The conversation.
    pub conversation: ConversationId,
    /// What to do.
    pub action: Action,
    /// What the bot remembers now.
    pub memory: Memory,
    /// How the message was classified.
    pub classification: Classification,
    /// The article answered with, if any.
    pub article: Option<i64>,
    /// Where the answer came from: `article`, `model`, `automation`, or none.
    pub source: Option<&'static str>,
}

/// What the bot works with.
pub struct BotServices {
    /// The database (articles).
    pub store: Store,
    /// The index and classifier.
    pub knowledge: Arc<Knowledge>,
    /// The model and automations.
    pub outside: Arc<Outside>,
    /// The relay's clock (the model's circuit breaker counts time on it).
    pub clock: Clock,
    /// The bot's limits.
    pub rules: Rules,
}

/// Starts the bot; returns where to send it messages.
pub fn spawn(services: Arc<BotServices>, hubs: Arc<Hubs>) -> mpsc::UnboundedSender<BotRequest> {
    let (tx, mut rx) = mpsc::unbounded_channel::<BotRequest>();
    tokio::spawn(async move {
        while let Some(request) = rx.recv().await {
            let (services, hubs) = (services.clone(), hubs.clone());
            tokio::spawn(async move {
                let workspace = request.workspace;
                let outcome = answer(&services, request).await;
                if let Some(hub) = hubs.get(workspace) {
                    let _ = hub.send(HubCommand::BotDone(Box::new(outcome))).await;
                }
            });
        }
    });
    tx
}

async fn answer(services: &BotServices, request: BotRequest) -> BotOutcome {
    let BotRequest { workspace, conversation, contact, message, memory } = request;
    let language = language_of(&message);
    let looked_up = async {
        let hits = services.knowledge.answers(workspace, &message, 3)?;
        let mut articles = Vec::with_capacity(hits.len());
        for hit in &hits {
            if let Some(article) = services.store.article(workspace, hit.id).await? {
                articles.push((article, hit.score));
            }
        }
        Ok::<_, crate::Error>(articles)
    };
    let articles = match looked_up.await {
        Ok(articles) => articles,
        Err(e) => {
            // A bot that cannot look things up hands over rather than leave anyone waiting.
            tracing::error!(error = %e, %conversation, "bot lookup failed; handing over");
            let classification =
                Classification { intent: None, confidence: 0.0, reason: format!("lookup failed: {e}") };
            let action = Action::HandOver {
                text: bot::hand_over_text(HandOver::NotConfident, language),
                why: HandOver::NotConfident,
            };
            return BotOutcome { conversation, action, memory, classification, article: None, source: None };
        }
    };
    let evidence: Vec<ArticleEvidence> =
        articles.iter().map(|(a, score)| ArticleEvidence { intents: &a.intents, score: *score }).collect();
    let classification = services.knowledge.classifier.classify(&message, &evidence);
    let best = articles.first().map(|(a, _)| Candidate { id: a.id, title: &a.title, body: &a.body });
    let (mut action, mut memory) = bot::decide(&message, language, &classification, best, &memory, services.rules);
    let mut article = match &action {
        Action::Reply { article, .. } => *article,
        _ => None,
    };
    let mut source = article.map(|_| "article");

    // The shop's automation answers its intent better than an article can (an order's
    // actual status): it goes first when the bot would answer or was unsure.
    let automation = classification.intent.as_deref().and_then(|i| services.outside.automation(i));
    let would_answer =
        matches!(action, Action::Reply { article: Some(_), .. } | Action::HandOver { why: HandOver::NotConfident, .. });
    if let (Some(automation), true) = (automation, would_answer) {
        let request = AutomationRequest {
            workspace_id: workspace.0,
            conversation_id: conversation.0,
            contact_id: contact.0,
            intent: automation.intent.clone(),
            message: message.clone(),
            language: language.to_string(),
        };
        let now_secs = services.clock.now_ms() / 1000;
        match services.outside.call_automation(automation, &request, now_secs).await {
            Some(reply) if !reply.handover && reply.answer.as_deref().is_some_and(|a| !a.trim().is_empty()) => {
                let text = bot::answer_with_question(reply.answer.as_deref().unwrap_or_default(), language);
                action = Action::Reply { text, article: None };
                memory.awaiting_feedback = true;
                memory.last_article = None;
                article = None;
                source = Some("automation");
            }
            _ => {
                memory.awaiting_feedback = false;
                action = Action::HandOver {
                    text: bot::hand_over_text(HandOver::Automation, language),
                    why: HandOver::Automation,
                };
                article = None;
                source = None;
            }
        }
    } else if let (Some(id), Some((best, _))) = (article, articles.first()) {
        // A model, when configured, phrases the article's answer to the question asked;
        // on any failure the article goes out as it is.
        if let Some(phrased) =
            services.outside.phrase(&best.title, &best.body, &message, language, services.clock.now_ms()).await
        {
            action = Action::Reply { text: bot::answer_with_question(&phrased, language), article: Some(id) };
            source = Some("model");
        }
    }
    BotOutcome { conversation, action, memory, classification, article, source }
}
